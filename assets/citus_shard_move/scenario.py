"""A shard move under a write ledger: does an online move lose or duplicate acknowledged rows, and how long
do writes to the moved shard stop?

Plain Python (no Dagster), in the supervisor's named phases: setup (a ledger table and a co-located one in a
schema of the run's own, in a colocation group of their own, so only the run's shards move), workload (the kit's
ledger writer commits ids 1, 2, 3, ... through the coordinator at a fixed rate, each id once, while the shard
moves), nemesis (the area's own faults), settle, judge (the kit's ledger judge). The outage is the largest gap
between committed rows of the moved shard (server timestamps), so writes to other shards cannot hide it. The
schema is registered with the supervisor, which removes it afterwards through fresh connections.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from assets.citus_shard_move.config import ShardMoveConfig
from regression_pipelines.errors import UnsafeTargetError
from regression_pipelines.kit.checkers import citus as cluster
from regression_pipelines.kit.checkers.ledger import LedgerVerdict, LedgerWriter, Op, Outcome, Row, judge_ledger
from regression_pipelines.kit.observe import citus as observe_citus
from regression_pipelines.kit.supervisor import JUDGE, NEMESIS, SETTLE, SETUP, WORKLOAD, Supervisor
from regression_pipelines.measure import ErrorTally, describe_error, percentile
from regression_pipelines.results import Direction, Invariant, Metric, MetricKind, ScenarioResult

AREA = "citus_shard_move"
ZERO_LOST = "zero_lost_acknowledged_writes"
NO_DUPLICATES = "no_duplicate_or_phantom_writes"
LAYOUT = "layout_consistent_after_move"
OUTAGE = "write_outage_within_slo"
INVARIANTS = (ZERO_LOST, NO_DUPLICATES, LAYOUT, OUTAGE)
INITIAL_START = 10**9  # initial rows live far from the writer's ids


@dataclass(frozen=True)
class Citus:
    """What the scenario needs of the cluster: fresh coordinator and node connections (autocommit)."""

    connect: Callable[[], psycopg.Connection]
    connect_node: cluster.NodeConnector
    version: str


@dataclass
class Move:
    """What the workload and the move produced, before judging."""

    schema: str
    place: cluster.Placement
    target: tuple[str, int]
    writer: LedgerWriter
    error: str = ""
    started_at: float = 0.0  # epoch seconds
    seconds: float = float("nan")
    writer_end: float = 0.0
    fault: str = "none"
    locker: _LockHolder | None = field(default=None, repr=False)
    nodes: observe_citus.NodeWatch | None = field(default=None, repr=False)  # restarts and silences, named

    @property
    def ledger(self) -> sql.Identifier:
        return sql.Identifier(self.schema, "ledger")


Remover = tuple[Callable[[], None], Callable[[], bool]]


def schema_remover(connect: Callable[[], psycopg.Connection], schema: str) -> Remover:
    """(remove, exists) for the run's schema, each on a fresh coordinator connection (after a crash too)."""

    def remove() -> None:
        with connect() as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            conn.execute("CALL citus_cleanup_orphaned_resources()")

    def exists() -> bool:
        with connect() as conn:
            return bool(conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone())

    return remove, exists


def run(config: ShardMoveConfig, citus: Citus, schema: str, sup: Supervisor, log: Any) -> ScenarioResult:
    with sup.phase(SETUP):
        move = setup(config, citus, schema, sup)
    with sup.phase(WORKLOAD):
        workload(config, citus, move, sup)
    with sup.phase(SETTLE):
        settle(config, move)
    if config.fault in ("lost_row", "duplicate_row"):
        with sup.phase(NEMESIS):
            move.fault = _after_move_fault(config.fault, citus, move)
    with sup.phase(JUDGE):
        log.info(
            f"citus_shard_move: shard {move.place.shard_id} {move.place.host}:{move.place.port} -> "
            f"{move.target[0]}:{move.target[1]} in {move.seconds:.2f}s"
        )
        return judge(config, citus, move, sup)


