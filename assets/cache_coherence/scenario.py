"""Cache-coherence scenario: a generated workload against PostgreSQL + Redis, judged by oracles, in named phases.

Plain Python (no Dagster). Each mode runs `setup` (a table and key prefix of its own, registered with the kit's
supervisor), `workload` (the phase nemeses act in), `settle`, `judge` (divergence, TTLs, values, with failures
shrunk to a replayable case), then `warmup`, `calibrate` (the first mode only: redis-benchmark and pgbench on the
same rows) and `latency`, and `cleanup`. Figures are recorded with the supervisor as soon as they exist. Every
phase measures its errors instead of raising (a Redis that answers OOM, a PostgreSQL that refuses connections),
and a failed check's detail names what the servers themselves showed (`kit.observe`), or says "unexplained".
"""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg
import redis

from assets.cache_coherence import latency, replay
from assets.cache_coherence.config import CacheConfig
from assets.cache_coherence.generate import LABELS, SHAPES, TTL_CLASSES, Plan, digest, draw_plan, label_bytes
from assets.cache_coherence.oracle import CommitLog, ExpiryLedger, Mismatch
from assets.cache_coherence.store import OPERATION_ERRORS, CachedTable, CacheEntry
from assets.cache_coherence.workload import ConnectionFactory, Counts, Executor, Op, run_workers
from regression_pipelines.calibration import Calibration
from regression_pipelines.kit.generate import Coverage
from regression_pipelines.kit.observe import postgres as observe_pg
from regression_pipelines.kit.observe.redis import RedisState, Watcher, explain
from regression_pipelines.kit.observe.watch import Sampler
from regression_pipelines.kit.supervisor import Supervisor
from regression_pipelines.measure import ErrorTally, PhaseErrors, describe_error, nines, percentile
from regression_pipelines.results import Direction, Invariant, Metric, MetricKind, ScenarioResult

AREA = "cache_coherence"
INVARIANTS = ("no_divergence_after_settle", "stale_read_rate_within_bound", "ttl_expiry_honoured", "values_intact")
WORKLOAD_VERSION = "generated-1"  # history before generated workloads is a different baseline
LATENCY_KEYS = 100
TTL_PROBE_MS = 300
LOWER, HIGHER = Direction.LOWER_IS_BETTER, Direction.HIGHER_IS_BETTER
OWN_APPLICATION = "regression_pipelines"  # application_name of the run's own PostgreSQL sessions
# (redis key to GET, pgbench script, clients) -> the instruments' readings against the same servers.
Calibrate = Callable[[str, str, int], list[Calibration]]


@dataclass
class Services:
    """What the scenario works with: fresh database connections, a bytes Redis client, observers, instruments."""

    connect: ConnectionFactory
    cache: redis.Redis  # decode_responses=False: keys and values are bytes
    observe_redis: Callable[[], RedisState]
    sample_redis: Callable[[], RedisState] | None = None  # a light look, every 0.5 s during the run
    calibrate: Calibrate | None = None
    output_dir: Path | None = None
    remove_table: Callable[[str], None] | None = None  # fresh-connection removers for the supervisor
    table_exists: Callable[[str], bool] | None = None
    remove_prefix: Callable[[bytes], None] | None = None
    prefix_exists: Callable[[bytes], bool] | None = None


@dataclass
class ModeOutcome:
    mode: str
    metrics: list[Metric] = field(default_factory=list)
    verdicts: dict[str, Invariant] = field(default_factory=dict)
    readings: list[Calibration] = field(default_factory=list)
    shrunk: dict[str, str] = field(default_factory=dict)
    slowest_op: str = ""  # which workload operation took longest, and how long


