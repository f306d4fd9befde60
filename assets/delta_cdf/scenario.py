"""Delta change data feed: a seeded workload on a CDF-enabled table, replayed and cross-read against its model.

Plain Python (no Dagster), run in the kit supervisor's named phases:
- setup: version 0 (CDF on, Serializable isolation, a checkpoint every `checkpoint_interval`);
- workload: a single writer (appends, updates, deletes, MERGE in every shape, partition overwrites, a schema
  change, checkpoints crossed), then concurrent writers of every kind (real conflicts, rerun), then OPTIMIZE.
  Nemeses of the kit's library act in this phase, on the table the run registered as `delta_table`;
- settle: the log read as files into the model (outside commits and lost commit files accounted for);
- judge: every version read back (delta-rs, DuckDB, Spark when reachable) and judged by `oracle`;
- maintenance: VACUUM, then the newest snapshot and feed read again;
- shrink: each failing correctness check shrunk to the fewest operations that still show it on a fresh table,
  written next to the run as a replayable case.
Figures and verdicts are recorded with the supervisor as soon as they exist; a failed check's detail ends with
what was found on the table (or "unexplained"). Write and read errors, panics included, are measured.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import random
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from assets.delta_cdf import faults, known_bugs, oracle, shrink
from assets.delta_cdf.config import DeltaCdfConfig
from assets.delta_cdf.engines import DeltaEngine, DeltaRsEngine, DuckDbEngine, SparkEngine, bounded, facts_of
from assets.delta_cdf.model import Change, VersionedModel
from assets.delta_cdf.ops import Op
from assets.delta_cdf.oracle import CommitInfo, Read, Readings
from assets.delta_cdf.tablelog import Forensics, checkpoints, inspect, log_dir, missing_versions, read_log
from assets.delta_cdf.workload import (
    Outcome,
    Planner,
    WorkloadLog,
    Writer,
    needs_encoding,
    partition_values,
    run_concurrently,
    serial_kinds,
)
from regression_pipelines.kit.observe.folders import FolderWatch
from regression_pipelines.kit.supervisor import JUDGE, NEVER_CAUGHT, SETTLE, SETUP, WORKLOAD, Supervisor
from regression_pipelines.measure import ErrorTally, percentile
from regression_pipelines.results import Direction, Invariant, Metric, MetricKind, ScenarioResult

AREA = "delta_cdf"
INVARIANTS = oracle.INVARIANTS
MAINTENANCE, SHRINK = "maintenance", "shrink"
LATENCY_KINDS = ("append", "update", "delete", "merge", "overwrite")
PACKAGES = ("deltalake", "pyarrow", "duckdb", "pyspark", "delta-spark", "pysail")
RETENTION_PROPERTY = "delta.deletedFileRetentionDuration"
PANIC = "PanicException"
LOG = logging.getLogger(__name__)


def run(
    config: DeltaCdfConfig,
    sup: Supervisor,
    uri: str,
    spark: SparkEngine | None = None,
    spark_unavailable: str = "",
    log: Any = LOG,
    output_dir: Path | None = None,
) -> ScenarioResult:
    """One run on the table at `uri` (registered with `sup` by the caller, which removes it afterwards)."""
    return CdfRun(config, sup, uri, log, output_dir).execute(spark, spark_unavailable)


@dataclass
class CdfRun:
    config: DeltaCdfConfig
    sup: Supervisor
    uri: str
    log: Any = LOG
    output_dir: Path | None = None
    workload: WorkloadLog = field(default_factory=WorkloadLog)
    environment: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, Any] = field(default_factory=dict)
    panics: list[str] = field(default_factory=list)  # reads that panicked (writes keep theirs in their outcome)
    parts: list[str | None] = field(default_factory=list, init=False)  # the run's partition values
    planner: Planner = field(init=False)  # the single writer's
    writer: Writer = field(init=False)
    files: list[int] = field(default_factory=list, init=False)  # files per version
    throughput: dict[str, tuple[float, int]] = field(default_factory=dict, init=False)  # snapshot rows/s per engine
    folders: FolderWatch | None = field(default=None, init=False)  # the table's folder and log, watched

    def execute(self, spark: SparkEngine | None, spark_unavailable: str) -> ScenarioResult:
        self.environment.update(_versions())
        with self.sup.phase(SETUP):
            self._create()
            self.folders = FolderWatch([self.uri, log_dir(self.uri)]).start()
            self.sup.on_cleanup("stop the table folder watch", self.folders.stop)
        with self.sup.phase(WORKLOAD):
            self._write()
            self.sup.record(*_write_metrics(self.workload, self.phases), *self.workload.coverage.metrics())
        with self.sup.phase(SETTLE):
            model, commits, accounted, forensics = self._settle()
            self.sup.record(accounted)
        with self.sup.phase(JUDGE):
            readings, engines, unavailable = self._read(model, commits, spark, spark_unavailable)
            checks = self._explained(judge(readings, unavailable), forensics)
            self.sup.record(*checks.values())
        with self.sup.phase(MAINTENANCE):
            vacuum_s, vacuumed = _vacuum(self.uri, self.workload.errors, self.config.read_timeout_s)
            if isinstance(engines[0], DeltaRsEngine):
                engines[0].forget_table()  # the feed after VACUUM is read from the table as VACUUM left it
            readings.after_vacuum = engines[0].snapshot(self.uri, model.latest)
            self.environment["cdf_after_vacuum"] = _feed_after_vacuum(
                engines[0], self.uri, readings.plan, self.workload.errors, self.panics
            )
            compaction = oracle.check_compaction_and_time_travel(readings)
            checks.update(self._explained({compaction.name: compaction}, forensics))
            self.sup.record(checks[compaction.name])
            self.sup.record(
                *_read_metrics(readings, self.throughput),
                *_table_metrics(self.files, _folder_bytes(self.uri), model.latest, vacuum_s, vacuumed),
            )
        error_metric, error_invariant = self._errors()
        error_invariant = self._explained({error_invariant.name: error_invariant}, forensics)[error_invariant.name]
        self.sup.record(error_metric, error_invariant)
        with self.sup.phase(SHRINK):
            self._shrink(checks, model, forensics)
        return self._result(checks, accounted, error_invariant, model)

    # -- setup and workload ---------------------------------------------------------------------------------
    def _create(self) -> None:
        c = self.config
        rng = random.Random(c.seed)
        avoided = known_bugs.avoided(c.avoid_known_bugs)
        self.environment["known_bugs_avoided"] = "; ".join(b.describe() for b in avoided) or "none"
        self.parts = partition_values(c, rng, self.workload.coverage, avoid=bool(avoided))
        self.environment["partition_values"] = repr(self.parts)[:500]
        self.planner = Planner(c, 0, 1, {}, c.seed, self.parts, self.workload.coverage)
        rows = self.planner.fresh(c.initial_rows)
        settings = (
            ("delta.checkpointInterval", str(c.checkpoint_interval)),
            ("delta.enableChangeDataFeed", "true"),
            ("delta.isolationLevel", "Serializable"),
        )
        self.writer = Writer(self.uri, 0, self.workload, c.max_conflict_retries)
        created = self.writer.run(Op("create", rows=rows, settings=settings))
        if created.error is not None:
            raise RuntimeError(f"cannot create the Delta table at {self.uri}: {created.error}")

    def _write(self) -> None:
        """The single writer, faults at fixed points, concurrent writers, then OPTIMIZE."""
        c = self.config
        deadline = time.monotonic() + c.max_seconds
        kinds = serial_kinds(c.serial_commits, random.Random(c.seed + 1), c.large_merges)
        fault_at = len(kinds) * 3 // 4
        truncated = False
        started = time.perf_counter()
        for index, kind in enumerate(kinds):
            if time.monotonic() >= deadline:
                truncated = True
                break
            if index == fault_at:
                self._inject_during()
            self.writer.run(self.planner.op(kind))
        self.phases["serial_s"] = time.perf_counter() - started
        self._inject_after_serial()
        self.phases["concurrent_s"] = 0.0
        if c.concurrent_commits and time.monotonic() < deadline:
            known = dict(self.planner.keys)
            planners = [
                Planner(c, w, c.writers, known, c.seed + 100 + w, self.parts, self.workload.coverage)
                for w in range(c.writers)
            ]
            for p in planners:
                p.with_note = self.planner.with_note
            self.phases["concurrent_s"] = run_concurrently(
                self.uri, planners, c.concurrent_commits, self.workload, c, deadline
            )
        else:
            truncated = truncated or bool(c.concurrent_commits)
        if c.fault == "compaction_by_rewrite":
            compaction = self.writer.run(faults.rewrite_compaction(self.uri, self.planner.with_note))
        else:
            compaction = self.writer.run(Op("optimize"))
        self.phases["optimize_s"] = compaction.latency_s if compaction.error is None else float("nan")
        self.phases["truncated"] = truncated
        if c.fault == "blocking_data_file":
            self.environment["fault_did"] = faults.blocking_data_file(self.uri)
            self.log.info(f"delta_cdf fault: {self.environment['fault_did']}")

    def _inject_during(self) -> None:
        """Faults made at a fixed point of the single-writer phase."""
        fault, planner, writer = self.config.fault, self.planner, self.writer
        if fault == "cdf_off_commit":
            writer.run(Op("cdf_property", flag=False))
            writer.run(planner.op("update"))
            writer.run(Op("cdf_property", flag=True))
        elif fault == "skewed_clock_commit":
            writer.run(
                Op("skewed_clock_append", rows=planner.fresh(self.config.rows_per_commit), with_note=planner.with_note)
            )
        elif fault == "wrong_row_count_stats":
            part = next((p for p in self.parts if p and not needs_encoding(p)), "p0")  # a folder named as is
            rows = planner.fresh(self.config.rows_per_commit, part=part)
            writer.run(Op("wrong_stats_append", rows=rows, with_note=planner.with_note))
        elif fault == "outside_writer":
            self.environment["fault_did"] = faults.outside_writer(self.uri, self.parts)

    def _inject_after_serial(self) -> None:
        """Faults on the table's files, made between the single-writer and the concurrent phase."""
        fault = self.config.fault
        if fault == "drop_change_data":
            update = next(o for o in self.workload.outcomes if o.op.kind == "update" and o.error is None)
            version = {c.tag: v for v, c in read_log(self.uri).items()}[update.tag]
            self.environment["fault_did"] = f"removed {faults.drop_change_data(self.uri, version)} (v{version})"
        elif fault == "delete_commit_file":
            self.environment["fault_did"] = faults.delete_commit_file(self.uri)
        elif fault == "delete_checkpoint":
            self.environment["fault_did"] = faults.delete_checkpoint(self.uri)
        if "fault_did" in self.environment:
            self.log.info(f"delta_cdf fault: {self.environment['fault_did']}")

    # -- settle: the log as files, into the model -----------------------------------------------------------
    def _settle(self) -> tuple[VersionedModel, dict[int, CommitInfo], Invariant, Forensics]:
        """The log into the model. A commit carrying the tag of one of the workload's ops is the workload's,
        whatever the op was told: an op that got an error may still have committed (delta-rs commits, then
        fails in what follows the commit, e.g. loading a checkpoint that is gone); such a commit is named as
        landed despite its error, never as one from outside."""
        commits = read_log(self.uri)
        missing = missing_versions(commits)
        attempted = {o.tag: o for o in self.workload.outcomes}
        ours = {tag: o for tag, o in attempted.items() if o.error is None}
        changes: dict[int, Change] = {}
        found: dict[str, list[int]] = {}
        outside: list[str] = []
        despite_error: list[str] = []
        lost = self._lost_commit(commits, ours, missing)
        for version in range(max(commits, default=-1) + 1):
            commit = commits.get(version)
            if lost is not None and version == missing[0]:
                changes[version] = replace(lost.op.change(), label=f"{lost.op.kind} (commit file gone)")
            elif commit is None or not commit.readable:
                changes[version] = Change("unknown", label="commit file missing or unreadable")
            elif commit.tag in attempted:
                found.setdefault(str(commit.tag), []).append(version)
                outcome = attempted[commit.tag]
                changes[version] = outcome.op.change()
                if outcome.error is not None:
                    despite_error.append(f"{commit.who()} (its writer got {outcome.error[:160]})")
            else:
                outside.append(commit.who())
                changes[version] = self._observed(version, commit.who())
        model = VersionedModel(changes)
        infos = {v: CommitInfo(v, c.operation, c.metrics) for v, c in commits.items()}
        acknowledged = {tag: 1 for tag, o in ours.items() if o.expects_commit()}
        accounted = oracle.check_commits_accounted_for(
            model.latest, commits, missing, outside, acknowledged, found, despite_error
        )
        retention = _retention(self.uri, self.config.read_timeout_s)
        forensics = inspect(self.uri, commits, set(attempted), retention)
        forensics.committed_despite_error = despite_error
        forensics.folders = self.folders.findings() if self.folders is not None else []
        if not accounted.passed:
            accounted = _with_cause(accounted, forensics)
        self.environment["checkpoints"] = len(checkpoints(self.uri))
        return model, infos, accounted, forensics

    def _lost_commit(self, commits: dict, ours: dict, missing: list[int]) -> Outcome | None:
        """With exactly one version without its file and exactly one acknowledged op not in the log, that op made
        that version: the model stays exact past the gap (more than one: the model is uncertain from the first)."""
        tags = {c.tag for c in commits.values()}
        lost = [o for tag, o in ours.items() if tag not in tags and o.expects_commit()]
        return lost[0] if len(missing) == 1 and len(lost) == 1 else None

    def _observed(self, version: int, who: str) -> Change:
        """An outside commit's effect: the rows delta-rs shows at that version (unknown if it cannot be read)."""
        read = DeltaRsEngine(self.config.read_timeout_s).snapshot(self.uri, version)
        if not read.ok:
            return Change("unknown", label=f"outside commit, unreadable: {who}")
        return Change("outside", rows=tuple(read.rows), label=f"outside: {who}")

    # -- judge ----------------------------------------------------------------------------------------------
    def _read(
        self, model: VersionedModel, commits: dict[int, CommitInfo], spark: SparkEngine | None, reason: str
    ) -> tuple[Readings, list[DeltaEngine], dict[str, str]]:
        timeout = self.config.read_timeout_s
        duckdb = DuckDbEngine(timeout)
        self.sup.on_cleanup("stop the DuckDB reader process", duckdb.close)
        engines: list[DeltaEngine] = [DeltaRsEngine(timeout), duckdb]
        unavailable = {} if spark is not None else {"spark": reason or "not configured"}
        if spark is not None:
            spark.timeout_s = timeout
            self.environment.update(spark.probe(self.uri))
            engines.append(spark)
        else:
            self.environment["spark_engine"] = f"unavailable: {unavailable['spark']}"
        readings = read_table(self.uri, model, commits, self.config, engines)
        self.panics += _count_panics(readings, self.workload.errors)
        self.files = readings.files or [0]
        self.throughput = _timed_snapshot_reads(
            engines, self.uri, model.latest, self.config.read_repeats, self.workload.errors
        )
        duckdb.close()  # read no more: its child process ends here
        self.environment["cdf_stretches"] = ",".join(f"{a}-{b}" for a, b in readings.plan.stretches)
        self.log.info(f"delta_cdf: {model.latest + 1} versions, {len(readings.plan.feed_ranges())} feed ranges read")
        return readings, engines, unavailable

    def _explained(self, checks: dict[str, Invariant], forensics: Forensics) -> dict[str, Invariant]:
        """Every failed check ends with what was found on the table (its folder as watched up to now included),
        or says nothing was."""
        forensics.folders = self.folders.findings() if self.folders is not None else []
        return {name: check if check.passed else _with_cause(check, forensics) for name, check in checks.items()}

    def _errors(self) -> tuple[Metric, Invariant]:
        """`no_operation_errors`, with engine panics named first (a panic is never an allowed failure)."""
        metric, invariant = self.workload.errors.figures("writes, reads and VACUUM")
        panics = [f"{o.op.kind}: {o.error}" for o in self.workload.outcomes if o.panicked] + self.panics
        if not panics:
            return metric, invariant
        detail = f"{len(panics)} engine panic(s), first: {panics[0][:300]}; {invariant.detail}"
        return metric, Invariant(invariant.name, False, detail, {**invariant.facts, "panics": len(panics)})

    # -- shrink ---------------------------------------------------------------------------------------------
    def _shrink(self, checks: dict[str, Invariant], model: VersionedModel, forensics: Forensics) -> None:
        failing = [c for c in checks.values() if not c.passed and c.name in oracle.SHRINKABLE]
        if not failing or self.config.shrink_replays == 0:
            return
        nemesis = self.sup.partial.environment.get("nemesis")
        if nemesis:
            self.environment["shrunk"] = f"not shrunk: nemesis {nemesis} acted on the table during the workload"
            return
        changed_outside = forensics.outside or forensics.missing_commits or forensics.resized_files
        changed_outside = changed_outside or forensics.not_regular_files
        gone = forensics.missing_data_files or forensics.missing_change_files
        if changed_outside or gone or self.config.fault in faults.OUTSIDE_THE_OPS:
            why = forensics.describe() if forensics.findings() else f"fault {self.config.fault}"
            self.environment["shrunk"] = f"not shrunk: the table was changed outside its operations ({why})"
            return
        ops = shrink.ops_by_version(self.workload.outcomes, read_log(self.uri), model.latest)
        cases = shrink.shrink_failures(failing, ops, self.config, self.uri, self.output_dir, self.log)
        self.environment["shrunk"] = "; ".join(cases) or "nothing shrunk"

    def _result(
        self, checks: dict[str, Invariant], accounted: Invariant, errors: Invariant, model: VersionedModel
    ) -> ScenarioResult:
        coverage = self.workload.coverage
        self.environment.update(
            coverage=coverage.to_json()[:4000],
            coverage_summary=coverage.describe(),
            workload_truncated=self.phases.get("truncated", False),
        )
        c = self.config
        return ScenarioResult(
            area=AREA,
            metrics=list(self.sup.partial.metrics),
            invariants=[*checks.values(), accounted, errors],
            environment=self.environment,
            comparable_on={
                "engine": "delta-rs",
                "profile": c.profile,
                "fault": c.fault,
                "writers": c.writers,
                "initial_rows": c.initial_rows,
                "rows_per_commit": c.rows_per_commit,
                "serial_commits": c.serial_commits,
                "concurrent_commits": c.concurrent_commits,
                "partitions": c.partitions,
                "partition_values": c.partition_values,
            },
        )


