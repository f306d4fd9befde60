"""Citus sharding: a seeded workload applied to Citus and to vanilla PostgreSQL, then black-box cluster checks.

Plain Python (no Dagster), in the supervisor's named phases: setup (the run's schema on both systems,
registered for removal through fresh connections: distributed, co-located and reference tables, COPY of the
initial rows), workload (the generated mix of operation shapes judged statement by statement, with the
`lost_row` fault mid-way; then a timed COPY and timed router / multi-shard / co-located join queries), settle
(final contents compared), nemesis (the other area faults, undone after the run), judge (the checks; a
mismatch or a row in the wrong shard is shrunk by replaying on fresh schemas, the shrunk case written next to
the run). Figures are recorded as soon as they exist. Every statement and timed operation counts in
`no_operation_errors` (by phase: workload, timed, settle); statement outcomes are the oracle's business, and
every outcome goes to the coverage account per shape. A lost session (a restarted server or worker, a killed
backend) is survived: the statement's outcome is UNKNOWN, counted as an error, never judged, and the pair
reconnects and re-reads before going on (see `oracle`). The run registers PostgreSQL's copy of its tables (kind
'table', on the `postgres` service: what the kit's table nemeses act on; Citus's tables are on the `citus`
service, which has no table nemeses yet), and a failed check names what PostgreSQL showed during the run
(kit.observe.postgres: a sampler every 0.5 s), or "unexplained", and any Citus node that restarted or went
silent (kit.observe.citus: each node's start time every second; a Citus error raised while a node restarted
is not judged as a difference, see `oracle`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from assets.citus_sharding import faults
from assets.citus_sharding.compare import Verdict
from assets.citus_sharding.config import CitusShardingConfig
from assets.citus_sharding.oracle import (
    MisplacementReplayer,
    Pair,
    Step,
    minimal_sequence,
    misplacing_sequence,
    replayer,
)
from assets.citus_sharding.shapes import SHAPES, mix, value_classes
from assets.citus_sharding.workload import DISTRIBUTION, TABLES, Generator, Statement
from regression_pipelines.calibration import Calibration
from regression_pipelines.errors import ResourceConfigError
from regression_pipelines.kit.checkers import citus as cluster
from regression_pipelines.kit.checkers import citus_layout
from regression_pipelines.kit.generate.coverage import Coverage
from regression_pipelines.kit.observe import citus as observe_citus
from regression_pipelines.kit.observe import postgres as observe_pg
from regression_pipelines.kit.observe.watch import Sampler
from regression_pipelines.kit.supervisor import JUDGE, NEMESIS, SETTLE, SETUP, WORKLOAD, Supervisor
from regression_pipelines.measure import ErrorTally, PhaseErrors, describe_error, percentile
from regression_pipelines.results import Direction, Invariant, Metric, MetricKind, ScenarioResult
from regression_pipelines.timed_calls import PreparedQuery

AREA = "citus_sharding"
DIFFERENTIAL_MATCHES = "differential_matches"
INVARIANTS = (
    cluster.NODES_HEALTHY,
    cluster.PLACEMENTS_ACTIVE,
    cluster.HASH_RANGES_COVER_INT32,
    cluster.ROWS_IN_RIGHT_SHARD,
    cluster.COLOCATION_CONSISTENT,
    cluster.NO_ORPHANS,
    DIFFERENTIAL_MATCHES,
)
MINIMIZE_SECONDS = 60.0
LOG = logging.getLogger(__name__)
Calibrate = Callable[[str], Calibration]  # pgbench script -> the instrument's reading on the coordinator
POST_WORKLOAD_FAULTS = ("wrong_shard_row", "leftover_prepared", "metadata_gap", "dropped_shard")


@dataclass(frozen=True)
class Cluster:
    """What the scenario needs of a Citus cluster (built from the resource by the area)."""

    connect: Callable[[], psycopg.Connection]
    connect_node: cluster.NodeConnector
    connect_superuser: Callable[[], psycopg.Connection]
    version: str
    target: str  # printable, no secrets


@dataclass
class Run:
    """One run's connections, tables, generator and what the workload produced."""

    config: CitusShardingConfig
    cluster: Cluster
    pair: Pair
    generator: Generator
    initial: dict[str, list[tuple[Any, ...]]]
    coverage: Coverage
    output_dir: Path
    log: Any
    deadline: float
    mix_steps: list[Step] = field(default_factory=list)
    copy_step: Step | None = None
    truncated: bool = False
    faults: list[faults.Injected] = field(default_factory=list)
    errors: ErrorTally = field(default_factory=ErrorTally)  # statements, timed COPY and queries, by phase
    pg_before: observe_pg.PgState | None = None  # PostgreSQL (the reference side) as the run found it
    pg_watch: Sampler[observe_pg.PgState] | None = None
    pg_look: Callable[[], observe_pg.PgState] | None = None
    observed: str = "not looked (no check failed)"
    observed_nodes: str = "not looked"  # Citus nodes that restarted or went silent during the run
    nodes: observe_citus.NodeWatch | None = None  # each Citus node's start time, looked at every second