@dataclass
class Run:
    """One run: its settings, plan, shared tallies, and the supervisor it records into."""

    config: CacheConfig
    services: Services
    sup: Supervisor
    plan: Plan
    errors: ErrorTally = field(default_factory=ErrorTally)
    coverage: Coverage = field(default_factory=Coverage)
    outcomes: dict[str, ModeOutcome] = field(default_factory=dict)
    redis_before: RedisState | None = None
    watcher: Watcher | None = None
    shrink_deadline: float = 0.0
    pg_tables: list[str] = field(default_factory=list)  # the run's tables, as each mode creates its own
    pg_origins: list[observe_pg.PgState] = field(default_factory=list)  # one first look per table, at set-up
    pg_watch: Sampler[observe_pg.PgState] | None = None
    pg_last: dict[str, observe_pg.PgState] = field(default_factory=dict)  # each table's last look, before cleanup
    pg_own: dict[str, observe_pg.OwnWrites] = field(default_factory=dict)  # rows each table's statements wrote
    pg_content: dict[str, str] = field(default_factory=dict)  # rows the run's writes do not explain, at the judge

    def look_at_postgres(self) -> observe_pg.PgState:
        """Catalog reads over a fresh connection of the observer's own (triggers, rules, locks, start time)."""
        return observe_pg.snapshot(self.services.connect, list(self.pg_tables), OWN_APPLICATION)

    def at(self, mode: str, phase: str) -> PhaseErrors:
        return self.errors.at(f"{mode}/{phase}")


def run(config: CacheConfig, services: Services, sup: Supervisor) -> ScenarioResult:
    """Run each configured mode in turn (each with a fresh table and key space) and gather the figures."""
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**31)
    the_run = Run(config, services, sup, draw_plan(config, seed))
    the_run.coverage.declare(
        SHAPES,
        {
            "value": the_run.plan.values.class_names,
            "key_name": sorted(set(the_run.plan.key_classes)),
            "ttl": TTL_CLASSES,
            "label": LABELS.class_names,
        },
    )
    sup.partial.environment.update(seed=seed, plan=json.dumps(the_run.plan.describe(), sort_keys=True))
    the_run.redis_before = services.observe_redis()
    if services.sample_redis is not None:
        the_run.watcher = Watcher(services.sample_redis).start()
    the_run.shrink_deadline = time.monotonic() + float(config.shrink_seconds or 0)
    crashed = True
    try:
        for index, mode in enumerate(config.modes):
            with sup.phase(mode):
                outcome = _run_mode(the_run, mode, first=index == 0)
            the_run.outcomes[mode] = outcome
            sup.record(*outcome.metrics)
        crashed = False
    finally:  # a crash keeps every figure and verdict gathered so far
        try:
            result = _result(the_run)
            sup.record(*result.metrics, *result.invariants)
            sup.partial.environment.update(result.environment)
            sup.partial.comparable_on.update(result.comparable_on)
        except Exception as exc:
            if not crashed:
                raise
            sup.note(f"the figures of the modes run could not be gathered after the crash: {describe_error(exc)}")
    return result


# -- one mode -------------------------------------------------------------------------------------------------
def _run_mode(the_run: Run, mode: str, first: bool) -> ModeOutcome:
    config, services, sup = the_run.config, the_run.services, the_run.sup
    outcome = ModeOutcome(mode)
    table = CachedTable(uuid.uuid4().hex[:12], config, the_run.plan, services.cache, LATENCY_KEYS)
    log, ledger = CommitLog(table.keys), ExpiryLedger()
    table.ledger = ledger
    with sup.phase("setup"):
        if not _set_up(the_run, mode, table, log):
            outcome.verdicts = _not_run(mode, "setup failed (see no_operation_errors)")
            return outcome
    executor = Executor(mode, table, log, ledger, the_run.coverage, the_run.at(mode, "workload"))
    executor.history = _bounded_history(config)
    with sup.phase("workload"):
        counts, elapsed, crashes = run_workers(executor, config, services.connect, the_run.plan.seed)
        for crash in crashes:
            the_run.at(mode, "workload").failed(f"worker stopped by an exception: {crash}")
    with sup.phase("settle"):
        probe_started = _settle(the_run, mode, table)
    with sup.phase("judge"):
        outcome.verdicts, judged = _judge(the_run, mode, table, log, ledger, counts, probe_started)
        outcome.shrunk = _shrink_failures(the_run, mode, executor, judged, outcome.verdicts)
    outcome.metrics = _mode_figures(mode, config, counts, elapsed, judged)
    sup.record(*outcome.metrics)
    outcome.slowest_op = f"{counts.slowest_op or 'none'} ({counts.slowest_op_ms:.1f} ms)"
    with sup.phase("warmup"):
        latency.warm_up(table, the_run.at(mode, "warmup"))
    if first and services.calibrate is not None:
        with sup.phase("calibrate"):
            outcome.readings = _calibrate(the_run, mode, table)
    with sup.phase("latency"):
        reads = latency.measure(
            table,
            services.connect,
            latency.skewed_sequence(table.latency_ids),
            int(config.readers or 1),
            float(config.latency_seconds or 1),
            the_run.at(mode, "latency"),
        )
    outcome.metrics += _latency_figures(mode, reads)
    sup.record(*outcome.metrics)
    _last_look(the_run, table.table)  # before the run drops its own table (not a finding)
    with sup.phase("cleanup"):
        _clean_up(the_run, mode, table)
    return outcome