def setup(config: ShardMoveConfig, citus: Citus, schema: str, sup: Supervisor) -> Move:
    """The run's schema (registered for removal), the ledger and its co-located table, the shard and its target."""
    with citus.connect() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        sup.created("schema", schema, *schema_remover(citus.connect, schema))
        ledger, notes = sql.Identifier(schema, "ledger"), sql.Identifier(schema, "notes")
        conn.execute(
            sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT "
                    "clock_timestamp())").format(ledger)
        )  # fmt: skip
        conn.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, note text)").format(notes))
        conn.execute(
            "SELECT create_distributed_table(%s, 'id', shard_count => %s, colocate_with => 'none')",
            (f"{schema}.ledger", config.shard_count),
        )
        conn.execute(
            "SELECT create_distributed_table(%s, 'id', colocate_with => %s)", (f"{schema}.notes", f"{schema}.ledger")
        )
        conn.execute(
            sql.SQL("INSERT INTO {} (id) SELECT g FROM generate_series(%s::bigint, %s::bigint) g").format(ledger),
            (INITIAL_START, INITIAL_START + config.initial_rows - 1),
        )
        conn.execute(sql.SQL("INSERT INTO {} SELECT g, 'n' || g FROM generate_series(1, 200) g").format(notes))
        place = cluster.own_placements(conn, f"{schema}.ledger")[0]
        target = conn.execute(
            "SELECT nodename, nodeport FROM pg_dist_node WHERE isactive AND noderole = 'primary' AND "
            "shouldhaveshards AND (nodename, nodeport) <> (%s, %s) ORDER BY groupid DESC LIMIT 1",
            (place.host, place.port),
        ).fetchone()
        nodes = observe_citus.cluster_nodes(conn)
    if target is None:
        raise UnsafeTargetError("citus_shard_move needs a second node that may hold shards; the cluster has one")
    max_ops = int(config.write_rate_hz * (config.baseline_s + config.max_seconds + config.tail_s + 60))
    insert = sql.SQL("INSERT INTO {} (id) VALUES (%s)").format(sql.Identifier(schema, "ledger"))
    writer = LedgerWriter(lambda: _bounded(citus.connect()), insert, config.write_rate_hz, max_ops,
                          name="citus-ledger-writer")  # fmt: skip
    move = Move(schema, place, (str(target[0]), int(target[1])), writer)
    move.nodes = observe_citus.NodeWatch(citus.connect_node, nodes)
    sup.on_cleanup("stop the Citus node observer", move.nodes.stop)
    return move


WRITE_TIMEOUT = "10s"  # a frozen worker must not hold the writer past the run: the insert fails and is judged


def _bounded(conn: psycopg.Connection) -> psycopg.Connection:
    conn.execute(f"SET statement_timeout = '{WRITE_TIMEOUT}'")
    return conn


def workload(config: ShardMoveConfig, citus: Citus, move: Move, sup: Supervisor) -> None:
    """The writer commits through the baseline, the move and the tail; the move's duration is kept at once."""
    move.writer.start()
    sup.on_cleanup("stop the ledger writer", lambda: _stop(move.writer))
    time.sleep(config.baseline_s)
    if config.fault == "lock_moved_shard":
        with sup.phase(NEMESIS):
            move.locker = _LockHolder(citus.connect_node, move.place, config.lock_seconds)
            move.locker.start()
            move.locker.locked.wait(timeout=10)
    move.started_at = time.time()
    started = time.perf_counter()
    with citus.connect() as conn:
        try:
            conn.execute(f"SET statement_timeout = {int(config.max_seconds * 1000)}")
            statement = sql.SQL(
                "SELECT citus_move_shard_placement(%s, %s, %s, %s, %s, shard_transfer_mode => {})"
            ).format(sql.Literal(config.transfer_mode))  # an enum in schema citus, which the role cannot name
            place = move.place
            conn.execute(statement, (place.shard_id, place.host, place.port, *move.target))
            move.seconds = time.perf_counter() - started
        except psycopg.Error as exc:
            move.error = describe_error(exc)
    sup.record(Metric("move.duration_s", move.seconds, "s"))
    time.sleep(config.tail_s)


def settle(config: ShardMoveConfig, move: Move) -> None:
    """Stop the writer (its history is complete from here on) and the lock holder; tidy the old placement."""
    _stop(move.writer)
    move.writer_end = time.time()
    if move.locker is not None:
        move.locker.join(timeout=config.lock_seconds + 10)
        move.fault = _lock_text(move.locker)