# --- reading a table and judging it (the run and the shrinker's replays share this) -----------------------------


def read_table(
    uri: str,
    model: VersionedModel,
    commits: dict[int, CommitInfo],
    config: DeltaCdfConfig,
    engines: list[DeltaEngine],
) -> Readings:
    """Every version from every engine, and every planned feed range from delta-rs (the per-version facts come
    from delta-rs's own loads of each version, or from a load of their own)."""
    every = list(range(model.latest + 1))
    sampled = _sampled_versions(model.latest, config.engine_versions, config.seed)
    facts: dict[int, tuple[bool, int]] = {}
    snapshots: dict[str, dict[int, Read]] = {}
    for index, engine in enumerate(engines):
        if index == 0 and isinstance(engine, DeltaRsEngine):
            snapshots[engine.name] = {v: engine.snapshot(uri, v, facts) for v in every}
        else:
            snapshots[engine.name] = {v: engine.snapshot(uri, v) for v in (every if index == 0 else sampled)}
    missing = [v for v in every if v not in facts]
    if missing:
        facts.update(_version_facts(uri, missing, config.read_timeout_s))
    cdf_enabled, files = _facts_by_version(facts, model.latest)
    plan = oracle.plan_ranges(cdf_enabled, config.seed, config.replay_pairs, config.split_triples)
    readings = Readings(model=model, cdf_enabled=cdf_enabled, commits=commits, plan=plan, files=files)
    readings.engines = snapshots
    readings.snapshots = readings.engines[engines[0].name]
    readings.feeds = {(a, b): engines[0].change_feed(uri, a, b) for a, b in plan.feed_ranges()}  # type: ignore[misc]
    if plan.stretches:
        a, b = plan.stretches[-1]
        for engine in engines[1:]:
            feed = engine.change_feed(uri, a, b)
            if feed is not None:
                readings.engine_feeds[engine.name] = feed
    return readings