def _set_up(the_run: Run, mode: str, table: CachedTable, log: CommitLog) -> bool:
    """Create and register the table and key prefix; False (errors counted) when the servers refused."""
    services, errors = the_run.services, the_run.at(mode, "setup")
    if services.remove_table is not None:
        remove_table, table_exists = services.remove_table, services.table_exists
        the_run.sup.created("table", table.table, lambda: remove_table(table.table),
                            (lambda: table_exists(table.table)) if table_exists else None)  # fmt: skip
    if services.remove_prefix is not None:
        remove_prefix, prefix_exists = services.remove_prefix, services.prefix_exists
        the_run.sup.created("redis_prefix", table.prefix.decode(), lambda: remove_prefix(table.prefix),
                            (lambda: prefix_exists(table.prefix)) if prefix_exists else None)  # fmt: skip
    try:
        with services.connect() as admin:
            table.create(admin)
    except OPERATION_ERRORS as exc:
        errors.failed(exc)
        return False
    errors.ok()
    _watch_postgres(the_run, table.table, table.own)
    for key in range(table.keys):
        _, label, value = the_run.plan.content(key, 0)
        log.initial(key, digest(label_bytes(label), value))
    return True


def _bounded_history(config: CacheConfig) -> deque[Op]:
    return deque(maxlen=int(config.history_max or 1000))


def _settle(the_run: Run, mode: str, table: CachedTable) -> float | None:
    """Let delayed invalidations land, write the TTL probe, wait; the probe's start (None: not written)."""
    config, errors = the_run.config, the_run.at(mode, "settle")
    table.wait_for_pending(config.delay_invalidation_ms / 1000 + 5)
    for error in table.deferred_errors:
        errors.failed(error)
    started: float | None = time.monotonic()
    try:
        table.cache.set(table.prefix + b"ttl-probe", CacheEntry(1, False, b"", b"probe").encode(), px=TTL_PROBE_MS)
        errors.ok()
    except OPERATION_ERRORS as exc:  # the write error is the news (no_operation_errors)
        errors.failed(exc)
        started = None
    time.sleep(max(config.settle_seconds, TTL_PROBE_MS * 2 / 1000))
    return started


# -- judging --------------------------------------------------------------------------------------------------
@dataclass
class Judged:
    """What the judge phase found, for figures and for shrinking."""

    counts: Counts
    divergent: list[int]
    unchecked: int
    mismatches: list[Mismatch]
    checked_reads: int
    after_expiry: list[tuple[int, float, float]]
    ttl_keys: list[int]  # keys without a TTL, then keys whose TTL is longer than the application sets


def _judge(
    the_run: Run,
    mode: str,
    table: CachedTable,
    log: CommitLog,
    ledger: ExpiryLedger,
    counts: Counts,
    probe_started: float | None,
) -> tuple[dict[str, Invariant], Judged]:
    config, errors = the_run.config, the_run.at(mode, "judge")
    divergent, unchecked, rows = _divergent_keys(the_run, table, errors)
    if rows is not None:  # the table's content as the server showed it: a cause the PostgreSQL look names
        the_run.pg_content[table.table] = log.unaccounted(rows).describe(table.table)
    mismatches = log.finish()
    judged = Judged(counts, divergent, unchecked, mismatches, log.checked, ledger.violations(), [])
    ttl_ok, ttl_detail = _ttl_check(table, config, ledger, judged, probe_started, errors)
    facts = {"mode": mode, "reads": counts.reads, "stale_reads": counts.stale_reads}
    stale_rate = counts.stale_reads / counts.reads if counts.reads else math.nan
    verdicts = {
        "no_divergence_after_settle": Invariant(
            "no_divergence_after_settle",
            not divergent and not unchecked,
            f"{len(divergent)} of {table.keys} keys differ between cache and database after {config.settle_seconds}s "
            f"settle"
            + (f" (e.g. keys {_keys_named(the_run.plan, divergent[:3])})" if divergent else "")
            + (f"; {unchecked} keys could not be compared (errors)" if unchecked else ""),
            facts,
        ),
        "stale_read_rate_within_bound": Invariant(
            "stale_read_rate_within_bound",
            counts.reads > 0 and stale_rate <= config.max_stale_read_rate,
            f"{counts.stale_reads} stale of {counts.reads} reads = {stale_rate:.5f} "
            f"(bound {config.max_stale_read_rate})",
            facts,
        ),
        "ttl_expiry_honoured": Invariant("ttl_expiry_honoured", ttl_ok, ttl_detail, facts),
        "values_intact": Invariant(
            "values_intact", not mismatches, _values_detail(the_run.plan, log, mismatches), facts
        ),
    }
    return verdicts, judged


