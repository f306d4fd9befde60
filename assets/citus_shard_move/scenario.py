"""A shard move under a write ledger: does an online move lose or duplicate acknowledged rows, and how long
do writes to the moved shard stop?

Plain Python (no Dagster). A ledger table (plus a co-located one) in a schema of the run's own, in a
colocation group of its own, so only the run's shards move. A writer commits ids 1, 2, 3, ... through the
coordinator at a fixed rate, each id once, recording what the client learned (judged with the HA area's
ledger rules); the move runs meanwhile. The outage is the largest gap between committed rows of the moved
shard (server timestamps), so writes to other shards cannot hide it. The schema is removed afterwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from assets.citus_shard_move.config import ShardMoveConfig
from assets.citus_sharding import cluster
from assets.ha_failover.ledger import Op, Outcome, Row, judge_ledger
from regression_pipelines.errors import UnsafeTargetError
from regression_pipelines.measure import ErrorTally, describe_error, percentile
from regression_pipelines.results import Direction, Invariant, Metric, MetricKind, ScenarioResult
from resources._network import is_loopback

AREA = "citus_shard_move"
ZERO_LOST = "zero_lost_acknowledged_writes"
NO_DUPLICATES = "no_duplicate_or_phantom_writes"
LAYOUT = "layout_consistent_after_move"
OUTAGE = "write_outage_within_slo"
INVARIANTS = (ZERO_LOST, NO_DUPLICATES, LAYOUT, OUTAGE)


def require_opt_in(config: ShardMoveConfig, host: str) -> None:
    """Refuse, before any connection, unless opted in and the coordinator is loopback or allow-listed."""
    if not config.allow_destructive:
        raise UnsafeTargetError(
            "citus_shard_move moves shard placements and did nothing: set allow_destructive: true in the run "
            "config to run it"
        )
    if not is_loopback(host) and host not in config.allow_list:
        raise UnsafeTargetError(
            f"the citus resource points at {host!r}, which is not loopback and not in allow_list; did nothing. "
            "Add it to allow_list only if you own that cluster"
        )


class Writer(threading.Thread):
    """Inserts 1, 2, 3, ... at a fixed rate through the coordinator; reconnects after a broken connection."""

    def __init__(self, connect: Callable[[], psycopg.Connection], table: sql.Composable, rate_hz: float) -> None:
        super().__init__(name="citus-ledger-writer", daemon=True)
        self.connect = connect
        self.insert = sql.SQL("INSERT INTO {} (id) VALUES (%s)").format(table)
        self.period = 1.0 / rate_hz
        self.ops: list[Op] = []
        self.halt = threading.Event()

    def run(self) -> None:
        conn: psycopg.Connection | None = None
        next_at, value = time.monotonic(), 0
        try:
            while not self.halt.is_set():
                value += 1
                invoked = time.time()
                try:
                    conn = conn or self.connect()
                    conn.execute(self.insert, (value,))
                    self.ops.append(Op(value, invoked, time.time(), Outcome.ACKNOWLEDGED))
                except psycopg.Error as exc:
                    broken = conn is None or conn.broken
                    outcome = Outcome.UNKNOWN if broken and conn is not None else Outcome.FAILED
                    self.ops.append(Op(value, invoked, time.time(), outcome, error=describe_error(exc)[:200]))
                    if broken and conn is not None:
                        conn.close()
                        conn = None
                next_at = max(next_at + self.period, time.monotonic())
                self.halt.wait(max(0.0, next_at - time.monotonic()))
        finally:
            if conn is not None:
                conn.close()


def run(
    config: ShardMoveConfig,
    connect: Callable[[], psycopg.Connection],
    connect_node: cluster.NodeConnector,
    schema: str,
    version: str,
    log: Any,
) -> ScenarioResult:
    conn = connect()
    ident = sql.Identifier(schema)
    try:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident))
        return _run(config, conn, connect, connect_node, schema, version, log)
    finally:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident))
        conn.execute("CALL citus_cleanup_orphaned_resources()")
        conn.close()


def _run(
    config: ShardMoveConfig,
    conn: psycopg.Connection,
    connect: Callable[[], psycopg.Connection],
    connect_node: cluster.NodeConnector,
    schema: str,
    version: str,
    log: Any,
) -> ScenarioResult:
    ledger, notes = sql.Identifier(schema, "ledger"), sql.Identifier(schema, "notes")
    conn.execute(
        sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT clock_timestamp())")
        .format(ledger)
    )  # fmt: skip
    conn.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, note text)").format(notes))
    conn.execute(
        "SELECT create_distributed_table(%s, 'id', shard_count => %s, colocate_with => 'none')",
        (f"{schema}.ledger", config.shard_count),
    )
    conn.execute(
        "SELECT create_distributed_table(%s, 'id', colocate_with => %s)", (f"{schema}.notes", f"{schema}.ledger")
    )
    start = 10**9  # initial rows live far from the writer's ids
    conn.execute(
        sql.SQL("INSERT INTO {} (id) SELECT g FROM generate_series(%s::bigint, %s::bigint) g").format(ledger),
        (start, start + config.initial_rows - 1),
    )
    conn.execute(sql.SQL("INSERT INTO {} SELECT g, 'n' || g FROM generate_series(1, 200) g").format(notes))
    place = cluster.own_placements(conn, f"{schema}.ledger")[0]
    target = conn.execute(
        "SELECT nodename, nodeport FROM pg_dist_node WHERE isactive AND noderole = 'primary' AND shouldhaveshards "
        "AND (nodename, nodeport) <> (%s, %s) ORDER BY groupid DESC LIMIT 1",
        (place.host, place.port),
    ).fetchone()
    if target is None:
        raise UnsafeTargetError("citus_shard_move needs a second node that may hold shards; the cluster has one")

    writer = Writer(connect, ledger, config.write_rate_hz)
    writer.start()
    time.sleep(config.baseline_s)
    locker = _LockHolder(connect_node, place, config.lock_seconds) if config.fault == "lock_moved_shard" else None
    if locker is not None:
        locker.start()
        locker.locked.wait(timeout=10)
    move_error, moved_at = "", time.time()
    started = time.perf_counter()
    try:
        conn.execute(f"SET statement_timeout = {int(config.max_seconds * 1000)}")
        move = sql.SQL("SELECT citus_move_shard_placement(%s, %s, %s, %s, %s, shard_transfer_mode => {})").format(
            sql.Literal(config.transfer_mode)  # an enum in schema citus, which the role cannot name in a cast
        )
        conn.execute(move, (place.shard_id, place.host, place.port, target[0], target[1]))
    except psycopg.Error as exc:
        move_error = describe_error(exc)
    finally:
        conn.execute("RESET statement_timeout")
    move_s = time.perf_counter() - started
    time.sleep(config.tail_s)
    writer.halt.set()
    writer.join(timeout=30)
    writer_end = time.time()
    if locker is not None:
        locker.join(timeout=config.lock_seconds + 10)
    fault = _after_move_fault(config.fault, conn, connect_node, schema, place, writer.ops)
    conn.execute("CALL citus_cleanup_orphaned_resources()")
    log.info(
        f"citus_shard_move: shard {place.shard_id} {place.host}:{place.port} -> {target[0]}:{target[1]} "
        f"in {move_s:.2f}s"
    )

    rows = [
        (Row(int(i), float(t), None), bool(moved))
        for i, t, moved in conn.execute(
            sql.SQL(
                "SELECT id, extract(epoch FROM written_at)::float8, worker_hash(id) BETWEEN %s AND %s "
                "FROM {} WHERE id < %s"
            ).format(ledger),
            (place.low, place.high, start),
        )
    ]
    hashes = dict(
        conn.execute(
            "SELECT v, worker_hash(v) FROM unnest(%s::bigint[]) v", ([op.value for op in writer.ops],)
        ).fetchall()
    )
    on_moved = [op for op in writer.ops if place.low <= hashes[op.value] <= place.high]
    verdict = judge_ledger(writer.ops, [r for r, _ in rows], moved_at, writer_end)
    outage = judge_ledger(on_moved, [r for r, m in rows if m], moved_at, writer_end)
    now_at = {
        (p.host, p.port) for p in cluster.own_placements(conn, f"{schema}.ledger") if p.shard_id == place.shard_id
    }
    note_at = {(p.host, p.port) for p in cluster.own_placements(conn, f"{schema}.notes") if p.low == place.low}
    invariants = [
        _lost(verdict),
        _duplicates(verdict),
        _layout(conn, move_error, now_at, note_at, (target[0], target[1])),
        Invariant(
            OUTAGE,
            not move_error and outage.outage_s <= config.outage_slo_s,
            f"writes to the moved shard stopped for {outage.outage_s:.2f}s at most (SLO {config.outage_slo_s}s); "
            f"{len(on_moved)} of {len(writer.ops)} writes hit it",
            {"outage_s": round(outage.outage_s, 3), "writes_on_moved_shard": len(on_moved)},
        ),
    ]
    errors = ErrorTally()
    for op in writer.ops:
        if op.outcome is Outcome.ACKNOWLEDGED:
            errors.ok()
        else:
            errors.failed(op.error or op.outcome.value)
    error_metric, error_invariant = errors.figures("ledger writes")
    latencies = [(op.completed_at - op.invoked_at) * 1000 for op in writer.ops if op.outcome is Outcome.ACKNOWLEDGED]
    during = [
        (op.completed_at - op.invoked_at) * 1000
        for op in on_moved
        if op.outcome is Outcome.ACKNOWLEDGED and moved_at <= op.invoked_at <= moved_at + move_s
    ]
    volume = MetricKind.VOLUME
    metrics = [
        Metric("move.duration_s", move_s if not move_error else float("nan"), "s"),
        Metric("move.write_outage_s", outage.outage_s, "s", samples=len(on_moved)),
        Metric("write.latency_p50_ms", percentile(latencies, 50), "ms", samples=len(latencies)),
        Metric("write.latency_p99_ms", percentile(latencies, 99), "ms", samples=len(latencies)),
        Metric("write.moved_shard_max_during_move_ms", max(during, default=float("nan")), "ms", samples=len(during)),
        Metric("ledger.acknowledged", verdict.acknowledged, "count", Direction.HIGHER_IS_BETTER, kind=volume),
        Metric("ledger.lost", len(verdict.lost), "count", kind=volume),
        Metric("ledger.duplicates", len(verdict.duplicates) + len(verdict.phantom), "count", kind=volume),
        error_metric,
    ]
    return ScenarioResult(
        area=AREA,
        metrics=metrics,
        invariants=[*invariants, error_invariant],
        environment={
            "citus_version": version,
            "schema": schema,
            "moved_shard": place.shard_id,
            "moved_from": f"{place.host}:{place.port}",
            "moved_to": f"{target[0]}:{target[1]}",
            "move_error": move_error or "none",
            "fault_injected": fault or (_lock_text(locker) if locker else "none"),
            "unknown_outcomes": verdict.unknown,
        },
        comparable_on={
            "transfer_mode": config.transfer_mode,
            "initial_rows": config.initial_rows,
            "shard_count": config.shard_count,
            "write_rate_hz": config.write_rate_hz,
            "fault": config.fault,
        },
    )


class _LockHolder(threading.Thread):
    """Holds the moved shard's table in ACCESS EXCLUSIVE mode on its worker for a while (a stuck session)."""

    def __init__(self, connect_node: cluster.NodeConnector, place: cluster.Placement, seconds: float) -> None:
        super().__init__(name="citus-shard-locker", daemon=True)
        self.connect_node, self.place, self.seconds = connect_node, place, seconds
        self.locked = threading.Event()
        self.error = ""

    def run(self) -> None:
        schema, _, name = self.place.shard.rpartition(".")
        try:
            with self.connect_node(self.place.host, self.place.port) as node:
                node.execute("SET citus.enable_manual_changes_to_shards = on")  # Citus refuses shard locks otherwise
                node.execute("BEGIN")
                node.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(schema, name)))
                self.locked.set()
                time.sleep(self.seconds)
                node.execute("COMMIT")
        except psycopg.Error as exc:
            self.error = describe_error(exc)
        finally:
            self.locked.set()


