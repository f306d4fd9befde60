"""Delta change data feed: a seeded workload on a CDF-enabled table, replayed and cross-read against its model.

Plain Python (no Dagster). Phases: create (version 0), single writer (appends, updates, deletes, MERGE
upserts, partition overwrites, a schema-compatible column, a checkpoint boundary crossed), concurrent writers
on disjoint keys in shared files (real conflicts, rerun), OPTIMIZE; then every version is read back (delta-rs,
DuckDB, Spark when reachable) and judged by `oracle`; then VACUUM. The table is removed afterwards, also on
failure. Write errors are measured (`no_operation_errors`); a check's own reads report in that check.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from assets.delta_cdf import faults, oracle
from assets.delta_cdf.config import DeltaCdfConfig
from assets.delta_cdf.engines import DeltaEngine, DeltaRsEngine, DuckDbEngine, SparkEngine
from assets.delta_cdf.model import Change, VersionedModel, partition_of
from assets.delta_cdf.oracle import CommitInfo, Readings
from assets.delta_cdf.workload import (
    TAG,
    Planner,
    WorkloadLog,
    Writer,
    cdf_property_step,
    create_step,
    optimize_step,
    run_concurrently,
    serial_kinds,
)
from regression_pipelines.errors import ResourceConfigError
from regression_pipelines.measure import ErrorTally, percentile
from regression_pipelines.results import Direction, Metric, MetricKind, ScenarioResult

AREA = "delta_cdf"
INVARIANTS = oracle.INVARIANTS
LATENCY_KINDS = ("append", "update", "delete", "merge", "overwrite")
PACKAGES = ("deltalake", "pyarrow", "duckdb", "pyspark", "delta-spark", "pysail")
LOG = logging.getLogger(__name__)


def run(
    config: DeltaCdfConfig,
    table_uri: str,
    remove_table: Callable[[str], None],
    spark: SparkEngine | None = None,
    spark_unavailable: str = "",
    log: Any = LOG,
) -> ScenarioResult:
    try:
        return _run(config, table_uri, spark, spark_unavailable, log)
    finally:
        remove_table(table_uri)


def _run(
    config: DeltaCdfConfig, uri: str, spark: SparkEngine | None, spark_unavailable: str, log: Any
) -> ScenarioResult:
    workload = WorkloadLog()
    phases = _write(config, uri, workload, log)
    model, commits = _model_from_log(uri, workload)
    cdf_enabled, files = _table_facts(uri, model.latest)
    plan = oracle.plan_ranges(cdf_enabled, config.seed, config.replay_pairs, config.split_triples)
    log.info(f"delta_cdf: {model.latest + 1} versions, {len(plan.feed_ranges())} feed ranges to read")

    delta_rs = DeltaRsEngine()
    engines: list[DeltaEngine] = [delta_rs, DuckDbEngine()]
    unavailable = {} if spark is not None else {"spark": spark_unavailable or "not configured"}
    environment = _versions()
    if spark is not None:
        environment.update(spark.probe(uri))
        engines.append(spark)
    else:
        environment["spark_engine"] = f"unavailable: {unavailable['spark']}"

    readings = Readings(model=model, cdf_enabled=cdf_enabled, commits=commits, plan=plan)
    for engine in engines:
        readings.engines[engine.name] = {v: engine.snapshot(uri, v) for v in range(model.latest + 1)}
    readings.snapshots = readings.engines[delta_rs.name]
    readings.feeds = {(a, b): delta_rs.change_feed(uri, a, b) for a, b in plan.feed_ranges()}
    if plan.stretches:
        a, b = plan.stretches[-1]
        for engine in engines[1:]:
            feed = engine.change_feed(uri, a, b)
            if feed is not None:
                readings.engine_feeds[engine.name] = feed

    throughput = _timed_snapshot_reads(engines, uri, model.latest, config.read_repeats, workload.errors)
    table_bytes = _folder_bytes(uri)
    vacuum_s, vacuumed = _vacuum(uri, workload.errors)
    readings.after_vacuum = delta_rs.snapshot(uri, model.latest)
    environment["cdf_after_vacuum"] = _feed_after_vacuum(delta_rs, uri, plan)

    invariants = [
        oracle.check_replay(readings),
        oracle.check_well_formed(readings),
        oracle.check_range_splitting(readings),
        oracle.check_operation_metrics(readings),
        oracle.check_compaction_and_time_travel(readings),
        oracle.check_engines_agree(readings, unavailable),
    ]
    error_metric, error_invariant = workload.errors.figures("writes and timed reads")
    metrics = [
        *_write_metrics(workload, phases),
        *_read_metrics(readings, throughput),
        *_table_metrics(files, table_bytes, model.latest, vacuum_s, vacuumed),
        error_metric,
    ]
    environment.update(
        {
            "checkpoints": len(list((Path(uri) / "_delta_log").glob("*.checkpoint.parquet"))),
            "cdf_stretches": ",".join(f"{a}-{b}" for a, b in plan.stretches),
            "workload_truncated": phases["truncated"],
        }
    )
    return ScenarioResult(
        area=AREA,
        metrics=metrics,
        invariants=[*invariants, error_invariant],
        environment=environment,
        comparable_on={
            "engine": "delta-rs",
            "fault": config.fault,
            "writers": config.writers,
            "initial_rows": config.initial_rows,
            "rows_per_commit": config.rows_per_commit,
            "serial_commits": config.serial_commits,
            "concurrent_commits": config.concurrent_commits,
            "partitions": config.partitions,
        },
    )


# --- writing -----------------------------------------------------------------------------------------------


def _write(config: DeltaCdfConfig, uri: str, workload: WorkloadLog, log: Any) -> dict[str, Any]:
    """All write phases; returns their timings. Faults are injected at fixed points of the serial phase."""
    deadline = time.monotonic() + config.max_seconds
    rng = random.Random(config.seed)
    first = tuple(
        (k, partition_of(k, config.partitions), rng.randint(0, 10_000), None) for k in range(config.initial_rows)
    )
    writer = Writer(uri, 0, workload, config.max_conflict_retries)
    created = writer.run(create_step(uri, first, config), creates_table=True)
    if created.error is not None:
        raise ResourceConfigError(
            "DeltaLakeResource", "root", f"cannot create a Delta table at {uri}: {created.error}", "check the folder"
        )
    planner = Planner(config, 0, 1, workload.state, config.seed)
    kinds = serial_kinds(config.serial_commits, rng)
    fault_at = len(kinds) * 3 // 4
    truncated = False
    started = time.perf_counter()
    for index, kind in enumerate(kinds):
        if time.monotonic() >= deadline:
            truncated = True
            break
        if index == fault_at:
            _inject_during(config, uri, writer, planner)
        writer.run(planner.step(kind))
    serial_s = time.perf_counter() - started
    if config.fault == "drop_change_data":
        _drop_change_data(uri, workload, log)
    concurrent_s = 0.0
    if config.concurrent_commits and time.monotonic() < deadline:
        stride = config.writers
        planners = [Planner(config, w, stride, workload.state, config.seed + 100 + w) for w in range(config.writers)]
        for p in planners:
            p.with_note = planner.with_note
        concurrent_s = run_concurrently(uri, planners, config.concurrent_commits, workload, config, deadline)
    else:
        truncated = truncated or bool(config.concurrent_commits)
    if config.fault == "compaction_by_rewrite":
        compaction = writer.run(faults.rewrite_compaction(workload.state, planner.with_note))
    else:
        compaction = writer.run(optimize_step())
    return {
        "serial_s": serial_s,
        "concurrent_s": concurrent_s,
        "optimize_s": compaction.latency_s if compaction.error is None else float("nan"),
        "truncated": truncated,
    }


def _inject_during(config: DeltaCdfConfig, uri: str, writer: Writer, planner: Planner) -> None:
    """Faults that are commits of their own, made by the single writer at a fixed point."""
    if config.fault == "cdf_off_commit":
        writer.run(cdf_property_step(False))
        writer.run(planner.step("update"))
        writer.run(cdf_property_step(True))
    elif config.fault == "skewed_clock_commit":
        rows = planner.fresh(config.rows_per_commit)
        planner.keys += [r[0] for r in rows]
        writer.run(faults.skewed_clock_append(uri, rows, planner.with_note))
    elif config.fault == "wrong_row_count_stats":
        rows = planner.fresh(config.rows_per_commit, part=partition_of(0, config.partitions))
        planner.keys += [r[0] for r in rows]
        writer.run(faults.wrong_stats_append(uri, rows, planner.with_note))


def _drop_change_data(uri: str, workload: WorkloadLog, log: Any) -> None:
    """After its commit, delete the change data of the first UPDATE the single writer made."""
    versions = _versions_by_tag(uri)
    update = next(o for o in workload.outcomes if o.step.kind == "update" and o.error is None)
    path = faults.drop_change_data(uri, versions[update.tag])
    log.info(f"delta_cdf fault: removed {path} (version {versions[update.tag]})")


# --- reading the log back into the model -------------------------------------------------------------------


def _versions_by_tag(uri: str) -> dict[str, int]:
    return {h[TAG]: int(h["version"]) for h in DeltaTable(uri).history() if TAG in h}


def _model_from_log(uri: str, workload: WorkloadLog) -> tuple[VersionedModel, dict[int, CommitInfo]]:
    """Each version's change, found by the tag its commit carries; a commit nobody here made is a harness error."""
    outcomes = {o.tag: o for o in workload.outcomes}
    changes: dict[int, Change] = {}
    commits: dict[int, CommitInfo] = {}
    for entry in DeltaTable(uri).history():
        version, tag = int(entry["version"]), entry.get(TAG)
        if tag not in outcomes:
            raise RuntimeError(f"version {version} ({entry.get('operation')}) was not made by this workload")
        changes[version] = outcomes[tag].step.change
        metrics = {k: int(v) for k, v in (entry.get("operationMetrics") or {}).items() if isinstance(v, int | float)}
        commits[version] = CommitInfo(version, str(entry.get("operation")), metrics)
    return VersionedModel(changes), commits