def _divergent_keys(
    the_run: Run, table: CachedTable, errors: PhaseErrors
) -> tuple[list[int], int, dict[int, int] | None]:
    """Keys whose cached value (not a tombstone) disagrees with the database after settling, how many keys could
    not be compared because a server answered with errors, and the rows' versions (None: unread)."""
    try:
        with the_run.services.connect() as conn:
            versions = table.db_versions(conn)
        errors.ok()
    except OPERATION_ERRORS as exc:
        errors.failed(exc)
        return [], table.keys, None
    divergent, unchecked = [], 0
    for start in range(0, table.keys, 500):
        chunk = list(range(start, min(start + 500, table.keys)))
        try:
            raws = table.cache.mget([table.cache_key(k) for k in chunk])
            errors.ok()
        except OPERATION_ERRORS as exc:
            errors.failed(exc)
            unchecked += len(chunk)
            continue
        for key, raw in zip(chunk, raws, strict=True):
            entry = CacheEntry.parse(raw) if raw is not None else None
            if entry is not None and not entry.tombstone and entry.version != versions.get(key):
                divergent.append(key)
    return divergent, unchecked, versions


def _ttl_check(
    table: CachedTable,
    config: CacheConfig,
    ledger: ExpiryLedger,
    judged: Judged,
    probe_started: float | None,
    errors: PhaseErrors,
) -> tuple[bool, str]:
    """Every cached entry has a TTL within the longest the application sets; no read returned an entry after
    its TTL (the ledger); a sub-second probe really expires."""
    limit_ms = int(config.ttl_seconds * 1000)
    problems: list[str] = []
    too_long: list[tuple[int, int]] = []
    for start in range(0, table.keys, 500):
        chunk = list(range(start, min(start + 500, table.keys)))
        pipe = table.cache.pipeline(transaction=False)
        for key in chunk:
            pipe.pttl(table.cache_key(key))
        try:
            pttls = pipe.execute()
            errors.ok()
        except OPERATION_ERRORS as exc:
            errors.failed(exc)
            problems.append(f"{len(chunk)} keys' TTLs could not be read ({describe_error(exc)})")
            continue
        judged.ttl_keys += [k for k, pttl in zip(chunk, pttls, strict=True) if pttl == -1]
        too_long += [(k, pttl) for k, pttl in zip(chunk, pttls, strict=True) if pttl > limit_ms]
    if judged.ttl_keys:
        problems.append(f"{len(judged.ttl_keys)} keys have no expiry (e.g. key {judged.ttl_keys[0]})")
    if too_long:
        problems.append(f"{len(too_long)} keys expire later than {limit_ms} ms (e.g. in {too_long[0][1]} ms)")
        judged.ttl_keys += [key for key, _ in too_long]  # shrunk alike: the replay checks both
    if judged.after_expiry:
        key, started, until = judged.after_expiry[0]
        problems.append(
            f"{len(judged.after_expiry)} of {ledger.hits} cache hits returned an entry after its TTL "
            f"(e.g. key {key}, {(started - until) * 1000:.0f} ms after the last write or refresh could keep it)"
        )
    probe = _probe_result(table, probe_started, errors)
    if probe.startswith("FAILED"):
        problems.append(probe.removeprefix("FAILED "))
    if problems:
        return False, "; ".join(problems)
    return True, (
        f"all cached keys expire within {config.ttl_seconds}s; {ledger.hits} cache hits, none after its TTL; {probe}"
    )


