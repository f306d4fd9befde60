"""Citus sharding: a seeded workload applied to Citus and to vanilla PostgreSQL, then black-box cluster checks.

Plain Python (no Dagster). Phases: create the run's schema on both (distributed, co-located and reference
tables; COPY of the initial rows), the random mix of DML and queries judged statement by statement, a timed
COPY and timed router / multi-shard / co-located join queries, the final contents compared, then (with a
fault) the fault, then the checks. Both schemas are removed afterwards and every fault undone, also on
failure. Timed operations count in `no_operation_errors`; statement outcomes are the oracle's business.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from assets.citus_sharding import cluster, coverage, faults
from assets.citus_sharding.compare import Verdict
from assets.citus_sharding.config import CitusShardingConfig
from assets.citus_sharding.oracle import Pair, Step, minimal_sequence, replayer
from assets.citus_sharding.workload import Generator
from regression_pipelines.calibration import Calibration
from regression_pipelines.errors import ResourceConfigError
from regression_pipelines.measure import ErrorTally, describe_error, percentile
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
    cluster.NO_LEFTOVERS,
    DIFFERENTIAL_MATCHES,
)
DISTRIBUTION = {"accounts": "id", "orders": "account_id"}
MINIMIZE_SECONDS = 60.0
LOG = logging.getLogger(__name__)
Calibrate = Callable[[str], Calibration]  # pgbench script -> the instrument's reading on the coordinator


@dataclass(frozen=True)
class Cluster:
    """What the scenario needs of a Citus cluster (built from the resource by the area)."""

    connect: Callable[[], psycopg.Connection]
    connect_node: cluster.NodeConnector
    connect_superuser: Callable[[], psycopg.Connection]
    version: str
    target: str  # printable, no secrets


def run(
    config: CitusShardingConfig,
    citus_cluster: Cluster,
    connect_vanilla: Callable[[], psycopg.Connection],
    schema: str,
    output_dir: Path,
    log: Any = LOG,
    calibrate: Calibrate | None = None,
) -> ScenarioResult:
    """With `calibrate`, pgbench runs the timed router query right before the timed phase."""
    citus = citus_cluster.connect()
    vanilla = connect_vanilla()
    pair = Pair(citus, vanilla, schema, config.shard_count)
    undo: list[faults.Injected] = []
    try:
        return _run(config, citus_cluster, pair, output_dir, undo, log, calibrate)
    finally:
        for injected in reversed(undo):
            try:
                injected.undo()
            except psycopg.Error as exc:
                log.warning(f"citus_sharding: undoing '{injected.description}' failed: {describe_error(exc)}")
        try:
            pair.drop()
        except psycopg.Error as exc:  # never hide the run's own outcome; the schema name says what to remove
            log.warning(f"citus_sharding: could not drop schema {schema}: {describe_error(exc)}")
        finally:
            citus.close()
            vanilla.close()


def _run(
    config: CitusShardingConfig,
    citus_cluster: Cluster,
    pair: Pair,
    output_dir: Path,
    undo: list[faults.Injected],
    log: Any,
    calibrate: Calibrate | None,
) -> ScenarioResult:
    deadline = time.monotonic() + config.max_seconds
    generator = Generator(config.seed, config.accounts, config.orders_per_account)
    initial = generator.initial_rows()
    try:
        pair.create(initial)
    except psycopg.Error as exc:
        raise ResourceConfigError(
            "CitusResource", "user", f"cannot create the run's tables on {citus_cluster.target}: {describe_error(exc)}",
            "use a role that may create schemas and distributed tables in that database",
        ) from None  # fmt: skip
    mix = generator.mix(config.statements)
    lost_at = len(mix) // 2 if config.fault == "lost_row" else -1
    truncated = False
    for index, stmt in enumerate(mix):
        if time.monotonic() >= deadline:
            truncated = True
            break
        if index == lost_at:
            undo.append(faults.lost_row(pair.citus, citus_cluster.connect_node, pair.schema))
        pair.apply(stmt)
    mix_steps = list(pair.steps)
    errors = ErrorTally()
    copy_step = pair.apply(generator.copy_batch(config.copy_rows)) if config.copy_rows else None
    top = pair.citus.execute(f'SELECT max(id) FROM "{pair.schema}".accounts').fetchone()[0] or 1
    reading = calibrate(_calibration_script(pair.schema, top)) if calibrate else None
    timed = _timed_queries(config, pair, top, errors, deadline)
    contents = pair.compare_contents()
    skew_rows = cluster.shard_rows(pair.citus, f"{pair.schema}.accounts")
    differential = _differential(config, pair, mix_steps, copy_step, contents, output_dir, initial, log)

    injected = _inject(config, citus_cluster, pair)
    if injected is not None:
        undo.append(injected)
        log.info(f"citus_sharding: fault injected: {injected.description}")
    own = [f"{pair.schema}.{t}" for t in ("accounts", "orders", "regions")]
    invariants = [
        cluster.node_health(pair.citus),
        cluster.placements_active(pair.citus, own),
        cluster.hash_ranges(pair.citus),
        cluster.rows_in_right_shard(
            pair.citus,
            citus_cluster.connect_node,
            {f"{pair.schema}.{t}": c for t, c in DISTRIBUTION.items()},
            config.sample_rows_per_shard,
            config.seed,
        ),
        cluster.colocation(pair.citus),
        cluster.leftovers(pair.citus),
        differential,
    ]
    error_metric, error_invariant = errors.figures("timed COPY and queries")
    if copy_step is not None and copy_step.judgement.verdict is not Verdict.SAME:
        errors.failed(f"COPY: {copy_step.judgement.detail}")
        error_metric, error_invariant = errors.figures("timed COPY and queries")
    metrics = [
        *_latency_metrics(timed),
        *(reading.metrics({"router.latency_p50": percentile(timed["router"], 50)}) if reading else []),
        *_copy_metrics(copy_step),
        Metric("shards.skew", coverage.skew(skew_rows), "ratio", kind=MetricKind.VOLUME, samples=len(skew_rows)),
        *_differential_metrics(mix_steps),
        error_metric,
    ]
    nodes = pair.citus.execute("SELECT count(*) FROM pg_dist_node WHERE isactive").fetchone()[0]
    return ScenarioResult(
        area=AREA,
        metrics=metrics,
        invariants=[*invariants, error_invariant],
        environment={
            "citus_version": citus_cluster.version,
            "target": citus_cluster.target,
            "active_nodes": nodes,
            "postgres_version": str(pair.vanilla.execute("SHOW server_version").fetchone()[0]),
            "schema": pair.schema,
            "fault_injected": "; ".join(i.description for i in undo) or "none",
            "workload_truncated": truncated,
            "unsupported_kinds": _unsupported_kinds(mix_steps),
        },
        comparable_on={
            "fault": config.fault,
            "accounts": config.accounts,
            "orders_per_account": config.orders_per_account,
            "shard_count": config.shard_count,
            "statements": config.statements,
            "copy_rows": config.copy_rows,
        },
    )


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


def _timed(query: PreparedQuery | None, params: tuple[Any, ...], errors: ErrorTally) -> float | None:
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


def _prepared(conn: psycopg.Connection, sql: str, errors: ErrorTally) -> PreparedQuery | None:
    try:
        return PreparedQuery(conn, sql)
    except psycopg.Error as exc:  # e.g. the cluster refuses to plan it: counted, and its timings are missing
        errors.failed(exc)
        return None


def router_query(schema: str) -> str:
    """The timed single-shard query, `$1` an account id (pgbench's calibration script runs the same)."""
    return f'SELECT balance FROM "{schema}".accounts WHERE id = $1'


def _timed_queries(
    config: CitusShardingConfig, pair: Pair, top: int, errors: ErrorTally, deadline: float
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
    for name, sql, count in plan:
        query = _prepared(pair.citus, sql, errors) if count else None
        for _ in range(count):
            if time.monotonic() >= deadline:
                return out
            params = (rng.randint(1, top),) if "$1" in sql else ()
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
    ]


def _unsupported_kinds(steps: list[Step]) -> str:
    kinds = Counter(s.stmt.kind for s in steps if s.judgement.verdict is Verdict.UNSUPPORTED)
    return ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items())) or "none"


