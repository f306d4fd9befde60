"""Cache-coherence scenario: concurrent readers and writers against PostgreSQL + Redis, judged by an oracle.

Plain Python (no Dagster): takes a connection factory and a Redis client, returns a ScenarioResult. A server
that answers with errors (Redis OOM, PostgreSQL refusing connections) is measured: each failed operation is
counted and named in `no_operation_errors`, and the workers carry on until the budget ends.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
import redis

from assets.cache_coherence import latency
from assets.cache_coherence.config import CacheConfig
from assets.cache_coherence.oracle import CommitLog
from assets.cache_coherence.store import OPERATION_ERRORS, CachedTable, CacheEntry
from regression_pipelines.calibration import Calibration
from regression_pipelines.measure import ErrorTally, describe_error, nines, percentile
from regression_pipelines.results import Direction, Invariant, Metric, MetricKind, ScenarioResult
from regression_pipelines.timed_calls import PreparedQuery, TimedRedis, unusable

AREA = "cache_coherence"
INVARIANTS = ("no_divergence_after_settle", "stale_read_rate_within_bound", "ttl_expiry_honoured")
TTL_PROBE_MS = 300

ConnectionFactory = Callable[[], psycopg.Connection]
# (redis key to GET, pgbench script, clients) -> the instruments' readings against the same servers.
Calibrate = Callable[[str, str, int], list[Calibration]]


@dataclass
class ModeStats:
    """What the workers saw during one mode's workload (appended under the GIL: list.append is atomic)."""

    reads: int = 0
    writes: int = 0
    hits: int = 0
    stale_reads: int = 0
    staleness_ms: list[float] = field(default_factory=list)
    errors: ErrorTally = field(default_factory=ErrorTally)  # shared by every mode of one run
    crashes: list[str] = field(default_factory=list)  # a worker that died: a harness bug, never measured away
    elapsed_s: float = 0.0


class _Budget:
    """Shared operation count and deadline: every workload stops on whichever comes first."""

    def __init__(self, max_ops: int, max_seconds: float) -> None:
        self._remaining = max_ops
        self._lock = threading.Lock()
        self.deadline = time.monotonic() + max_seconds

    def take(self) -> bool:
        if time.monotonic() >= self.deadline:
            return False
        with self._lock:
            if self._remaining <= 0:
                return False
            self._remaining -= 1
            return True


def _skew(keys: int) -> list[float]:
    """Zipf-like cumulative weights: a few hot keys get most traffic, so reads and writes really collide.

    Computed once per picker: `random.choices` would otherwise redo it on every operation.
    """
    return list(itertools.accumulate(1.0 / (rank + 1) ** 0.9 for rank in range(keys)))


def _key_picker(keys: int, seed: int) -> Callable[[], int]:
    rng, population, cum_weights = random.Random(seed), range(keys), _skew(keys)
    return lambda: rng.choices(population, cum_weights=cum_weights)[0]


def _key_sequence(keys: int) -> Callable[[int, int], list[int]]:
    """`(seed, count)` -> `count` keys with the workload's skew, drawn in one call (no per-key Python later)."""
    population, cum_weights = range(keys), _skew(keys)
    return lambda seed, count: random.Random(seed).choices(population, cum_weights=cum_weights, k=count)


def _reader(
    table: CachedTable,
    log: CommitLog,
    connect: ConnectionFactory,
    budget: _Budget,
    stats: ModeStats,
    seed: int,
) -> None:
    """Reads through the cache on the same lean client path the latency phase times (regression_pipelines.
    timed_calls); latency is not timed here: the oracle's bookkeeping would sit inside every timing."""
    pick_key = _key_picker(table.config.keys, seed)
    db = _Connection(connect, table.db_read_query)
    cache = _TimedCache(table.cache)
    try:
        while budget.take():
            key = pick_key()
            started = time.monotonic()
            expected = log.latest(key)
            get = table.packed_get(key)
            try:
                raw, _ = cache.get().call(get)
                entry = CacheEntry.parse(raw.decode()) if raw is not None else None
                if entry is not None and not entry.tombstone:
                    stats.hits += 1
                    served, fill = entry.version, None
                else:
                    rows, _ = db.query().run(key)
                    version, value = int(str(rows[0][0])), str(rows[0][1])
                    served, fill = version, CacheEntry(version, False, value)
            except OPERATION_ERRORS as exc:
                stats.errors.failed(exc)
                db.discard_if_broken()
                cache.discard_if_broken()
                continue
            stats.errors.ok()
            stats.reads += 1
            if served < expected:
                stats.stale_reads += 1
                stats.staleness_ms.append(log.staleness(key, served, started) * 1000)
            if fill is not None:  # the reader got its value; a failed fill is an error of its own
                _counted(stats.errors, table.cache_put, key, fill)
    finally:
        db.close()
        cache.close()