def _probe_result(table: CachedTable, started: float | None, errors: PhaseErrors) -> str:
    if started is None:
        return f"the {TTL_PROBE_MS} ms probe could not be written (see no_operation_errors)"
    try:
        present = table.cache.exists(table.prefix + b"ttl-probe")
        errors.ok()
    except OPERATION_ERRORS as exc:
        errors.failed(exc)
        return f"the {TTL_PROBE_MS} ms probe could not be read back ({describe_error(exc)})"
    waited_ms = (time.monotonic() - started) * 1000
    if present:
        return f"FAILED a probe written with ttl {TTL_PROBE_MS} ms was still present after {waited_ms:.0f} ms"
    return f"a {TTL_PROBE_MS} ms probe expired"


def _values_detail(plan: Plan, log: CommitLog, mismatches: list[Mismatch]) -> str:
    text = f"{log.checked} reads checked against the bytes committed for their key and version"
    if not mismatches:
        return f"{text}: all intact"
    kinds = Counter(m.kind for m in mismatches)
    first = mismatches[0]
    example = (
        f"key {first.key} ({plan.key_classes[first.key]} name, {plan.value_classes[first.key]} value) "
        f"{'version ' + str(first.version) if first.version is not None else 'row'} from {first.source}"
    )
    listed = ", ".join(f"{kind} {n}" for kind, n in kinds.most_common())
    return f"{text}: {len(mismatches)} mismatches ({listed}); first: {example}"


def _keys_named(plan: Plan, keys: list[int]) -> str:
    return ", ".join(f"{k} ({plan.key_classes[k]} name, {plan.value_classes[k]} value)" for k in keys)


def _not_run(mode: str, reason: str) -> dict[str, Invariant]:
    return {name: Invariant(name, False, f"not evaluated: {reason}", {"mode": mode}) for name in INVARIANTS}


# -- shrinking --------------------------------------------------------------------------------------------------
SHRINK_CANDIDATES = 3  # keys tried per failed check: the first may have needed a race a sequential replay lacks


def _shrink_failures(
    the_run: Run, mode: str, executor: Executor, judged: Judged, verdicts: dict[str, Invariant]
) -> dict[str, str]:
    """Each failed check with keys to blame, shrunk by replay within the run's time bound; detail amended. Up to
    SHRINK_CANDIDATES keys are tried in turn, so a first failure that needed concurrency (a read racing a write
    under load) does not hide a later one that replays alone."""
    history = list(executor.history)
    counts = judged.counts
    targets = {
        replay.STALE: list(dict.fromkeys(counts.stale_keys)),
        replay.DIVERGENT: judged.divergent,
        replay.VALUES: list(dict.fromkeys(m.key for m in judged.mismatches)),
        "ttl_expiry_honoured": judged.ttl_keys,
    }
    done: dict[str, str] = {}
    for check, keys in targets.items():
        if verdicts[check].passed:
            continue
        text = _shrink_check(the_run, mode, check, keys[:SHRINK_CANDIDATES], history)
        if text:
            done[check] = text
            verdicts[check] = replace(verdicts[check], detail=f"{verdicts[check].detail}; {text}")
    return done


def _shrink_check(the_run: Run, mode: str, check: str, keys: list[int], history: list[Op]) -> str:
    """The first candidate key whose failure a replay reproduces, shrunk; else why none was ('' when none tried)."""
    replay_check = replay.TTL if check == "ttl_expiry_honoured" else check
    misses: list[str] = []
    for key in keys:
        index = max((i for i, op in enumerate(history) if key in op.keys), default=None)
        if index is None or time.monotonic() >= the_run.shrink_deadline:
            continue
        try:
            shrunk = _shrink_one(the_run, mode, replay_check, check, key, index, history)
        except OPERATION_ERRORS as exc:
            the_run.at(mode, "judge").failed(exc)
            return f"not shrunk: the replay met an error ({describe_error(exc)})"
        if shrunk.reproduced:
            return shrunk.describe() + (
                f" (key {key}; keys {', '.join(misses)} did not replay alone)" if misses else ""
            )
        misses.append(str(key))
        last = shrunk.describe()
    if not misses:
        return ""
    return last + (f"; tried keys {', '.join(misses)}" if len(misses) > 1 else "")