def _differential(
    config: CitusShardingConfig,
    pair: Pair,
    steps: list[Step],
    copy_step: Step | None,
    contents: list[str],
    output_dir: Path,
    initial: dict[str, list[tuple[Any, ...]]],
    log: Any,
) -> Invariant:
    mismatches = [i for i, s in enumerate(steps) if s.judgement.verdict is Verdict.MISMATCH]
    if copy_step is not None and copy_step.judgement.verdict is Verdict.MISMATCH:
        contents = [f"timed COPY: {copy_step.judgement.detail}", *contents]
    unsupported = sum(1 for s in steps if s.judgement.verdict is Verdict.UNSUPPORTED)
    facts: dict[str, float | int | str | bool] = {
        "statements_compared": len(steps),
        "mismatches": len(mismatches),
        "unsupported": unsupported,
    }
    if not mismatches and not contents:
        detail = (
            f"{len(steps)} statements gave the same answers on Citus and PostgreSQL ({unsupported} refused by Citus "
            f"by design: {_unsupported_kinds(steps)}); final contents of 3 tables equal"
        )
        return Invariant(DIFFERENTIAL_MATCHES, True, detail, facts)
    parts = [f"{len(mismatches)} of {len(steps)} statements differ"]
    if mismatches:
        first = steps[mismatches[0]]
        parts.append(f"first: #{first.stmt.index} {first.stmt.kind}: {first.judgement.detail}")
        deadline = time.monotonic() + MINIMIZE_SECONDS
        shows = replayer(pair.citus, pair.vanilla, pair.schema, pair.shard_count, initial, deadline)
        found = minimal_sequence(steps, mismatches[0], shows, config.minimize_replays)
        facts.update(minimal_sequence_length=len(found.steps), replays=found.tests, reproduced=found.reproduced)
        path = _write_sequence(output_dir, found.steps, first, found.reproduced)
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
        log.warning(f"citus_sharding: differential mismatch; {parts[-1]}")
    parts += contents
    return Invariant(DIFFERENTIAL_MATCHES, False, "; ".join(parts)[:1500], facts)


def _write_sequence(output_dir: Path, steps: list[Any], first: Step, reproduced: bool) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "citus_mismatch.sql"
    header = [
        f"-- first mismatch: statement #{first.stmt.index} ({first.stmt.kind}): {first.judgement.detail}",
        "-- " + ("minimal sequence that shows it on fresh tables" if reproduced else "not reproduced on fresh tables"),
        "-- <schema>: the run's tables, created as in assets/citus_sharding/workload.py (setup_sql)",
    ]
    path.write_text("\n".join([*header, *(s.text() + ";" for s in steps)]) + "\n")
    return path