def run(
    config: CitusShardingConfig,
    citus_cluster: Cluster,
    connect_vanilla: Callable[[], psycopg.Connection],
    schema: str,
    output_dir: Path,
    sup: Supervisor,
    log: Any = LOG,
    calibrate: Calibrate | None = None,
) -> ScenarioResult:
    """With `calibrate`, pgbench runs the timed router query right before the timed phase."""
    with sup.phase(SETUP):
        state = setup(config, citus_cluster, connect_vanilla, schema, output_dir, sup, log)
    errors = state.errors
    with sup.phase(WORKLOAD):
        workload(state, sup)
        timed, reading = timed_phase(state, errors.at("timed"), calibrate, sup)
    with sup.phase(SETTLE):
        state.pair.where = "settle"
        _back_in_step(state)
        contents = state.pair.compare_contents()
        skew_rows = _quietly(lambda: cluster.shard_rows(state.pair.citus, f"{schema}.accounts"), [])
    if config.fault in POST_WORKLOAD_FAULTS:
        with sup.phase(NEMESIS):
            inject(state, sup)
    with sup.phase(JUDGE):
        return judge(state, contents, skew_rows, timed, reading, errors, sup)


def schema_removers(
    connect: Callable[[], psycopg.Connection], schema: str, vanilla: bool, pattern: bool = False
) -> tuple[Callable[[], None], Callable[[], bool]]:
    """(remove, exists) for the run's schema (or, with `pattern`, its replay schemas) on one system, each through a
    fresh connection, so they work after a crash or a server restart too."""
    like = schema.replace("_", r"\_") + (r"\_%" if pattern else "")

    def names(conn: psycopg.Connection) -> list[str]:
        return [n for (n,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (like,))]

    def remove() -> None:
        with connect() as conn:
            _bounded(conn)
            for name in names(conn):
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
            if vanilla:
                conn.commit()

    def exists() -> bool:
        with connect() as conn:
            return bool(names(conn))

    return remove, exists


def setup(
    config: CitusShardingConfig,
    citus_cluster: Cluster,
    connect_vanilla: Callable[[], psycopg.Connection],
    schema: str,
    output_dir: Path,
    sup: Supervisor,
    log: Any,
) -> Run:
    citus, vanilla = citus_cluster.connect(), connect_vanilla()
    worker = _worker_connection(citus, citus_cluster.connect_node, log)
    for conn in (citus, vanilla, worker):
        _bounded(conn)
    for side, connect, is_vanilla in (("citus", citus_cluster.connect, False), ("postgres", connect_vanilla, True)):
        sup.created("schema", f"{side}:{schema}", *schema_removers(connect, schema, is_vanilla))
        sup.created("schema", f"{side}:{schema}_* (replays)", *schema_removers(connect, schema, is_vanilla, True))
    coverage = Coverage()
    coverage.declare((spec.shape for spec in SHAPES.values()), value_classes())
    errors = ErrorTally()
    pair = Pair(citus, vanilla, schema, config.shard_count, worker, coverage, errors=errors)
    pair.connect = _reconnector(citus_cluster, connect_vanilla, worker)
    sup.on_cleanup("close connections", pair.close)  # the pair's sessions of the moment (after reconnects too)
    generator = Generator(config.seed, config.accounts, config.orders_per_account, sink=coverage)
    initial = generator.initial_rows()
    try:
        pair.create(initial)
    except psycopg.errors.InsufficientPrivilege as exc:  # only a refused privilege is the role's fault
        raise ResourceConfigError(
            "CitusResource", "user", f"cannot create the run's tables on {citus_cluster.target}: {describe_error(exc)}",
            "use a role that may create schemas and distributed tables in that database",
        ) from None  # fmt: skip
    for table in TABLES:  # PostgreSQL's copy, on the `postgres` service: what its table nemeses act on
        sup.created("table", f"{schema}.{table}", *_table_removers(connect_vanilla, schema, table))
    deadline = time.monotonic() + config.max_seconds
    state = Run(config, citus_cluster, pair, generator, initial, coverage, output_dir, log, deadline, errors=errors)
    _start_observer(state, connect_vanilla, sup)
    _start_node_observer(state, sup)
    return state