def _shrink_one(
    the_run: Run, mode: str, replay_check: str, check: str, key: int, index: int, history: list[Op]
) -> replay.Shrunk:
    services = the_run.services
    replayer = replay.Replayer(
        mode, the_run.config, the_run.plan, services.connect, services.cache, the_run.shrink_deadline
    )
    ops, reproduced, complete, tests = replay.shrink(replay.Target(replay_check, key, index), history, replayer)
    path = None
    if reproduced and services.output_dir is not None:
        outcome = {"key": key, "reproduced": reproduced, "complete": complete, "replays": tests}
        path = replay.write_case(services.output_dir, mode, check, the_run.config, the_run.plan, ops, outcome)
    return replay.Shrunk(check, mode, ops, reproduced, complete, tests, path)


# -- instruments and latency ------------------------------------------------------------------------------------
def _calibrate(the_run: Run, mode: str, table: CachedTable) -> list[Calibration]:
    """The instruments at the readers' concurrency on this mode's latency rows and a cached entry of their size."""
    calibrate = the_run.services.calibrate
    assert calibrate is not None
    probe_key = table.cache_key(table.latency_ids[0])
    try:
        table.cache.set(probe_key, table.latency_entry().encode(), px=int(the_run.config.ttl_seconds * 1000))
        the_run.at(mode, "calibrate").ok()
    except OPERATION_ERRORS as exc:  # measured; redis-benchmark then reads a miss, which it still times
        the_run.at(mode, "calibrate").failed(exc)
    return calibrate(probe_key.decode(), table.calibration_script(), int(the_run.config.readers or 1))


def _clean_up(the_run: Run, mode: str, table: CachedTable) -> None:
    """Remove the mode's table and keys now (the supervisor retries whatever this could not remove)."""
    errors = the_run.at(mode, "cleanup")
    try:
        with the_run.services.connect() as conn:
            table.drop(conn)
        errors.ok()
    except OPERATION_ERRORS as exc:
        errors.failed(exc)
    try:
        table.remove_keys()
        errors.ok()
    except OPERATION_ERRORS as exc:
        errors.failed(exc)


# -- figures --------------------------------------------------------------------------------------------------
def _mode_figures(mode: str, config: CacheConfig, counts: Counts, elapsed: float, judged: Judged) -> list[Metric]:
    ops = counts.reads + counts.writes + counts.deletes
    stale_rate = counts.stale_reads / counts.reads if counts.reads else float("nan")
    info, volume = MetricKind.INFO, MetricKind.VOLUME
    figures = [
        # the operation mix is drawn per run: throughput and hit ratio follow it, so they are context, not judged
        Metric(f"{mode}.ops_per_s", ops / elapsed if elapsed else 0.0, "ops/s", HIGHER, info),
        Metric(
            f"{mode}.hit_ratio",
            counts.hits / counts.reads if counts.reads else 0.0,
            "ratio",
            HIGHER,
            info,
            samples=counts.reads,
        ),  # fmt: skip
        Metric(f"{mode}.stale_read_rate", stale_rate, "ratio", LOWER, samples=counts.reads),
        Metric(
            f"{mode}.stale_read_nines", nines(stale_rate, counts.reads), "nines", HIGHER, info, samples=counts.reads
        ),  # fmt: skip
        Metric(f"{mode}.divergent_keys", len(judged.divergent), "keys", LOWER),
        Metric(f"{mode}.value_mismatches", len(judged.mismatches), "reads", LOWER),
        Metric(f"{mode}.reads_after_expiry", len(judged.after_expiry), "reads", LOWER),
        Metric(f"{mode}.reads_checked", judged.checked_reads, "reads", HIGHER, volume),
        # one operation's worst case is too noisy to judge; it is the figure that shows a stall (and which op)
        Metric(f"{mode}.slowest_op_ms", counts.slowest_op_ms, "ms", LOWER, info),
    ]
    for name, value in (
        ("reads", counts.reads), ("writes", counts.writes), ("deletes", counts.deletes),
        ("multi_reads", counts.multi_reads), ("ttl_refreshes", counts.refreshes), ("refused_writes", counts.refused),
        ("absent_reads", counts.absent), ("hits", counts.hits),
    ):  # fmt: skip
        figures.append(Metric(f"{mode}.{name}", value, "ops", HIGHER, volume))
    for label, q in (("p50", 50), ("p99", 99), ("max", 100)):
        value = percentile(counts.staleness_ms, q) if counts.staleness_ms else 0.0
        figures.append(Metric(f"{mode}.staleness_{label}_ms", value, "ms", LOWER, samples=len(counts.staleness_ms)))
    return figures


