"""Small areas built with the kit that use each service the way the real areas do, for nemesis verdict tests.

Each has the shape an adopted area has: named phases (setup, workload, settle, judge), everything it creates
registered with the supervisor under the kit's kind names (so nemeses find it and `no_leftovers` proves it gone),
errors measured rather than thrown (clients reconnect with fresh connections), and an honest invariant:

- `pg_ledger` (postgres), `ha_ledger` (patroni, through HAProxy rw) and `citus_ledger` (a distributed table on
  the coordinator): numbered rows inserted one by one;
  `acknowledged_rows_intact`: every committed row is there, unchanged, and nothing else is (a row whose insert
  raised may or may not be there: its outcome was unknown to the client).
- `redis_cache`: SET/GET on its own key prefix; `no_stale_reads`: a GET returns nothing or the newest value
  acknowledged for the key (a cache may lose keys, never go back in time).
- `amqp_queue` (rabbitmq): confirmed persistent publishes to a durable queue, consumed with manual acks;
  `confirmed_messages_delivered`: every confirmed message is consumed (duplicates allowed: at-least-once).
- `delta_log` (delta): a CDF-enabled table with numbered appends and deletes, a checkpoint every 5 versions;
  `table_matches_model` (the newest snapshot holds exactly the rows the run wrote and kept) and
  `change_feed_complete` (the feed from version 0 accounts for every insert and delete).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pika
import psycopg
from psycopg import sql

from regression_pipelines.kit import Area, AreaConfig, RunContext
from regression_pipelines.kit.supervisor import Supervisor
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.measure import ErrorTally
from regression_pipelines.results import Direction, Invariant, Metric, MetricKind, ScenarioResult

WORKLOAD_S = 2.5
SETTLE_BOUND_S = 20.0


class ChaosToyConfig(AreaConfig):
    workload_s: float = WORKLOAD_S


def lab_resources(s: LabSettings) -> dict[str, Any]:
    """Every resource the toy areas (and the real ones) use, pointed at this lab."""
    from regression_pipelines.resources_config import lab_patroni
    from resources.citus import CitusResource
    from resources.delta import DeltaLakeResource
    from resources.postgres import PostgresResource
    from resources.rabbitmq import RabbitMQResource
    from resources.redis import RedisResource

    return {
        "postgres": PostgresResource(
            port=s.postgres_port, user=s.postgres_user, password=s.postgres_password, dbname=s.postgres_db
        ),
        "redis": RedisResource(port=s.redis_port),
        "rabbitmq": RabbitMQResource(port=s.rabbitmq_port, user=s.rabbitmq_user, password=s.rabbitmq_password),
        "delta": DeltaLakeResource(root=str(s.lab_dir / "delta")),
        "patroni": lab_patroni(s, password=s.patroni_superuser_password),  # as the code location configures it
        "citus": CitusResource(
            port=s.citus_ports[0], user=s.postgres_user, password=s.postgres_password, dbname=s.postgres_db,
            superuser_password=s.citus_superuser_password,
        ),
    }  # fmt: skip


def _token() -> str:
    return secrets.token_hex(3)


def _wait_usable(action: Callable[[], Any], bound_s: float = SETTLE_BOUND_S) -> Any:
    """`action()` once it succeeds (fresh connections each try), bounded; the last error if it never does."""
    deadline = time.monotonic() + bound_s
    while True:
        try:
            return action()
        except Exception:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def _figures(sup: Supervisor, tally: ErrorTally, seconds: float, done: int, what: str) -> Invariant:
    """Record the rate and error rate as soon as they exist; the `no_operation_errors` verdict."""
    rate = Metric(f"{what}_per_s", done / seconds if seconds else 0.0, f"{what}/s", Direction.HIGHER_IS_BETTER)
    error_metric, errors = tally.figures(what)
    sup.record(rate, error_metric)
    return errors


# -- PostgreSQL (plain, or a Patroni cluster through HAProxy) ----------------------------------------------------


class Ledger:
    """Numbered rows written one per statement; a broken connection is replaced by a fresh one."""

    def __init__(self, connect: Callable[[], psycopg.Connection], table: str) -> None:
        self.connect, self.table = connect, table
        self.acked: dict[int, str] = {}
        self.unknown: set[int] = set()  # the statement raised: it may or may not have committed
        self.tally = ErrorTally()

    def write(self, seconds: float) -> int:
        conn: psycopg.Connection | None = None
        schema, name = self.table.split(".")
        insert = sql.SQL("INSERT INTO {} (id, note, amount) VALUES (%s, %s, %s)").format(sql.Identifier(schema, name))
        deadline, next_id = time.monotonic() + seconds, 1
        while time.monotonic() < deadline:
            note = f"row {next_id}"
            try:
                conn = conn if conn is not None and not conn.closed else self.connect()
                conn.execute(insert, (next_id, note, next_id))
                self.acked[next_id] = note
                self.tally.ok()
            except Exception as exc:
                self.tally.failed(exc)
                self.unknown.add(next_id)
                with contextlib.suppress(Exception):
                    conn.close()  # type: ignore[union-attr]
                conn = None
                time.sleep(0.05)
            next_id += 1
            time.sleep(0.005)
        if conn is not None:
            conn.close()
        return len(self.acked)

    def judge(self) -> Invariant:
        schema, name = self.table.split(".")
        query = sql.SQL("SELECT id, note, amount FROM {}").format(sql.Identifier(schema, name))

        def read() -> list[tuple[int, str, int]]:
            with self.connect() as conn:
                return conn.execute(query).fetchall()

        rows = {row[0]: row for row in _wait_usable(read)}
        lost = sorted(set(self.acked) - set(rows))
        changed = sorted(i for i, note in self.acked.items() if i in rows and rows[i][1:] != (note, i))
        unexpected = sorted(set(rows) - set(self.acked) - self.unknown)
        facts = {"acknowledged": len(self.acked), "lost": len(lost), "changed": len(changed),
                 "unexpected": len(unexpected)}  # fmt: skip
        ok = not (lost or changed or unexpected)
        detail = (
            f"{len(self.acked)} acknowledged rows, {len(lost)} lost {lost[:5]}, {len(changed)} changed "
            f"{changed[:5]}, {len(unexpected)} unexpected {unexpected[:5]}"
        )
        return Invariant("acknowledged_rows_intact", ok, detail, facts)


def _ledger_run(
    connect_of: Callable[[RunContext], Callable[[], psycopg.Connection]], distributed: bool = False
) -> Callable[..., ScenarioResult]:
    def run(config: ChaosToyConfig, ctx: RunContext) -> ScenarioResult:
        sup, connect = ctx.sup, connect_of(ctx)
        schema = f"regress_chaos_{_token()}"
        table = f"{schema}.ledger"
        with sup.phase("setup"), connect() as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            sup.created(
                "schema", schema, lambda: _drop_schema(connect, schema), lambda: _schema_exists(connect, schema)
            )
            create = sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, note text NOT NULL, amount int NOT NULL)")
            conn.execute(create.format(sql.Identifier(schema, "ledger")))
            if distributed:  # Citus: rows spread over the workers' shards by id
                conn.execute("SELECT create_distributed_table(%s, 'id', shard_count => 4)", (table,))
            sup.created("table", table, lambda: None, lambda: _table_exists(connect, table))
        ledger = Ledger(connect, table)
        with sup.phase("workload"):
            started = time.monotonic()
            written = ledger.write(config.workload_s)
            spent = time.monotonic() - started
        with sup.phase("judge"):
            intact = ledger.judge()
        sup.record(Metric("rows_acknowledged", written, "rows", Direction.HIGHER_IS_BETTER, MetricKind.VOLUME))
        return ScenarioResult("", invariants=[intact, _figures(sup, ledger.tally, spent, written, "writes")])

    return run


def _drop_schema(connect: Callable[[], psycopg.Connection], schema: str) -> None:
    with connect() as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _schema_exists(connect: Callable[[], psycopg.Connection], schema: str) -> bool:
    with connect() as conn:
        return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None


def _table_exists(connect: Callable[[], psycopg.Connection], table: str) -> bool:
    with connect() as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


def _pg_connect(ctx: RunContext) -> Callable[[], psycopg.Connection]:
    return ctx.resource("postgres").connect


def _citus_connect(ctx: RunContext) -> Callable[[], psycopg.Connection]:
    return ctx.resource("citus").connect


def _ha_connect(ctx: RunContext) -> Callable[[], psycopg.Connection]:
    target = ctx.resource("patroni").target()
    return lambda: target.connect(target.rw_port)


# -- Redis ---------------------------------------------------------------------------------------------------------


def _redis_run(config: ChaosToyConfig, ctx: RunContext) -> ScenarioResult:
    sup, resource = ctx.sup, ctx.resource("redis")
    prefix = f"regress:chaos:{_token()}:"

    def fresh() -> Any:
        return resource.client(pool_size=2)

    def remove() -> None:
        client = fresh()
        keys = list(client.scan_iter(match=prefix + "*", count=500))
        if keys:
            client.delete(*keys)

    def exists() -> bool:
        return next(iter(fresh().scan_iter(match=prefix + "*", count=500)), None) is not None

    with sup.phase("setup"):
        client = fresh()
        sup.created("redis_prefix", prefix, remove, exists)
    tally, latest, stale, reads, done = ErrorTally(), {}, 0, 0, 0
    with sup.phase("workload"):
        started = time.monotonic()
        deadline, n = started + config.workload_s, 0
        while time.monotonic() < deadline:
            key, n = f"{prefix}{n % 50}", n + 1
            try:
                if n % 2:
                    client.set(key, str(n))
                    latest[key] = str(n)
                else:
                    value = client.get(key)
                    reads += 1
                    stale += value is not None and key in latest and value != latest[key]
                tally.ok()
                done += 1
            except Exception as exc:
                tally.failed(exc)
                with contextlib.suppress(Exception):
                    client = fresh()
                time.sleep(0.05)
            time.sleep(0.002)
        spent = time.monotonic() - started
    with sup.phase("judge"):
        detail = f"{stale} stale of {reads} reads ({len(latest)} keys written)"
        verdict = Invariant("no_stale_reads", stale == 0, detail, {"stale": stale, "reads": reads})
    return ScenarioResult("", invariants=[verdict, _figures(sup, tally, spent, done, "operations")])


# -- RabbitMQ ------------------------------------------------------------------------------------------------------


def _amqp_run(config: ChaosToyConfig, ctx: RunContext) -> ScenarioResult:
    sup, resource = ctx.sup, ctx.resource("rabbitmq")
    queue = f"regress.chaos.{_token()}"

    def remove() -> None:
        connection = resource.connection()
        try:
            connection.channel().queue_delete(queue)
        finally:
            connection.close()

    def exists() -> bool:
        connection = resource.connection()
        try:
            connection.channel().queue_declare(queue, passive=True)
            return True
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return False
            raise
        finally:
            if connection.is_open:
                connection.close()

    with sup.phase("setup"):
        connection = resource.connection()
        connection.channel().queue_declare(queue, durable=True)
        connection.close()
        sup.created("queue", queue, remove, exists)
    confirmed: set[int] = set()
    consumed: list[int] = []
    tally = ErrorTally()
    halt = threading.Event()
    consumer = threading.Thread(target=_consume, args=(resource, queue, consumed, halt, tally), daemon=True)
    with sup.phase("workload"):
        started = time.monotonic()
        consumer.start()
        _publish(resource, queue, config.workload_s, confirmed, tally)
        spent = time.monotonic() - started
    with sup.phase("settle"):
        deadline = time.monotonic() + SETTLE_BOUND_S
        while not confirmed <= set(consumed) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)  # a last redelivery, if any
        halt.set()
        consumer.join(timeout=10)
    with sup.phase("judge"):
        lost = sorted(confirmed - set(consumed))
        duplicates = len(consumed) - len(set(consumed))
        facts = {"confirmed": len(confirmed), "consumed": len(consumed), "lost": len(lost), "duplicated": duplicates}
        detail = f"{len(confirmed)} confirmed, {len(lost)} never consumed {lost[:5]}, {duplicates} duplicates"
        verdict = Invariant("confirmed_messages_delivered", not lost, detail, facts)
    return ScenarioResult("", invariants=[verdict, _figures(sup, tally, spent, len(confirmed), "publishes")])


def _publish(resource: Any, queue: str, seconds: float, confirmed: set[int], tally: ErrorTally) -> None:
    channel, deadline, n = None, time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        try:
            if channel is None or not channel.is_open:
                channel = resource.connection().channel()
                channel.confirm_delivery()
            channel.basic_publish("", queue, str(n).encode(), pika.BasicProperties(delivery_mode=2), mandatory=True)
            confirmed.add(n)
            tally.ok()
        except Exception as exc:
            tally.failed(exc)
            with contextlib.suppress(Exception):
                channel.connection.close()  # type: ignore[union-attr]
            channel = None
            time.sleep(0.1)
        n += 1
        time.sleep(0.005)
    with contextlib.suppress(Exception):
        channel.connection.close()  # type: ignore[union-attr]


def _consume(resource: Any, queue: str, consumed: list[int], halt: threading.Event, tally: ErrorTally) -> None:
    while not halt.is_set():
        try:
            connection = resource.connection()
            channel = connection.channel()
            channel.basic_qos(prefetch_count=50)
            for method, _props, body in channel.consume(queue, inactivity_timeout=0.2):
                if halt.is_set():
                    break
                if method is None:
                    continue
                consumed.append(int(body))
                channel.basic_ack(method.delivery_tag)
            with contextlib.suppress(Exception):
                connection.close()
        except Exception:
            time.sleep(0.2)


# -- Delta ---------------------------------------------------------------------------------------------------------


def _delta_run(config: ChaosToyConfig, ctx: RunContext) -> ScenarioResult:
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    sup, resource = ctx.sup, ctx.resource("delta")
    uri = resource.new_table_uri("chaos")
    settings = {"delta.enableChangeDataFeed": "true", "delta.checkpointInterval": "5"}

    def batch(first: int, count: int) -> pa.Table:
        ids = list(range(first, first + count))
        return pa.table({"id": pa.array(ids, pa.int64()), "note": [f"row {i}" for i in ids]})

    with sup.phase("setup"):
        sup.created("delta_table", uri, lambda: resource.remove_table(uri), lambda: Path(uri).exists())
        write_deltalake(uri, batch(0, 5), configuration=settings)
    kept, deleted, tally, n = set(range(5)), set(), ErrorTally(), 5
    with sup.phase("workload"):
        started = time.monotonic()
        deadline = started + config.workload_s
        while time.monotonic() < deadline:
            try:
                if n % 4 == 0 and kept:
                    victim = min(kept)
                    DeltaTable(uri).delete(f"id = {victim}")
                    kept.discard(victim)
                    deleted.add(victim)
                else:
                    write_deltalake(uri, batch(n, 3), mode="append")
                    kept.update(range(n, n + 3))
                tally.ok()
            except BaseException as exc:  # a delta-rs panic is a BaseException: measured like any error
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                tally.failed(exc)
                time.sleep(0.05)
            n += 3
            time.sleep(0.05)
        spent = time.monotonic() - started
    with sup.phase("judge"):
        invariants = [_snapshot_verdict(uri, kept), _feed_verdict(uri, kept, deleted)]
    return ScenarioResult("", invariants=[*invariants, _figures(sup, tally, spent, tally.operations, "commits")])


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}"


def _snapshot_verdict(uri: str, kept: set[int]) -> Invariant:
    from deltalake import DeltaTable

    try:
        ids = DeltaTable(uri).to_pyarrow_table(columns=["id"]).column("id").to_pylist()
    except BaseException as exc:  # noqa: BLE001 - a panic included: the table cannot be read, that is the verdict
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return Invariant("table_matches_model", False, f"the table cannot be read: {_first_line(exc)}")
    missing, extra = sorted(kept - set(ids)), len(ids) - len(set(ids) & kept)
    ok = not missing and extra == 0
    detail = f"{len(ids)} rows read, {len(kept)} expected: {len(missing)} missing {missing[:5]}, {extra} unexpected"
    return Invariant("table_matches_model", ok, detail, {"missing": len(missing), "unexpected": extra})


def _feed_verdict(uri: str, kept: set[int], deleted: set[int]) -> Invariant:
    import pyarrow as pa
    from deltalake import DeltaTable

    try:
        feed = pa.table(DeltaTable(uri).load_cdf(starting_version=0))
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return Invariant("change_feed_complete", False, f"the feed cannot be read: {_first_line(exc)}")
    kinds = feed.column("_change_type").to_pylist()
    ids = feed.column("id").to_pylist()
    inserted = {i for i, k in zip(ids, kinds, strict=True) if k == "insert"}
    removed = {i for i, k in zip(ids, kinds, strict=True) if k == "delete"}
    missing_inserts = sorted((kept | deleted) - inserted)
    missing_deletes = sorted(deleted - removed)
    ok = not missing_inserts and not missing_deletes
    detail = f"feed: {len(missing_inserts)} inserts missing {missing_inserts[:5]}, {len(missing_deletes)} deletes missing {missing_deletes[:5]}"  # noqa: E501
    return Invariant("change_feed_complete", ok, detail, {"missing_inserts": len(missing_inserts),
                                                          "missing_deletes": len(missing_deletes)})  # fmt: skip


def _area(
    name: str, run: Callable[..., ScenarioResult], invariants: tuple[str, ...], resources: tuple[str, ...]
) -> Area:
    return Area(
        name=name, description=f"chaos toy: {name}", config=ChaosToyConfig, run=run, invariants=invariants,
        resources=resources,
    )  # fmt: skip


PG_LEDGER = _area("pg_ledger", _ledger_run(_pg_connect), ("acknowledged_rows_intact",), ("postgres",))
CITUS_LEDGER = _area(
    "citus_ledger", _ledger_run(_citus_connect, distributed=True), ("acknowledged_rows_intact",), ("citus",)
)
HA_LEDGER = _area("ha_ledger", _ledger_run(_ha_connect), ("acknowledged_rows_intact",), ("patroni",))
REDIS_CACHE = _area("redis_cache", _redis_run, ("no_stale_reads",), ("redis",))
AMQP_QUEUE = _area("amqp_queue", _amqp_run, ("confirmed_messages_delivered",), ("rabbitmq",))
DELTA_LOG = _area("delta_log", _delta_run, ("table_matches_model", "change_feed_complete"), ("delta",))
SETTINGS = {"amqp_queue": {"workload_s": 6.0}}  # rabbitmqctl takes ~3 s to act: a longer workload around it
TOYS = {
    "postgres": PG_LEDGER, "patroni": HA_LEDGER, "citus": CITUS_LEDGER, "redis": REDIS_CACHE, "rabbitmq": AMQP_QUEUE,
    "delta": DELTA_LOG,
}  # fmt: skip