def _reconnector(
    citus_cluster: Cluster, connect_vanilla: Callable[[], psycopg.Connection], worker: psycopg.Connection | None
) -> Callable[[str], psycopg.Connection]:
    """Fresh bounded sessions for the pair, by side (the worker: the same node as the first one)."""
    node = (worker.info.host, worker.info.port) if worker is not None else None

    def connect(side: str) -> psycopg.Connection:
        if side == "citus":
            conn = citus_cluster.connect()
        elif side == "vanilla":
            conn = connect_vanilla()
        elif node is not None:
            conn = citus_cluster.connect_node(*node)
        else:
            raise psycopg.OperationalError("no worker node to reconnect to")
        _bounded(conn)
        return conn

    return connect


def _table_removers(
    connect_vanilla: Callable[[], psycopg.Connection], schema: str, table: str
) -> tuple[Callable[[], None], Callable[[], bool]]:
    """(remove, exists) for one of PostgreSQL's tables of the run, through fresh connections."""

    def remove() -> None:
        with connect_vanilla() as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(schema, table)))
            conn.commit()

    def exists() -> bool:
        with connect_vanilla() as conn:
            return bool(conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}"."{table}"',)).fetchone()[0])

    return remove, exists


def _start_observer(state: Run, connect_vanilla: Callable[[], psycopg.Connection], sup: Supervisor) -> None:
    """Looks at PostgreSQL (the reference side: triggers, rules, restarts, outside sessions on the run's tables)
    at the start and every 0.5 s (catalog reads over a connection of its own), so a failed check names what the
    server showed, also when the fault came and went before the judge."""
    tables = [f"{state.pair.schema}.{t}" for t in TABLES]

    def look() -> observe_pg.PgState:
        return observe_pg.snapshot(connect_vanilla, tables, "regression_pipelines")

    state.pg_look = look
    state.pg_before = look()
    state.pg_watch = Sampler(look, name="citus-pg-observer").start()
    sup.on_cleanup("stop the PostgreSQL observer", state.pg_watch.stop)


DISTURBANCE_GRACE_S = 10.0  # a node restarted this long before a failing statement began still explains it


def _start_node_observer(state: Run, sup: Supervisor) -> None:
    """Looks at every Citus node's start time (kit.observe.citus) at the start and every second, so a failed check
    names a worker that restarted or went silent, and a Citus error raised while that happened is not judged as a
    difference (`Pair.disturbed`); and at outside sessions' locks on the run's tables and shards, so a stall is
    named even when every answer matched."""
    nodes = observe_citus.cluster_nodes(state.pair.citus)
    watch = observe_citus.NodeWatch(state.cluster.connect_node, nodes, schema=state.pair.schema)
    state.nodes = watch
    state.pair.disturbed = lambda statement_s: watch.disturbed(statement_s + DISTURBANCE_GRACE_S)
    sup.on_cleanup("stop the Citus node observer", watch.stop)


def _back_in_step(state: Run) -> None:
    """Before the settle compares contents: a pair left out of step by an unknown outcome re-reads (bounded);
    broken sessions are replaced; the cluster checks then judge a cluster that answers again (or say why not)."""
    pair = state.pair
    if pair.out_of_step:
        if not pair.resync():
            state.log.warning("citus_sharding: could not bring Citus and PostgreSQL back in step before settle")
        return
    for attempt in range(5):
        try:
            pair.reconnect()
            return
        except (psycopg.Error, ResourceConfigError) as exc:
            state.log.warning(f"citus_sharding: reconnect attempt {attempt + 1} failed: {describe_error(exc)}")
            time.sleep(1.0)


STATEMENT_TIMEOUT = "60s"  # a frozen worker must not hold the run: statements fail (57014) and are judged


def _bounded(conn: psycopg.Connection | None) -> None:
    """Every statement of the run's sessions ends within STATEMENT_TIMEOUT (found freezing a worker mid-run: the
    coordinator waited on it for 15 minutes, past max_seconds)."""
    if conn is not None:
        conn.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
        if not conn.autocommit:
            conn.commit()