def _table_facts(uri: str, latest: int) -> tuple[dict[int, bool], list[int]]:
    """Per version: is CDF on (the table's own metadata says), and how many files the snapshot has."""
    enabled, files = {}, []
    for version in range(latest + 1):
        table = DeltaTable(uri, version=version)
        setting = table.metadata().configuration.get("delta.enableChangeDataFeed", "false")
        enabled[version] = str(setting).lower() == "true"
        files.append(len(table.file_uris()))
    return enabled, files


# --- measuring ---------------------------------------------------------------------------------------------


def _timed_snapshot_reads(
    engines: list[DeltaEngine], uri: str, version: int, repeats: int, errors: ErrorTally
) -> dict[str, tuple[float, int]]:
    """Median rows/s of reading the newest snapshot, per engine (and how many reads it is the median of)."""
    figures = {}
    for engine in engines:
        rates = []
        for _ in range(repeats):
            read = engine.snapshot(uri, version)
            if read.ok:
                errors.ok()
                rates.append(len(read.rows) / read.seconds if read.seconds > 0 else float("nan"))
            else:
                errors.failed(f"{engine.name} snapshot read: {read.error}")
        if rates:
            figures[engine.name] = (statistics.median(rates), len(rates))
    return figures


def _vacuum(uri: str, errors: ErrorTally) -> tuple[float, int]:
    started = time.perf_counter()
    try:
        removed = DeltaTable(uri).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    except Exception as exc:  # delta-rs raises its own and Arrow's errors here
        errors.failed(f"VACUUM: {type(exc).__name__}: {exc}")
        return float("nan"), 0
    errors.ok()
    return time.perf_counter() - started, len(removed)