def _writer(
    table: CachedTable,
    log: CommitLog,
    connect: ConnectionFactory,
    budget: _Budget,
    stats: ModeStats,
    mode: str,
    interval_s: float,
    seed: int,
) -> None:
    pick_key = _key_picker(table.config.keys, seed)
    next_at = time.monotonic()
    db = _Connection(connect)
    try:
        while budget.take():
            key = pick_key()
            try:
                version, value, committed_at = table.db_write(db.get(), key)
            except OPERATION_ERRORS as exc:
                stats.errors.failed(exc)
                db.discard_if_broken()
            else:
                log.record(key, version, committed_at)  # committed: the oracle knows, whatever the cache does
                stats.writes += 1
                stats.errors.ok()
                _counted(stats.errors, table.after_write, mode, key, version, value)
            next_at += interval_s
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(min(pause, max(0.0, budget.deadline - time.monotonic())))
    finally:
        db.close()


def _counted(errors: ErrorTally, action: Callable[..., None], *args: object) -> None:
    """One cache operation, counted as done or failed (a failed cache update never hides the write)."""
    try:
        action(*args)
    except OPERATION_ERRORS as exc:
        errors.failed(exc)
    else:
        errors.ok()


class _Connection:
    """A worker's database connection, reopened after the server dropped it (each failure is counted).

    With `prepare`, `query()` gives the statement it prepares on the current connection."""

    def __init__(
        self, connect: ConnectionFactory, prepare: Callable[[psycopg.Connection], PreparedQuery] | None = None
    ) -> None:
        self._connect = connect
        self._prepare = prepare
        self._conn: psycopg.Connection | None = None
        self._query: PreparedQuery | None = None

    def get(self) -> psycopg.Connection:
        if self._conn is None:
            self._conn = self._connect()
            self._conn.execute("SET application_name = 'cache_coherence.worker'")  # tells operators what it is
        return self._conn

    def query(self) -> PreparedQuery:
        if self._query is None:
            if self._prepare is None:
                raise TypeError("this connection was opened without a statement to prepare")
            self._query = self._prepare(self.get())
        return self._query

    def discard_if_broken(self) -> None:
        if self._conn is not None and unusable(self._conn):
            self._conn.close()
            self._conn = None
            self._query = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class _TimedCache:
    """A reader's own timed Redis connection, reopened after an error broke it."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._conn: TimedRedis | None = None

    def get(self) -> TimedRedis:
        if self._conn is None:
            self._conn = TimedRedis.like(self._client)
        return self._conn

    def discard_if_broken(self) -> None:
        if self._conn is not None and self._conn.broken:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _guarded(target: Callable[..., None], stats: ModeStats) -> Callable[..., None]:
    def run(*args: object) -> None:
        try:
            target(*args)
        except Exception as exc:  # a worker bug must surface in the result, never vanish in a thread
            stats.crashes.append(f"{type(exc).__name__}: {exc}")

    return run


def _calibrate(table: CachedTable, config: CacheConfig, calibrate: Calibrate) -> list[Calibration]:
    """The instruments at the readers' concurrency on this mode's own table and a cached entry of its size."""
    probe_key = table.prefix + "calibration"
    table.cache.set(probe_key, CacheEntry(1, False, "v1").encode(), px=int(config.ttl_seconds * 1000))
    script = f"\\set id random(0, {config.keys - 1})\nSELECT version, value FROM {table.table} WHERE id = :id;\n"
    return calibrate(probe_key, script, config.readers)


def _run_mode(
    mode: str,
    config: CacheConfig,
    connect: ConnectionFactory,
    cache: redis.Redis,
    errors: ErrorTally,
    calibrate: Calibrate | None,
) -> tuple[list[Metric | Invariant], list[Calibration]]:
    run_tag = uuid.uuid4().hex[:12]
    table = CachedTable(run_tag, config, cache)
    log = CommitLog(config.keys)
    stats = ModeStats(errors=errors)
    with connect() as admin:
        table.create(admin)
        try:
            budget = _Budget(config.max_ops, config.max_seconds)
            interval = config.writers / config.writes_per_second
            threads = [
                threading.Thread(
                    target=_guarded(_reader, stats),
                    args=(table, log, connect, budget, stats, config.seed + i),
                )
                for i in range(config.readers)
            ] + [
                threading.Thread(
                    target=_guarded(_writer, stats),
                    args=(table, log, connect, budget, stats, mode, interval, config.seed + 1000 + i),
                )
                for i in range(config.writers)
            ]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(config.max_seconds + 30)
            stats.elapsed_s = time.monotonic() - started
            if stats.crashes:
                raise RuntimeError(f"{mode}: {len(stats.crashes)} worker(s) crashed, first: {stats.crashes[0]}")
            table.wait_for_pending(config.delay_invalidation_ms / 1000 + 5)
            for error in table.deferred_errors:
                errors.failed(error)
            time.sleep(config.settle_seconds)
            divergent = _divergent_keys(table, admin)
            ttl = _ttl_check(table, config, errors)
            readings = _calibrate(table, config, calibrate) if calibrate else []
            keys = _key_sequence(config.keys)
            reads = latency.measure(table, connect, keys, config.readers, config.latency_seconds, errors)
        finally:
            table.drop(admin)
    return _mode_figures(mode, config, stats, reads, divergent, ttl), readings


def _divergent_keys(table: CachedTable, conn: psycopg.Connection) -> list[int]:
    """Keys whose cached value (not a tombstone) disagrees with the committed row after settling."""
    rows = dict(conn.execute(f"SELECT id, version FROM {table.table}").fetchall())
    divergent = []
    for key, version in rows.items():
        entry = table.cache_get(key)
        if entry is not None and not entry.tombstone and entry.version != version:
            divergent.append(key)
    return sorted(divergent)


def _ttl_check(table: CachedTable, config: CacheConfig, errors: ErrorTally) -> tuple[bool, str]:
    """Every cached entry expires within the TTL, and a short-TTL probe really expires: (passed, detail)."""
    limit_ms = int(config.ttl_seconds * 1000)
    for key in range(config.keys):
        pttl = table.cache.pttl(table.cache_key(key))
        if pttl == -1:
            return False, f"key {table.cache_key(key)} has no expiry (configured ttl {config.ttl_seconds}s)"
        if pttl > limit_ms:
            return False, f"key {table.cache_key(key)} expires in {pttl} ms > ttl {limit_ms} ms"
    honoured = f"all cached keys expire within {config.ttl_seconds}s"
    probe_key = config.keys  # outside the workload's key range
    try:
        table.cache_put(probe_key, CacheEntry(1, False, "probe"), ttl_ms=TTL_PROBE_MS)
    except redis.RedisError as exc:  # the write error is the news (no_operation_errors); what is cached expires
        errors.failed(exc)
        return True, f"{honoured}; the {TTL_PROBE_MS} ms probe could not be written ({describe_error(exc)})"
    time.sleep(TTL_PROBE_MS / 1000 * 2)
    if table.cache_get(probe_key) is not None:
        return False, f"probe written with ttl {TTL_PROBE_MS} ms still present after {TTL_PROBE_MS * 2} ms"
    return True, f"{honoured}; a {TTL_PROBE_MS} ms probe expired"


def _mode_figures(
    mode: str,
    config: CacheConfig,
    stats: ModeStats,
    reads: latency.ReadLatency,
    divergent: list[int],
    ttl: tuple[bool, str],
) -> list[Metric | Invariant]:
    ops = stats.reads + stats.writes
    stale_rate = stats.stale_reads / stats.reads if stats.reads else float("nan")
    lower, higher = Direction.LOWER_IS_BETTER, Direction.HIGHER_IS_BETTER
    figures: list[Metric | Invariant] = [
        Metric(f"{mode}.ops_per_s", ops / stats.elapsed_s if stats.elapsed_s else 0.0, "ops/s", higher),
        Metric(
            f"{mode}.hit_ratio", stats.hits / stats.reads if stats.reads else 0.0, "ratio", higher, samples=stats.reads
        ),
        Metric(f"{mode}.stale_read_rate", stale_rate, "ratio", lower, samples=stats.reads),
        Metric(f"{mode}.stale_read_nines", nines(stale_rate, stats.reads), "nines", higher, samples=stats.reads),
        Metric(f"{mode}.divergent_keys", len(divergent), "keys", lower),
        Metric(f"{mode}.reads", stats.reads, "ops", higher, kind=MetricKind.VOLUME),
        Metric(f"{mode}.writes", stats.writes, "ops", higher, kind=MetricKind.VOLUME),
    ]
    for source, samples in (("cache", reads.cache_ms), ("db", reads.db_ms)):
        for q in (50, 95, 99):
            figures.append(
                Metric(f"{mode}.{source}_read_p{q}_ms", percentile(samples, q), "ms", lower, samples=len(samples))
            )
    for label, q in (("p50", 50), ("p99", 99), ("max", 100)):
        figures.append(
            Metric(
                f"{mode}.staleness_{label}_ms",
                percentile(stats.staleness_ms, q) if stats.staleness_ms else 0.0,
                "ms",
                lower,
                samples=len(stats.staleness_ms),
            )
        )
    facts = {"mode": mode, "reads": stats.reads, "stale_reads": stats.stale_reads}
    figures += [
        Invariant(
            "no_divergence_after_settle",
            not divergent,
            f"{len(divergent)} of {config.keys} keys differ between cache and database after "
            f"{config.settle_seconds}s settle" + (f" (e.g. keys {divergent[:5]})" if divergent else ""),
            facts,
        ),
        Invariant(
            "stale_read_rate_within_bound",
            stats.reads > 0 and stale_rate <= config.max_stale_read_rate,
            f"{stats.stale_reads} stale of {stats.reads} reads = {stale_rate:.5f} (bound {config.max_stale_read_rate})",
            facts,
        ),
        Invariant(
            "ttl_expiry_honoured",
            *ttl,
            facts,
        ),
    ]
    return figures


def _merge_modes(per_mode: list[Invariant]) -> list[Invariant]:
    """One check per invariant across the modes run: it passes only if it held in every mode."""
    merged = []
    for name in INVARIANTS:
        parts = [inv for inv in per_mode if inv.name == name]
        merged.append(
            Invariant(
                name,
                all(inv.passed for inv in parts),
                "; ".join(f"{inv.facts['mode']}: {'ok' if inv.passed else 'FAILED'}, {inv.detail}" for inv in parts),
                {f"{inv.facts['mode']}.passed": inv.passed for inv in parts},
            )
        )
    return merged


def _calibration_figures(readings: list[Calibration], result: ScenarioResult, modes: list[str]) -> None:
    """Instrument figures, and per mode `harness p50 / instrument p50` (cache reads vs GET, DB reads vs SELECT)."""
    harness = {"redis_get": "cache_read_p50_ms", "pgbench_select": "db_read_p50_ms"}
    for reading in readings:
        stem = harness[reading.instrument]
        ratios = {f"{mode}.{stem.removesuffix('_ms')}": result.metric(f"{mode}.{stem}").value for mode in modes}
        result.metrics.extend(reading.metrics(ratios))
        result.environment[f"calibration.{reading.instrument}"] = reading.describe()


def run(
    config: CacheConfig, connect: ConnectionFactory, cache: redis.Redis, calibrate: Calibrate | None = None
) -> ScenarioResult:
    """Run each configured mode in turn (each with a fresh table and key space) and gather the figures.

    With `calibrate`, the field's instruments run once, in the first mode, right before its latency phase.
    """
    result = ScenarioResult(area=AREA)
    per_mode: list[Invariant] = []
    errors = ErrorTally()
    readings: list[Calibration] = []
    for index, mode in enumerate(config.modes):
        figures, found = _run_mode(mode, config, connect, cache, errors, calibrate if index == 0 else None)
        readings += found
        for figure in figures:
            (result.metrics if isinstance(figure, Metric) else per_mode).append(figure)
    _calibration_figures(readings, result, config.modes)
    error_rate, no_errors = errors.figures("cache and database operations")
    result.metrics.append(error_rate)
    result.invariants = [*_merge_modes(per_mode), no_errors]
    with connect() as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
    result.comparable_on.update(
        {
            "fault": config.fault,
            "delay_invalidation_ms": config.delay_invalidation_ms,
            "modes": ",".join(config.modes),
            "keys": config.keys,
            "readers": config.readers,
            "writers": config.writers,
            "writes_per_second": config.writes_per_second,
            "max_ops": config.max_ops,
            "max_seconds": config.max_seconds,
            "ttl_seconds": config.ttl_seconds,
        }
    )
    result.environment.update(
        {
            "postgres_version": str(pg_version),
            "redis_version": str(cache.info("server")["redis_version"]),
            "modes": ",".join(config.modes),
            "fault": config.fault,
            "keys": config.keys,
            "readers": config.readers,
            "writers": config.writers,
            "writes_per_second": config.writes_per_second,
            "ttl_seconds": config.ttl_seconds,
        }
    )
    return result