def _worker_connection(citus: psycopg.Connection, connect_node: cluster.NodeConnector, log: Any) -> Any:
    """A worker node that plans distributed queries itself (metadata synced), for statements sent there; None
    when there is none (those statements then go to the coordinator)."""
    try:
        row = citus.execute(
            "SELECT nodename, nodeport FROM pg_dist_node WHERE isactive AND noderole = 'primary' AND groupid <> 0 "
            "AND hasmetadata AND metadatasynced ORDER BY groupid LIMIT 1"
        ).fetchone()
        return connect_node(str(row[0]), int(row[1])) if row else None
    except (psycopg.Error, ResourceConfigError) as exc:  # unreachable worker: its statements go to the coordinator
        log.warning(f"citus_sharding: no worker for worker-side statements ({describe_error(exc)})")
        return None


def workload(state: Run, sup: Supervisor) -> None:
    """The generated mix, statement by statement within the time budget; `lost_row` strikes half-way."""
    config, pair = state.config, state.pair
    statements = mix(state.generator, config.statements, deep=config.profile == "deep")
    lost_at = len(statements) // 2 if config.fault == "lost_row" else -1
    for index, stmt in enumerate(statements):
        if time.monotonic() >= state.deadline:
            state.truncated = True
            break
        if index == lost_at:
            with sup.phase(NEMESIS):
                state.faults.append(faults.lost_row(pair.citus, state.cluster.connect_node, pair.schema))
        pair.apply(stmt)
    state.mix_steps = list(pair.steps)
    sup.record(*_differential_metrics(state.mix_steps), *state.coverage.metrics())


def timed_phase(
    state: Run, errors: PhaseErrors, calibrate: Calibrate | None, sup: Supervisor
) -> tuple[dict[str, list[float]], Calibration | None]:
    """A timed COPY, the calibration, then timed router / multi-shard / join queries; figures kept at once."""
    config, pair = state.config, state.pair
    pair.where = "timed"
    state.copy_step = pair.apply(state.generator.copy_batch(config.copy_rows)) if config.copy_rows else None
    pair.steps.pop() if state.copy_step is not None else None
    sup.record(*_copy_metrics(state.copy_step))
    top_id = state.generator.next_account
    try:
        top = pair.citus.execute(sql.SQL("SELECT max(id) FROM {}").format(sql.Identifier(pair.schema, "accounts")))
        top_id = min(top.fetchone()[0] or 1, top_id)
        errors.ok()
    except psycopg.Error as exc:  # measured, not thrown: the timed queries then show what the cluster does
        errors.failed(exc)
    reading = calibrate(_calibration_script(pair.schema, top_id)) if calibrate else None
    timed = _timed_queries(config, pair, top_id, errors, state.deadline)
    sup.record(*_latency_metrics(timed))
    return timed, reading


def inject(state: Run, sup: Supervisor) -> None:
    injected = _inject(state.config, state.cluster, state.pair)
    if injected is not None:
        state.faults.append(injected)
        sup.on_cleanup(f"undo {injected.description}", injected.undo)
        state.log.info(f"citus_sharding: fault injected: {injected.description}")