def _sampled_versions(latest: int, count: int, seed: int) -> list[int]:
    """The versions every engine reads: all, or `count` seeded ones with the first and the newest."""
    if count == 0 or count >= latest + 1:
        return list(range(latest + 1))
    chosen = set(random.Random(seed).sample(range(1, latest), max(0, count - 2))) | {0, latest}
    return sorted(chosen)


def judge(readings: Readings, unavailable: dict[str, str]) -> dict[str, Invariant]:
    checks = [
        oracle.check_replay(readings),
        oracle.check_well_formed(readings),
        oracle.check_range_splitting(readings),
        oracle.check_operation_metrics(readings),
        oracle.check_engines_agree(readings, unavailable),
    ]
    return {c.name: c for c in checks}


def _count_panics(readings: Readings, errors: ErrorTally) -> list[str]:
    """A read may fail (its check says so); a read that panicked is also an engine error of its own."""
    reads = [*readings.feeds.values(), *(r for by_version in readings.engines.values() for r in by_version.values())]
    panics = [f"read: {read.error}" for read in reads if read.error and read.error.startswith(PANIC)]
    for text in panics:
        errors.failed(text)
    return panics


def _version_facts(uri: str, versions: list[int], timeout_s: float) -> dict[int, tuple[bool, int]]:
    """(CDF on?, file count) of each version that can be loaded; loading is bounded (after a load that timed
    out, the remaining versions are not loaded: their reads say why)."""
    facts: dict[int, tuple[bool, int]] = {}

    def load_all() -> Read:
        for version in versions:
            try:
                facts[version] = facts_of(DeltaTable(uri, version=version))
            except BaseException as exc:
                if isinstance(exc, NEVER_CAUGHT):
                    raise
        return Read()

    bounded(load_all, timeout_s * len(versions), f"delta-rs table metadata of {len(versions)} version(s)")
    return dict(facts)