def _stop(writer: LedgerWriter) -> None:
    writer.stop()
    if writer.is_alive():
        writer.join(timeout=30)


def judge(config: ShardMoveConfig, citus: Citus, move: Move, sup: Supervisor) -> ScenarioResult:
    ops = move.writer.ops
    with citus.connect() as conn:
        conn.execute("CALL citus_cleanup_orphaned_resources()")
        rows, on_moved = _rows(conn, move)
        verdict = judge_ledger(ops, [r for r, _ in rows], move.started_at, move.writer_end)
        outage = judge_ledger(on_moved, [r for r, moved in rows if moved], move.started_at, move.writer_end)
        sup.record(*_ledger_metrics(verdict, outage, len(on_moved)))
        layout = _layout(conn, move)
    invariants = [
        _lost(verdict),
        _duplicates(verdict),
        layout,
        Invariant(
            OUTAGE,
            not move.error and outage.outage_s <= config.outage_slo_s,
            f"writes to the moved shard stopped for {outage.outage_s:.2f}s at most (SLO {config.outage_slo_s}s); "
            f"{len(on_moved)} of {len(ops)} writes hit it" + (f"; the move failed: {move.error}" if move.error else ""),
            {"outage_s": round(outage.outage_s, 3), "writes_on_moved_shard": len(on_moved)},
        ),
    ]
    error_metric, error_invariant = _errors(ops)
    if move.nodes is not None:  # a node that restarted or went silent is named in every failed check
        invariants, [error_invariant] = move.nodes.annotate(invariants), move.nodes.annotate([error_invariant])
    sup.record(*invariants)
    return ScenarioResult(
        area=AREA,
        metrics=[*_latency_metrics(move, on_moved), error_metric],
        invariants=[*invariants, error_invariant],
        environment={
            "citus_version": citus.version,
            "schema": move.schema,
            "moved_shard": move.place.shard_id,
            "moved_from": f"{move.place.host}:{move.place.port}",
            "moved_to": f"{move.target[0]}:{move.target[1]}",
            "move_error": move.error or "none",
            "fault_injected": move.fault,
            "unknown_outcomes": verdict.unknown,
            "observed.citus_nodes": (move.nodes.stop() if move.nodes else "") or "nothing abnormal",
        },
        comparable_on={
            "transfer_mode": config.transfer_mode,
            "initial_rows": config.initial_rows,
            "shard_count": config.shard_count,
            "write_rate_hz": config.write_rate_hz,
            "fault": config.fault,
        },
    )


def _rows(conn: psycopg.Connection, move: Move) -> tuple[list[tuple[Row, bool]], list[Op]]:
    """The ledger's committed rows (with: on the moved shard?) and the writes whose id hashes to the moved shard."""
    low, high = move.place.low, move.place.high
    rows = [
        (Row(int(i), float(t)), bool(moved))
        for i, t, moved in conn.execute(
            sql.SQL(
                "SELECT id, extract(epoch FROM written_at)::float8, worker_hash(id) BETWEEN %s AND %s "
                "FROM {} WHERE id < %s"
            ).format(move.ledger),
            (low, high, INITIAL_START),
        )
    ]
    values = [op.value for op in move.writer.ops]
    hashes = dict(conn.execute("SELECT v, worker_hash(v) FROM unnest(%s::bigint[]) v", (values,)).fetchall())
    return rows, [op for op in move.writer.ops if low <= hashes[op.value] <= high]


def _ledger_metrics(verdict: LedgerVerdict, outage: LedgerVerdict, on_moved: int) -> list[Metric]:
    volume = MetricKind.VOLUME
    return [
        Metric("move.write_outage_s", outage.outage_s, "s", samples=on_moved),
        Metric("ledger.acknowledged", verdict.acknowledged, "count", Direction.HIGHER_IS_BETTER, kind=volume),
        Metric("ledger.lost", len(verdict.lost), "count", kind=volume),
        Metric("ledger.duplicates", len(verdict.duplicates) + len(verdict.phantom), "count", kind=volume),
    ]