def judge(
    state: Run,
    contents: list[str],
    skew_rows: list[int],
    timed: dict[str, list[float]],
    reading: Calibration | None,
    errors: ErrorTally,
    sup: Supervisor,
) -> ScenarioResult:
    """The checks; a failed one carries what PostgreSQL showed during the run (kit.observe.postgres)."""
    config, pair = state.config, state.pair
    differential = _differential(state, contents)
    sup.record(differential)
    own = [f"{pair.schema}.{t}" for t in (*DISTRIBUTION, "regions")]
    rows = _rows_in_right_shard(state)
    invariants = [
        cluster.node_health(pair.citus),
        cluster.placements_active(pair.citus, own),
        cluster.hash_ranges(pair.citus),
        rows,
        cluster.colocation(pair.citus),
        cluster.leftovers(pair.citus),
        differential,
    ]
    if state.copy_step is not None and state.copy_step.judgement.verdict not in (Verdict.SAME, Verdict.UNKNOWN):
        errors.failed(f"COPY: {state.copy_step.judgement.detail}", where="timed")
    error_metric, error_invariant = errors.figures("statements, timed COPY and queries")
    invariants = _with_cause(state, [*invariants, error_invariant])
    metrics = [
        *_latency_metrics(timed),
        *(reading.metrics({"router.latency_p50": percentile(timed["router"], 50)}) if reading else []),
        *_copy_metrics(state.copy_step),
        Metric("shards.skew", citus_layout.skew(skew_rows), "ratio", kind=MetricKind.VOLUME, samples=len(skew_rows)),
        *_differential_metrics(state.mix_steps),
        *state.coverage.metrics(),
        error_metric,
    ]
    nodes = _quietly(lambda: pair.citus.execute("SELECT count(*) FROM pg_dist_node WHERE isactive").fetchone()[0], -1)
    return ScenarioResult(
        area=AREA,
        metrics=metrics,
        invariants=invariants,
        environment=_environment(state, nodes),
        comparable_on={
            "profile": config.profile,
            "fault": config.fault,
            "accounts": config.accounts,
            "orders_per_account": config.orders_per_account,
            "shard_count": config.shard_count,
            "statements": config.statements,
            "copy_rows": config.copy_rows,
        },
    )


def _with_cause(state: Run, invariants: list[Invariant]) -> list[Invariant]:
    """Failed checks get what PostgreSQL showed during the run, or "unexplained"; passed ones stay as they are."""
    if state.pg_watch is None or state.pg_before is None or state.pg_look is None:
        return invariants
    during = state.pg_watch.stop()
    nodes = state.nodes.stop() if state.nodes is not None else ""
    state.observed_nodes = (
        nodes or "nothing abnormal (every node answered, none restarted, no outside session locked the run's tables)"
    )
    if all(inv.passed for inv in invariants):
        return invariants
    # no unexpected_writes: the run updates and deletes rows itself, so counted writes are no one else's news
    state.observed = observe_pg.explain(state.pg_before, state.pg_look(), during)
    seen = f"on Citus: {nodes}; on PostgreSQL: " if nodes else "on PostgreSQL: "
    return [
        inv
        if inv.passed
        else Invariant(inv.name, False, f"{inv.detail} — observed {seen}{state.observed}"[:2000], inv.facts)
        for inv in invariants
    ]


def _quietly(read: Callable[[], Any], instead: Any) -> Any:
    """A figure read after the workload; `instead` when the cluster cannot answer (the checks say why)."""
    try:
        return read()
    except psycopg.Error:
        return instead


def _environment(state: Run, nodes: int) -> dict[str, str | int | float | bool]:
    pair = state.pair
    return {
        "citus_version": state.cluster.version,
        "target": state.cluster.target,
        "active_nodes": nodes,
        "postgres_version": str(_quietly(lambda: pair.vanilla.execute("SHOW server_version").fetchone()[0], "?")),
        "schema": pair.schema,
        "seed": state.config.seed,
        "fault_injected": "; ".join(i.description for i in state.faults) or "none",
        "workload_truncated": state.truncated,
        "unsupported_kinds": _unsupported_kinds(state.mix_steps),
        "mismatch_kinds": _unsupported_kinds(state.mix_steps, Verdict.MISMATCH),
        "mismatch_examples": _examples(state.mix_steps),
        "slowest_statement": _slowest(state.mix_steps),
        "worker_statements_on": "a worker node" if pair.worker is not None else "the coordinator (no synced worker)",
        "coverage": state.coverage.describe(),
        "coverage_json": state.coverage.to_json(),
        "unknown_outcomes": sum(1 for s in state.mix_steps if s.judgement.verdict is Verdict.UNKNOWN),
        "reconnects": pair.reconnects,
        "resyncs": "; ".join(pair.resyncs) or "none",
        "observed.postgres": state.observed,
        "observed.citus_nodes": state.observed_nodes,
    }


def _inject(config: CitusShardingConfig, citus_cluster: Cluster, pair: Pair) -> faults.Injected | None:
    node = citus_cluster.connect_node
    if config.fault == "wrong_shard_row":
        return faults.wrong_shard_row(pair.citus, node, pair.schema)
    if config.fault == "leftover_prepared":
        return faults.leftover_prepared(pair.citus, node, pair.schema)
    if config.fault == "metadata_gap":
        return faults.metadata_gap(pair.citus, citus_cluster.connect_superuser, pair.schema)
    if config.fault == "dropped_shard":
        return faults.dropped_shard(pair.citus, node, pair.schema)
    return None