def _latency_figures(mode: str, reads: latency.ReadLatency) -> list[Metric]:
    figures = []
    for source, samples in (("cache", reads.cache_ms), ("db", reads.db_ms)):
        for q in (50, 95, 99):
            figures.append(
                Metric(f"{mode}.{source}_read_p{q}_ms", percentile(samples, q), "ms", LOWER, samples=len(samples))
            )
    return figures


def _merge_modes(the_run: Run) -> list[Invariant]:
    """One check per invariant across the configured modes: it passes only if it held in every mode."""
    merged = []
    for name in INVARIANTS:
        parts, passed = [], True
        for mode in the_run.config.modes:
            outcome = the_run.outcomes.get(mode)
            verdict = outcome.verdicts.get(name) if outcome else None
            if verdict is None:
                parts.append(f"{mode}: not evaluated (the run stopped before this mode was judged)")
                passed = False
                continue
            passed = passed and verdict.passed
            parts.append(f"{mode}: {'ok' if verdict.passed else 'FAILED'}, {verdict.detail}")
        facts = {f"{m}.passed": bool(o.verdicts[name].passed) for m, o in the_run.outcomes.items() if o.verdicts}
        merged.append(Invariant(name, passed, "; ".join(parts), facts))
    return merged


def _calibration_figures(the_run: Run, result: ScenarioResult) -> None:
    """Instrument figures, and per mode `harness p50 / instrument p50` (cache reads vs GET, DB reads vs SELECT)."""
    harness = {"redis_get": "cache_read_p50_ms", "pgbench_select": "db_read_p50_ms"}
    names = {m.name: m.value for m in result.metrics}
    for outcome in the_run.outcomes.values():
        for reading in outcome.readings:
            stem = harness[reading.instrument]
            ratios = {
                f"{mode}.{stem.removesuffix('_ms')}": names[f"{mode}.{stem}"]
                for mode in the_run.outcomes
                if f"{mode}.{stem}" in names
            }
            result.metrics.extend(reading.metrics(ratios))
            result.environment[f"calibration.{reading.instrument}"] = reading.describe()


def _watch_postgres(the_run: Run, table: str, own: observe_pg.OwnWrites) -> None:
    """A first look at the new table (its origin), and a light sampler (every 0.5 s) from the first table on,
    so a trigger, rule, outside session or restart that comes and goes before the judge is still named; `own`
    counts the rows the run writes to it, so rows someone else wrote are named (the cache's blind spot)."""
    the_run.pg_tables.append(table)
    the_run.pg_own[table] = own
    origin = observe_pg.snapshot(the_run.services.connect, [table], OWN_APPLICATION)
    the_run.pg_origins.append(origin)
    if the_run.pg_watch is None:
        the_run.pg_watch = Sampler(the_run.look_at_postgres, name="cache-pg-observer").start()
        the_run.sup.on_cleanup("stop the PostgreSQL observer", the_run.pg_watch.stop)


def _last_look(the_run: Run, table: str) -> None:
    """The table's last look, taken before the run's own cleanup drops it; later samples leave it out."""
    if table in the_run.pg_tables:
        the_run.pg_last[table] = observe_pg.snapshot(the_run.services.connect, [table], OWN_APPLICATION)
        the_run.pg_tables.remove(table)


def _observe_postgres(the_run: Run, failed: bool) -> str:
    """What PostgreSQL showed on the run's tables (kit.observe.postgres), looked at only when a check failed
    (the sampler's looks are kept either way); "unexplained" when nothing stands out. The run's writers have
    ended by the last look, and it never truncates or rewrites its tables: rows counted beyond its own writes
    and a replaced storage are someone else's."""
    during = the_run.pg_watch.stop() if the_run.pg_watch is not None else []
    if not failed:
        return "not looked (no check failed)"
    if not the_run.pg_origins:
        return "not looked (no table was set up)"
    now = the_run.look_at_postgres() if the_run.pg_tables else None  # a table the run did not clean up (a crash)
    found: list[str] = []
    for origin in the_run.pg_origins:  # each table judged from its own first and last look; server facts once
        last = next((the_run.pg_last[name] for name in origin.tables if name in the_run.pg_last), now)
        if last is None:
            continue
        own = {name: the_run.pg_own[name].total() for name in origin.tables if name in the_run.pg_own}
        during_table = [look for look in during if origin.at <= look.at <= last.at]  # this table's own lifetime
        found += observe_pg.findings(origin, last, during_table, unexpected_writes=("truncate",), own_writes=own)
        found += [text for name in origin.tables if (text := the_run.pg_content.get(name))]
    found = list(dict.fromkeys(found))
    return "; ".join(found) if found else observe_pg.UNEXPLAINED