def _latency_metrics(move: Move, on_moved: list[Op]) -> list[Metric]:
    acked = [op for op in move.writer.ops if op.outcome is Outcome.ACKNOWLEDGED]
    latencies = [(op.completed_at - op.invoked_at) * 1000 for op in acked]
    end = move.started_at + (move.seconds if move.seconds == move.seconds else 0.0)
    during = [
        (op.completed_at - op.invoked_at) * 1000
        for op in on_moved
        if op.outcome is Outcome.ACKNOWLEDGED and move.started_at <= op.invoked_at <= end
    ]
    return [
        Metric("write.latency_p50_ms", percentile(latencies, 50), "ms", samples=len(latencies)),
        Metric("write.latency_p99_ms", percentile(latencies, 99), "ms", samples=len(latencies)),
        Metric("write.moved_shard_max_during_move_ms", max(during, default=float("nan")), "ms", samples=len(during)),
    ]


def _errors(ops: list[Op]) -> tuple[Metric, Invariant]:
    errors = ErrorTally()
    for op in ops:
        if op.outcome is Outcome.ACKNOWLEDGED:
            errors.ok()
        else:
            errors.failed(op.error or op.outcome.value)
    return errors.figures("ledger writes")


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


def _after_move_fault(fault: str, citus: Citus, move: Move) -> str:
    """lost_row / duplicate_row, written straight into shard tables on the workers."""
    with citus.connect() as conn:
        places = cluster.own_placements(conn, f"{move.schema}.ledger")
        now = next(p for p in places if p.shard_id == move.place.shard_id)
        acked = [op.value for op in move.writer.ops if op.outcome is Outcome.ACKNOWLEDGED]
        hashes = dict(conn.execute("SELECT v, worker_hash(v) FROM unnest(%s::bigint[]) v", (acked,)).fetchall())
    value = next(v for v in acked if now.low <= hashes[v] <= now.high)
    if fault == "lost_row":
        where, statement = now, sql.SQL("DELETE FROM {} WHERE id = %s")
    else:
        other = next(p for p in places if p.shard_id != now.shard_id)
        where, statement = other, sql.SQL("INSERT INTO {} (id) VALUES (%s)")
    shard_schema, _, shard_table = where.shard.rpartition(".")
    with citus.connect_node(where.host, where.port) as node:
        node.execute(statement.format(sql.Identifier(shard_schema, shard_table)), (value,))
    verb = "deleted from" if fault == "lost_row" else "written again into"
    return f"acknowledged id {value} {verb} {where.shard} on {where.host}:{where.port}"


def _lost(verdict: LedgerVerdict) -> Invariant:
    facts = {"acknowledged": verdict.acknowledged, "lost": len(verdict.lost), "unknown": verdict.unknown}
    if verdict.lost:
        return Invariant(
            ZERO_LOST, False, f"{len(verdict.lost)} acknowledged rows missing, first {verdict.lost[:5]}", facts
        )
    return Invariant(ZERO_LOST, True, f"all {verdict.acknowledged} acknowledged rows present", facts)


def _duplicates(verdict: LedgerVerdict) -> Invariant:
    facts = {"duplicates": len(verdict.duplicates), "phantom": len(verdict.phantom)}
    if verdict.duplicates or verdict.phantom:
        detail = f"duplicated ids {verdict.duplicates[:5]}, rows never written {verdict.phantom[:5]}"
        return Invariant(NO_DUPLICATES, False, detail, facts)
    return Invariant(NO_DUPLICATES, True, "every row present once, and only rows that were written", facts)


def _layout(conn: psycopg.Connection, move: Move) -> Invariant:
    """The moved shard and its co-located shard are on the target, and the cluster's metadata is consistent."""
    now_at = {(p.host, p.port) for p in cluster.own_placements(conn, f"{move.schema}.ledger")
              if p.shard_id == move.place.shard_id}  # fmt: skip
    note_at = {(p.host, p.port) for p in cluster.own_placements(conn, f"{move.schema}.notes")
               if p.low == move.place.low}  # fmt: skip
    problems = [f"move failed: {move.error}"] if move.error else []
    if not move.error and now_at != {move.target}:
        problems.append(f"moved shard is on {sorted(now_at)}, not on {move.target[0]}:{move.target[1]}")
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
        LAYOUT, True, f"shard and its co-located shard now on {move.target[0]}:{move.target[1]}; metadata consistent"
    )