def _facts_by_version(facts: dict[int, tuple[bool, int]], latest: int) -> tuple[dict[int, bool], list[int]]:
    """Per version: is CDF on, and the file counts of the versions that loaded. A version that could not be
    loaded keeps the setting before it and counts no files (time travel judges it)."""
    enabled: dict[int, bool] = {}
    files: list[int] = []
    for version in range(latest + 1):
        found = facts.get(version)
        enabled[version] = found[0] if found else enabled.get(version - 1, True)
        if found:
            files.append(found[1])
    return enabled, files


def _with_cause(check: Invariant, forensics: Forensics) -> Invariant:
    return Invariant(
        check.name,
        check.passed,
        f"{check.detail} Cause: {forensics.describe()}.",
        {**check.facts, "cause": forensics.describe()[:300]},
    )


def _retention(uri: str, timeout_s: float) -> str:
    found: list[str] = []

    def read() -> Read:
        configuration = DeltaTable(uri).metadata().configuration
        found.append(str(configuration.get(RETENTION_PROPERTY) or "default 7 days"))
        return Read()

    read = bounded(read, timeout_s, "delta-rs table metadata")
    return found[0] if found else f"unknown (table unreadable: {read.error})"


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


def _vacuum(uri: str, errors: ErrorTally, timeout_s: float) -> tuple[float, int]:
    """VACUUM (retention 0), bounded like a read; its errors (panics and time-outs included) are measured."""
    removed: list[str] = []

    def run() -> Read:
        removed.extend(DeltaTable(uri).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False))
        return Read()

    done = bounded(run, timeout_s, "delta-rs VACUUM")
    if not done.ok:
        errors.failed(f"VACUUM: {done.error}")
        return float("nan"), 0
    errors.ok()
    return done.seconds, len(removed)