# --- timed phase -------------------------------------------------------------------------------------------


def _timed(query: PreparedQuery | None, params: tuple[Any, ...], errors: PhaseErrors) -> float | None:
    """One execution's round trip in ms (libpq directly: the figure is the cluster's, not psycopg's)."""
    if query is None:
        return None
    try:
        elapsed_ns = query.run(*params)[1]
    except psycopg.Error as exc:
        errors.failed(exc)
        return None
    errors.ok()
    return elapsed_ns / 1e6


def _prepared(conn: psycopg.Connection, sql: str, errors: PhaseErrors) -> PreparedQuery | None:
    try:
        return PreparedQuery(conn, sql)
    except psycopg.Error as exc:  # e.g. the cluster refuses to plan it: counted, and its timings are missing
        errors.failed(exc)
        return None


def router_query(schema: str) -> str:
    """The timed single-shard query, `$1` an account id (pgbench's calibration script runs the same)."""
    return f'SELECT balance FROM "{schema}".accounts WHERE id = $1'


def _timed_queries(
    config: CitusShardingConfig, pair: Pair, top: int, errors: PhaseErrors, deadline: float
) -> dict[str, list[float]]:
    """Router, multi-shard and co-located join latencies (ms); joins alternate Citus / PostgreSQL."""
    s = pair.schema
    rng = random.Random(config.seed + 1)
    join = (
        f'SELECT a.region, count(*), sum(o.amount) FROM "{s}".accounts a '
        f'JOIN "{s}".orders o ON o.account_id = a.id GROUP BY a.region'
    )
    multi = f'SELECT region, count(*), sum(balance) FROM "{s}".accounts GROUP BY region'
    plan = [("router", router_query(s), config.router_queries), ("multi_shard", multi, config.multi_shard_queries)]
    out: dict[str, list[float]] = {"router": [], "multi_shard": [], "join_citus": [], "join_vanilla": []}
    for name, text, count in plan:
        query = _prepared(pair.citus, text, errors) if count else None
        for _ in range(count):
            if time.monotonic() >= deadline:
                return out
            params = (rng.randint(1, top),) if "$1" in text else ()
            if (ms := _timed(query, params, errors)) is not None:
                out[name].append(ms)
    if config.join_queries:
        on_citus, on_vanilla = _prepared(pair.citus, join, errors), _prepared(pair.vanilla, join, errors)
        for _ in range(config.join_queries):
            if time.monotonic() >= deadline:
                break
            if (ms := _timed(on_citus, (), errors)) is not None:
                out["join_citus"].append(ms)
            if (ms := _timed(on_vanilla, (), errors)) is not None:
                out["join_vanilla"].append(ms)
        with contextlib.suppress(psycopg.Error):  # a lost session: counted above, replaced before the settle
            pair.vanilla.rollback()
    return out


def _calibration_script(schema: str, top: int) -> str:
    """pgbench's version of the timed router query (`:id` for `$1`)."""
    return f"\\set id random(1, {top})\n{router_query(schema).replace('$1', ':id')};\n"


def _latency_metrics(timed: dict[str, list[float]]) -> list[Metric]:
    metrics = []
    for name in ("router", "multi_shard"):
        for q in (50, 99):
            metrics.append(
                Metric(f"{name}.latency_p{q}_ms", percentile(timed[name], q), "ms", samples=len(timed[name]))
            )
    citus_join, vanilla_join = percentile(timed["join_citus"], 50), percentile(timed["join_vanilla"], 50)
    samples = min(len(timed["join_citus"]), len(timed["join_vanilla"]))
    metrics += [
        Metric("colocated_join.latency_p50_ms", citus_join, "ms", samples=len(timed["join_citus"])),
        Metric("colocated_join.vanilla_latency_p50_ms", vanilla_join, "ms", kind=MetricKind.INFO, samples=samples),
        Metric(
            "colocated_join.ratio_to_vanilla",
            citus_join / vanilla_join if vanilla_join else float("nan"),
            "ratio",
            samples=samples,
        ),
    ]
    return metrics


def _copy_metrics(step: Step | None) -> list[Metric]:
    if step is None or step.judgement.verdict is not Verdict.SAME:
        rate, vanilla_rate, rows = float("nan"), float("nan"), 0
    else:
        rows = len(step.stmt.copy_rows)
        rate, vanilla_rate = rows / step.citus_s, rows / step.vanilla_s
    higher = Direction.HIGHER_IS_BETTER
    return [
        Metric("copy.rows_per_s", rate, "rows/s", higher, samples=rows),
        Metric("copy.vanilla_rows_per_s", vanilla_rate, "rows/s", higher, kind=MetricKind.INFO, samples=rows),
    ]