def _lock_text(locker: _LockHolder) -> str:
    if locker.error:
        return f"locking the moved shard failed: {locker.error}"
    return f"{locker.place.shard} locked on {locker.place.host}:{locker.place.port} for {locker.seconds}s"


def _after_move_fault(
    fault: str,
    conn: psycopg.Connection,
    connect_node: cluster.NodeConnector,
    schema: str,
    moved: cluster.Placement,
    ops: list[Op],
) -> str:
    """lost_row / duplicate_row, written straight into shard tables on the workers; '' for the other faults."""
    if fault not in ("lost_row", "duplicate_row"):
        return ""
    places = cluster.own_placements(conn, f"{schema}.ledger")
    now = next(p for p in places if p.shard_id == moved.shard_id)
    acked = [op.value for op in ops if op.outcome is Outcome.ACKNOWLEDGED]
    hashes = dict(conn.execute("SELECT v, worker_hash(v) FROM unnest(%s::bigint[]) v", (acked,)).fetchall())
    value = next(v for v in acked if now.low <= hashes[v] <= now.high)
    shard_schema, _, _ = now.shard.rpartition(".")
    if fault == "lost_row":
        where = now
        statement = sql.SQL("DELETE FROM {} WHERE id = %s")
    else:
        where = next(p for p in places if p.shard_id != now.shard_id)
        statement = sql.SQL("INSERT INTO {} (id) VALUES (%s)")
    with connect_node(where.host, where.port) as node:
        table = sql.Identifier(shard_schema, where.shard.rpartition(".")[2])
        node.execute(statement.format(table), (value,))
    verb = "deleted from" if fault == "lost_row" else "written again into"
    return f"acknowledged id {value} {verb} {where.shard} on {where.host}:{where.port}"