def _feed_after_vacuum(engine: DeltaEngine, uri: str, plan: oracle.Plan, errors: ErrorTally, panics: list[str]) -> str:
    """What reading the newest stretch's feed does once VACUUM removed old files: the protocol allows an error,
    not a panic (a panic is measured as an operation error)."""
    if not plan.stretches:
        return "no CDF stretch"
    a, b = plan.stretches[-1]
    read = engine.change_feed(uri, a, b)
    if read is None:
        return "not read"
    if read.error and read.error.startswith(PANIC):
        panics.append(f"CDF({a}..{b}) after VACUUM: {read.error}")
        errors.failed(panics[-1])
    return f"CDF({a}..{b}) {len(read.rows)} rows" if read.ok else f"CDF({a}..{b}) fails: {read.error}"


def _folder_bytes(uri: str) -> int:
    return sum(f.stat().st_size for f in Path(uri).rglob("*") if f.is_file())


def _write_metrics(workload: WorkloadLog, phases: dict[str, Any]) -> list[Metric]:
    done = [o for o in workload.outcomes if o.error is None]
    metrics = []
    for kind in LATENCY_KINDS:
        samples = [o.latency_s * 1000 for o in done if o.op.bucket == kind]
        for q in (50, 99):
            metrics.append(Metric(f"write.{kind}_p{q}_ms", percentile(samples, q), "ms", samples=len(samples)))
    concurrent = [o for o in workload.outcomes if o.writer > 0]
    serial_done = [o for o in done if o.writer == 0]
    higher, volume = Direction.HIGHER_IS_BETTER, MetricKind.VOLUME
    large = [o.latency_s * 1000 for o in done if o.op.kind == "merge_large"]
    metrics += [
        Metric("write.serial_commits_per_s", _rate(len(serial_done), phases.get("serial_s", 0.0)), "1/s", higher),
        Metric(
            "write.concurrent_commits_per_s",
            _rate(len([o for o in concurrent if o.error is None]), phases.get("concurrent_s", 0.0)),
            "1/s",
            higher,
        ),
        Metric("write.conflicts", sum(o.conflicts for o in workload.outcomes), "count", kind=volume),
        Metric(
            "write.conflicts_unresolved",
            sum(1 for o in workload.outcomes if o.error and o.error.startswith("conflict")),
            "count",
            kind=volume,
        ),
        Metric("write.commits", len(done), "count", higher, kind=volume),
        Metric("write.merge_large_p50_ms", percentile(large, 50), "ms", samples=len(large)),
        Metric(
            "write.merge_large_matched_rows",
            max((len(o.op.rows) for o in done if o.op.kind == "merge_large"), default=0),
            "rows",
            kind=volume,
        ),
        Metric("optimize_s", phases.get("optimize_s", float("nan")), "s"),
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
    """The table's shape; NaN where nothing could be read (a log that was not there when the run looked)."""
    nan = float("nan")
    return [
        Metric("table.files_per_version_mean", statistics.fmean(files) if files else nan, "files", samples=len(files)),
        Metric("table.files_before_optimize", files[-2] if len(files) > 1 else files[-1] if files else nan, "files"),
        Metric("table.files_after_optimize", files[-1] if files else nan, "files"),
        Metric("table.bytes_per_commit", table_bytes / (latest + 1) if latest >= 0 else nan, "bytes"),
        Metric("table.bytes", table_bytes, "bytes", kind=MetricKind.VOLUME),
        Metric("table.versions", latest + 1, "count", kind=MetricKind.VOLUME),
        Metric("vacuum_s", vacuum_s, "s"),
        Metric("vacuum.files_deleted", vacuumed, "files", kind=MetricKind.VOLUME),
    ]


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


def _versions() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for package in PACKAGES:
        try:
            found[f"{package}_version"] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[f"{package}_version"] = "not installed"
    found["cpu_count"] = os.cpu_count() or 0
    return found