# --- the differential verdict ------------------------------------------------------------------------------


def _differential_metrics(steps: list[Step]) -> list[Metric]:
    verdicts = Counter(s.judgement.verdict for s in steps)
    lower, higher = Direction.LOWER_IS_BETTER, Direction.HIGHER_IS_BETTER
    return [
        Metric("differential.statements_compared", len(steps), "count", higher, kind=MetricKind.VOLUME),
        Metric("differential.mismatches", verdicts[Verdict.MISMATCH], "count", lower, kind=MetricKind.VOLUME),
        Metric("differential.unsupported", verdicts[Verdict.UNSUPPORTED], "count", lower, kind=MetricKind.VOLUME),
        Metric("differential.unknown", verdicts[Verdict.UNKNOWN], "count", lower, kind=MetricKind.VOLUME),
        # one statement's worst case is too noisy to judge; it is the figure that shows a stall (a lock held on a
        # shard, a paused node) that the timed queries' percentiles, measured apart, cannot
        Metric("differential.slowest_citus_ms", max((s.citus_s for s in steps), default=0.0) * 1000, "ms",
               kind=MetricKind.INFO),
        Metric("differential.slowest_vanilla_ms", max((s.vanilla_s for s in steps), default=0.0) * 1000, "ms",
               kind=MetricKind.INFO),
    ]  # fmt: skip


def _slowest(steps: list[Step]) -> str:
    """The statement that took longest on Citus: '#12 update_from (2034.1 ms on Citus, 1.2 ms on PostgreSQL)'."""
    if not steps:
        return "none"
    step = max(steps, key=lambda s: s.citus_s)
    return f"#{step.stmt.index} {step.stmt.kind} ({step.citus_s * 1000:.1f} ms on Citus, " \
           f"{step.vanilla_s * 1000:.1f} ms on PostgreSQL)"  # fmt: skip


def _examples(steps: list[Step]) -> str:
    """The first difference of each mismatching shape, as JSON (which answer differed, per planner path)."""
    first: dict[str, str] = {}
    for step in steps:
        if step.judgement.verdict is Verdict.MISMATCH and step.stmt.kind not in first:
            first[step.stmt.kind] = f"#{step.stmt.index}: {step.judgement.detail[:160]}"
    return json.dumps(first, sort_keys=True)


def _unsupported_kinds(steps: list[Step], verdict: Verdict = Verdict.UNSUPPORTED) -> str:
    kinds = Counter(s.stmt.kind for s in steps if s.judgement.verdict is verdict)
    return ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items())) or "none"


def _differential(state: Run, contents: list[str]) -> Invariant:
    steps, copy_step = state.mix_steps, state.copy_step
    mismatches = [i for i, s in enumerate(steps) if s.judgement.verdict is Verdict.MISMATCH]
    if copy_step is not None and copy_step.judgement.verdict is Verdict.MISMATCH:
        contents = [f"timed COPY: {copy_step.judgement.detail}", *contents]
    unsupported = sum(1 for s in steps if s.judgement.verdict is Verdict.UNSUPPORTED)
    unknown = sum(1 for s in steps if s.judgement.verdict is Verdict.UNKNOWN)
    facts: dict[str, float | int | str | bool] = {
        "statements_compared": len(steps),
        "mismatches": len(mismatches),
        "unsupported": unsupported,
        "unknown": unknown,
    }
    not_judged = (
        f"; {unknown} not judged (outcome unknown: a session was lost; counted in no_operation_errors)"
        if unknown
        else ""
    )
    if not mismatches and not contents:
        detail = (
            f"{len(steps)} statements gave the same answers on Citus and PostgreSQL ({unsupported} refused by Citus "
            f"by design for their shape: {_unsupported_kinds(steps)}); final contents of {len(TABLES)} "
            f"tables equal{not_judged}"
        )
        return Invariant(DIFFERENTIAL_MATCHES, True, detail, facts)
    parts = [f"{len(mismatches)} of {len(steps)} statements differ{not_judged}"]
    if mismatches:
        parts += _shrink_mismatch(state, mismatches[0], facts)
    parts += contents
    return Invariant(DIFFERENTIAL_MATCHES, False, "; ".join(parts)[:1500], facts)