def _feed_after_vacuum(engine: DeltaEngine, uri: str, plan: oracle.Plan) -> str:
    """What reading the newest stretch's feed does once VACUUM removed old files (the protocol allows failing)."""
    if not plan.stretches:
        return "no CDF stretch"
    a, b = plan.stretches[-1]
    read = engine.change_feed(uri, a, b)
    if read is None:
        return "not read"
    return f"CDF({a}..{b}) {len(read.rows)} rows" if read.ok else f"CDF({a}..{b}) fails: {read.error}"


def _folder_bytes(uri: str) -> int:
    return sum(f.stat().st_size for f in Path(uri).rglob("*") if f.is_file())


def _write_metrics(workload: WorkloadLog, phases: dict[str, Any]) -> list[Metric]:
    done = [o for o in workload.outcomes if o.error is None]
    metrics = []
    for kind in LATENCY_KINDS:
        samples = [o.latency_s * 1000 for o in done if o.step.kind == kind]
        for q in (50, 99):
            metrics.append(Metric(f"write.{kind}_p{q}_ms", percentile(samples, q), "ms", samples=len(samples)))
    concurrent = [o for o in workload.outcomes if o.writer > 0]
    serial_done = [o for o in done if o.writer == 0]
    higher = Direction.HIGHER_IS_BETTER
    metrics += [
        Metric("write.serial_commits_per_s", _rate(len(serial_done), phases["serial_s"]), "1/s", higher),
        Metric(
            "write.concurrent_commits_per_s",
            _rate(len([o for o in concurrent if o.error is None]), phases["concurrent_s"]),
            "1/s",
            higher,
        ),
        Metric("write.conflicts", sum(o.conflicts for o in workload.outcomes), "count", kind=MetricKind.VOLUME),
        Metric(
            "write.conflicts_unresolved",
            sum(1 for o in workload.outcomes if o.error and o.error.startswith("conflict")),
            "count",
            kind=MetricKind.VOLUME,
        ),
        Metric("write.commits", len(done), "count", higher, kind=MetricKind.VOLUME),
        Metric("optimize_s", phases["optimize_s"], "s"),
    ]
    return metrics