def _lost(verdict: Any) -> Invariant:
    facts = {"acknowledged": verdict.acknowledged, "lost": len(verdict.lost), "unknown": verdict.unknown}
    if verdict.lost:
        return Invariant(
            ZERO_LOST, False, f"{len(verdict.lost)} acknowledged rows missing, first {verdict.lost[:5]}", facts
        )
    return Invariant(ZERO_LOST, True, f"all {verdict.acknowledged} acknowledged rows present", facts)


def _duplicates(verdict: Any) -> Invariant:
    facts = {"duplicates": len(verdict.duplicates), "phantom": len(verdict.phantom)}
    if verdict.duplicates or verdict.phantom:
        detail = f"duplicated ids {verdict.duplicates[:5]}, rows never written {verdict.phantom[:5]}"
        return Invariant(NO_DUPLICATES, False, detail, facts)
    return Invariant(NO_DUPLICATES, True, "every row present once, and only rows that were written", facts)


def _layout(
    conn: psycopg.Connection,
    move_error: str,
    now_at: set[tuple[str, int]],
    note_at: set[tuple[str, int]],
    target: tuple[str, int],
) -> Invariant:
    problems = [f"move failed: {move_error}"] if move_error else []
    if not move_error and now_at != {target}:
        problems.append(f"moved shard is on {sorted(now_at)}, not on {target[0]}:{target[1]}")
    if note_at != now_at:
        problems.append(f"co-located shard stayed on {sorted(note_at)}")
    for check in (
        cluster.hash_ranges(conn),
        cluster.colocation(conn),
        cluster.placements_active(conn, []),
        cluster.leftovers(conn),
    ):
        if not check.passed:
            problems.append(f"{check.name}: {check.detail}")
    if problems:
        return Invariant(LAYOUT, False, "; ".join(problems)[:1500])
    return Invariant(
        LAYOUT, True, f"shard and its co-located shard now on {target[0]}:{target[1]}; metadata consistent"
    )