def _shrink_mismatch(state: Run, first_index: int, facts: dict[str, Any]) -> list[str]:
    """The fewest statements that still show the first mismatch on fresh schemas, written next to the run."""
    first = state.mix_steps[first_index]
    parts = [f"first: #{first.stmt.index} {first.stmt.kind}: {first.judgement.detail}"]
    shows = replayer(state.pair, state.initial, time.monotonic() + MINIMIZE_SECONDS)
    found = minimal_sequence(state.mix_steps, first_index, shows, state.config.minimize_replays)
    facts.update(minimal_sequence_length=len(found.steps), replays=found.tests, reproduced=found.reproduced)
    header = f"first mismatch: statement #{first.stmt.index} ({first.stmt.kind}): {first.judgement.detail}"
    path = _write_case(state.output_dir / "citus_mismatch.sql", header, found.steps, found.reproduced)
    if found.reproduced:
        shown = " ; ".join(s.text() for s in found.steps[-3:])
        parts.append(
            f"minimal sequence: {len(found.steps)} statements ({found.tests} replays"
            f"{'' if found.complete else ', budget spent'}), ending: {shown}"
        )
    else:
        parts.append(
            f"did not come back when the {len(found.steps)} statements were replayed on fresh tables: the state "
            "changed outside the statement sequence (e.g. a shard written on a worker)"
        )
    parts.append(f"sequence in {path}")
    facts["sequence_file"] = str(path)
    state.log.warning(f"citus_sharding: differential mismatch; {parts[-1]}")
    return parts


def _rows_in_right_shard(state: Run) -> Invariant:
    """The row-placement check; on failure, the statement that left rows in the wrong shard, shrunk by replay."""
    config, pair = state.config, state.pair
    tables = {f"{pair.schema}.{t}": c for t, c in DISTRIBUTION.items()}
    check = cluster.rows_in_right_shard(
        pair.citus, state.cluster.connect_node, tables, config.sample_rows_per_shard, config.seed
    )
    if check.passed or not check.facts.get("rows_misplaced"):
        return check
    skip = (Verdict.UNSUPPORTED, Verdict.UNKNOWN)
    statements = [s.stmt for s in state.mix_steps if s.judgement.verdict not in skip]
    replayer = MisplacementReplayer(
        pair.citus, pair.worker, state.cluster.connect_node, pair.schema, config.shard_count, state.initial,
        time.monotonic() + MINIMIZE_SECONDS,
    )  # fmt: skip
    try:
        result = misplacing_sequence(statements, replayer, config.minimize_replays)
    except psycopg.Error as exc:  # a replay the cluster could not run: the check stands, unshrunk
        detail = f"{check.detail}; not traced to a statement: replaying failed ({describe_error(exc)})"
        return Invariant(check.name, False, detail[:1500], dict(check.facts))
    facts = {**check.facts, "replays": result.replays}
    if result.found is None:
        detail = (
            f"{check.detail}; the workload replayed on fresh tables left every row in its shard: the rows were "
            "placed outside the statement sequence (e.g. written on a worker)"
        )
        return Invariant(check.name, False, detail[:1500], facts)
    found = result.found
    culprit = found.steps[-1]
    header = f"rows left in a shard that does not own their key after statement #{culprit.index} ({culprit.kind})"
    path = _write_case(state.output_dir / "citus_misplaced.sql", header, found.steps, True)
    facts.update(minimal_sequence_length=len(found.steps), culprit=culprit.kind, sequence_file=str(path))
    detail = (
        f"{check.detail}; caused by #{culprit.index} {culprit.kind}: {culprit.text()} (minimal sequence "
        f"{len(found.steps)} statements, {result.replays} replays{'' if found.complete else ', budget spent'}; "
        f"in {path})"
    )
    state.log.warning(f"citus_sharding: rows in the wrong shard; sequence in {path}")
    return Invariant(check.name, False, detail[:1500], facts)


def _write_case(path: Path, header: str, steps: list[Statement], reproduced: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"-- {header}",
        "-- " + ("minimal sequence that shows it on fresh tables" if reproduced else "not reproduced on fresh tables"),
        "-- <schema>: the run's tables, created as in assets/citus_sharding/workload.py (setup_sql)",
        *(s.text() + ";" for s in steps),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