def _result(the_run: Run) -> ScenarioResult:
    """Everything gathered so far as one result (called after the last mode, and after a crash)."""
    config = the_run.config
    result = ScenarioResult(area=AREA)
    for outcome in the_run.outcomes.values():
        result.metrics.extend(outcome.metrics)
        if outcome.slowest_op:
            result.environment[f"{outcome.mode}.slowest_op"] = outcome.slowest_op
    _calibration_figures(the_run, result)
    result.metrics.extend(the_run.coverage.metrics())
    error_rate, no_errors = the_run.errors.figures("cache and database operations")
    result.metrics.append(error_rate)
    invariants = [*_merge_modes(the_run), no_errors]
    observed = _observe(the_run)
    observed_pg = _observe_postgres(the_run, any(not inv.passed for inv in invariants))
    result.invariants = [_with_cause(inv, observed, config.fault, observed_pg) for inv in invariants]
    result.environment.update(
        {
            "seed": the_run.plan.seed,
            "plan": json.dumps(the_run.plan.describe(), sort_keys=True),
            "coverage": the_run.coverage.to_json(),
            "coverage_summary": the_run.coverage.describe(),
            "observed.redis": observed,
            "observed.postgres": observed_pg,
            "modes": ",".join(config.modes),
            "fault": config.fault,
            "profile": config.profile,
            "keys": int(config.keys or 0),
            "readers": int(config.readers or 0),
            "writers": int(config.writers or 0),
            "writes_per_second": float(config.writes_per_second or 0),
            "ttl_seconds": config.ttl_seconds,
        }
    )
    for outcome in the_run.outcomes.values():
        for check, text in outcome.shrunk.items():
            result.environment[f"shrunk.{outcome.mode}.{check}"] = text
    result.environment.update(_versions(the_run))
    result.comparable_on.update(
        {
            "workload": WORKLOAD_VERSION,
            "profile": config.profile,
            "fault": config.fault,
            "delay_invalidation_ms": config.delay_invalidation_ms,
            "modes": ",".join(config.modes),
            "keys": int(config.keys or 0),
            "readers": int(config.readers or 0),
            "writers": int(config.writers or 0),
            "writes_per_second": float(config.writes_per_second or 0),
            "max_ops": int(config.max_ops or 0),
            "max_seconds": float(config.max_seconds or 0),
            "ttl_seconds": config.ttl_seconds,
        }
    )
    return result


def _observe(the_run: Run) -> str:
    """What Redis showed between the start and now (PostgreSQL: `_observe_postgres`)."""
    during = the_run.watcher.stop() if the_run.watcher is not None else []
    after = the_run.services.observe_redis()
    before = the_run.redis_before or after
    return explain(before, after, during)


def _with_cause(invariant: Invariant, observed: str, fault: str, observed_pg: str = "") -> Invariant:
    """A failed check names what the servers showed, and the fault the run injected on purpose."""
    if invariant.passed:
        return invariant
    parts = [f"observed on postgres: {observed_pg}"] if observed_pg else []
    parts.append(f"observed on redis: {observed}")
    if fault != "none":
        parts.insert(0, f"fault={fault} was injected on the application's code path")
    return replace(invariant, detail=f"{invariant.detail} [{'; '.join(parts)}]")


def _versions(the_run: Run) -> dict[str, str]:
    found: dict[str, str] = {}
    try:
        with the_run.services.connect() as conn:
            found["postgres_version"] = str(conn.execute("SHOW server_version").fetchone()[0])
    except OPERATION_ERRORS as exc:
        found["postgres_version"] = f"unknown ({describe_error(exc)})"
    try:
        version = the_run.services.cache.info("server").get("redis_version", "?")
        found["redis_version"] = version.decode() if isinstance(version, bytes) else str(version)
    except OPERATION_ERRORS as exc:
        found["redis_version"] = f"unknown ({describe_error(exc)})"
    found["redis_py_version"] = redis.__version__
    found["psycopg_version"] = psycopg.__version__
    return found