def _read_metrics(readings: Readings, throughput: dict[str, tuple[float, int]]) -> list[Metric]:
    """Feed throughput from the whole-stretch reads (the big ones), single-version read latency from the rest."""
    whole = [readings.feeds[s] for s in readings.plan.stretches if readings.feeds[s].ok]
    rows, seconds = sum(len(f.rows) for f in whole), sum(f.seconds for f in whole)
    single = [f.seconds * 1000 for (a, b), f in readings.feeds.items() if a == b and f.ok]
    higher = Direction.HIGHER_IS_BETTER
    metrics = [
        Metric("cdf.read_rows_per_s", _rate(rows, seconds), "rows/s", higher, samples=len(whole)),
        Metric("cdf.version_read_p50_ms", percentile(single, 50), "ms", samples=len(single)),
        Metric("cdf.version_read_p99_ms", percentile(single, 99), "ms", samples=len(single)),
        Metric("cdf.change_rows", rows, "rows", kind=MetricKind.VOLUME),
    ]
    for name, (rate, samples) in sorted(throughput.items()):
        metrics.append(Metric(f"snapshot.{name}_rows_per_s", rate, "rows/s", higher, samples=samples))
    latest = readings.snapshots.get(readings.model.latest)
    metrics.append(
        Metric("table.rows", len(latest.rows) if latest and latest.ok else float("nan"), "rows", kind=MetricKind.VOLUME)
    )
    return metrics


def _table_metrics(files: list[int], table_bytes: int, latest: int, vacuum_s: float, vacuumed: int) -> list[Metric]:
    return [
        Metric("table.files_per_version_mean", statistics.fmean(files), "files", samples=len(files)),
        Metric("table.files_before_optimize", files[-2] if len(files) > 1 else files[-1], "files"),
        Metric("table.files_after_optimize", files[-1], "files"),
        Metric("table.bytes_per_commit", table_bytes / (latest + 1), "bytes"),
        Metric("table.bytes", table_bytes, "bytes", kind=MetricKind.VOLUME),
        Metric("table.versions", latest + 1, "count", kind=MetricKind.VOLUME),
        Metric("vacuum_s", vacuum_s, "s"),
        Metric("vacuum.files_deleted", vacuumed, "files", kind=MetricKind.VOLUME),
    ]


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


def _versions() -> dict[str, str | int | float | bool]:
    found: dict[str, str | int | float | bool] = {}
    for package in PACKAGES:
        try:
            found[f"{package}_version"] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[f"{package}_version"] = "not installed"
    found["cpu_count"] = os.cpu_count() or 0
    return found
