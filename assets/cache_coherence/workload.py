"""One mode's workload: readers and writers drawing operations from the run's plan, judged by the oracles.

Readers run read-through GETs, multi-key reads (MGET, misses read with one SELECT and filled in one pipeline) and
reads that refresh the TTL of what they hit; writers insert/update rows with generated labels and values, or delete
them, then invalidate (cache-aside) or set (write-through) the cache. Every operation goes through redis-py and
psycopg, the clients under test. A failed operation is counted and the worker carries on; a write whose outcome
is unknown (the connection broke) is kept as "maybe committed" so a later read of it is not called a phantom.
`Executor` runs one operation with explicit arguments, so a recorded history replays on fresh state (`replay`).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import NamedTuple

import psycopg

from assets.cache_coherence import generate
from assets.cache_coherence.config import CacheConfig
from assets.cache_coherence.generate import Plan, digest, label_bytes
from assets.cache_coherence.oracle import CommitLog, ExpiryLedger, Version
from assets.cache_coherence.store import OPERATION_ERRORS, CachedTable, CacheEntry
from regression_pipelines.kit.causes import root_cause
from regression_pipelines.kit.generate import Coverage
from regression_pipelines.measure import PhaseErrors
from regression_pipelines.timed_calls import unusable

ConnectionFactory = Callable[[], psycopg.Connection]
NUL_IN_TEXT = "nul_in_text"
CACHE_UPDATE_RETRIES = (0.05, 0.2, 0.5, None)  # pauses between attempts of an invalidation or write-through set


class Op(NamedTuple):
    """One completed operation, in the order operations completed (the history replays in this order)."""

    kind: str
    keys: tuple[int, ...]
    draw: int = 0  # writes: which content draw of the key (Plan.content)
    ttl_ms: int = 0  # the TTL of the fill, write-through set or refresh

    def describe(self, plan: Plan) -> str:
        keys = ", ".join(f"{k} ({plan.key_classes[k]} name, {plan.value_classes[k]} value)" for k in self.keys)
        extra = f" draw {self.draw}" if self.kind == generate.WRITE.name else ""
        return f"{self.kind} {keys}{extra} ttl {self.ttl_ms} ms"


@dataclass
class Counts:
    """What one worker saw (each thread has its own; `add` sums them)."""

    reads: int = 0
    multi_reads: int = 0
    refreshes: int = 0
    writes: int = 0
    deletes: int = 0
    refused: int = 0
    hits: int = 0
    absent: int = 0
    stale_reads: int = 0
    staleness_ms: list[float] = field(default_factory=list)
    stale_keys: list[int] = field(default_factory=list)  # the first few, for shrinking
    # The longest one workload operation took (read, multi-read, write or delete, with its cache calls and
    # retries): a stall of the cache or the database (a CLIENT PAUSE, a paused process, a lock) leaves the
    # latency phase's percentiles untouched but shows here.
    slowest_op_ms: float = 0.0
    slowest_op: str = ""

    def add(self, other: Counts) -> None:
        for f in fields(self):
            if f.name in ("slowest_op_ms", "slowest_op"):
                continue
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            setattr(self, f.name, mine + theirs)
        if other.slowest_op_ms > self.slowest_op_ms:
            self.slowest_op_ms, self.slowest_op = other.slowest_op_ms, other.slowest_op

    def timed(self, kind: str, started: float) -> None:
        """Keep the operation begun at `started` (monotonic s) if it is the slowest so far."""
        took_ms = (time.monotonic() - started) * 1000
        if took_ms > self.slowest_op_ms:
            self.slowest_op_ms, self.slowest_op = took_ms, kind


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


class Connection:
    """A worker's database connection, reopened after the server dropped it (each failure is counted)."""

    def __init__(self, connect: ConnectionFactory) -> None:
        self._connect = connect
        self._conn: psycopg.Connection | None = None

    def get(self) -> psycopg.Connection:
        if self._conn is None:
            self._conn = self._connect()
            self._conn.execute(
                "SET application_name = 'regression_pipelines.cache_coherence.worker'"
            )  # what it is; whose
        return self._conn

    @property
    def broken(self) -> bool:
        return self._conn is None or unusable(self._conn)

    def discard_if_broken(self) -> None:
        if self._conn is not None and unusable(self._conn):
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


@dataclass
class Executor:
    """Runs single operations of one mode against one table, feeding the oracles, coverage and history."""

    mode: str
    table: CachedTable
    log: CommitLog
    ledger: ExpiryLedger
    coverage: Coverage
    errors: PhaseErrors
    history: deque[Op] = field(default_factory=deque)
    draws: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def plan(self) -> Plan:
        return self.table.plan

    # -- reads ---------------------------------------------------------------------------------------------
    def read(self, db: Connection, counts: Counts, key: int, ttl_ms: int, refresh: bool) -> None:
        self.coverage.value("key_name", self.plan.key_classes[key])
        expected, started = self.log.latest(key), time.monotonic()
        shape = generate.REFRESH if refresh else generate.READ
        try:
            entry = self.table.get(key)
            if entry is not None and not entry.tombstone:
                counts.hits += 1
                self._judge(counts, key, entry.version, entry.label, entry.value, "cache", expected, started)
                if refresh:
                    self.table.refresh(key, ttl_ms)
                    counts.refreshes += 1
            else:
                row = self.table.db_read(db.get(), key)
                self._served_from_db(db, counts, key, row, ttl_ms, expected, started)
        except OPERATION_ERRORS as exc:
            self._failed(shape, exc, db)
            return
        counts.reads += 1
        self._done(shape, Op(shape.name, (key,), 0, ttl_ms))

    def multi_read(self, db: Connection, counts: Counts, keys: tuple[int, ...], ttl_ms: int) -> None:
        started = time.monotonic()
        expected = {key: self.log.latest(key) for key in keys}
        try:
            entries = self.table.get_many(keys)
            misses = []
            for key, entry in zip(keys, entries, strict=True):
                if entry is not None and not entry.tombstone:
                    counts.hits += 1
                    self._judge(counts, key, entry.version, entry.label, entry.value, "cache", expected[key], started)
                else:
                    misses.append(key)
            rows = self.table.db_read_many(db.get(), misses) if misses else {}
            fills = []
            for key in misses:
                row = rows.get(key)
                if row is None:
                    self._absent(counts, key, started, expected[key])
                    continue
                version, label, value = row
                self._judge(counts, key, version, label_bytes(label), value, "db", expected[key], started)
                fills.append((key, CacheEntry(version, False, label_bytes(label), value), ttl_ms))
        except OPERATION_ERRORS as exc:
            self._failed(generate.MULTI_READ, exc, db)
            return
        counts.reads += len(keys)
        counts.multi_reads += 1
        self._done(generate.MULTI_READ, Op(generate.MULTI_READ.name, keys, 0, ttl_ms))
        if fills:
            self._fill(fills)

    def _served_from_db(
        self,
        db: Connection,
        counts: Counts,
        key: int,
        row: tuple[int, str, bytes] | None,
        ttl_ms: int,
        expected: int,
        started: float,
    ) -> None:
        if row is None:
            self._absent(counts, key, started, expected)
            return
        version, label, value = row
        self._judge(counts, key, version, label_bytes(label), value, "db", expected, started)
        self._fill([(key, CacheEntry(version, False, label_bytes(label), value), ttl_ms)])

    def _fill(self, entries: list[tuple[int, CacheEntry, int]]) -> None:
        """The reader got its values; filling the cache is an operation of its own, its failure counted apart."""
        try:
            if len(entries) == 1:
                key, entry, ttl_ms = entries[0]
                self.table.put(key, entry, ttl_ms)
            else:
                self.table.put_many(entries)
        except OPERATION_ERRORS as exc:
            self.coverage.op(generate.FILL, error=True)
            self.errors.failed(exc)
        else:
            self.coverage.op(generate.FILL)
            self.errors.ok()

    def _absent(self, counts: Counts, key: int, started: float, expected: int) -> None:
        counts.absent += 1
        self.log.absent(key, started, time.monotonic(), expected)

    def _judge(
        self,
        counts: Counts,
        key: int,
        version: int,
        label: bytes,
        value: bytes,
        source: str,
        expected: int,
        started: float,
    ) -> None:
        self.log.check(key, version, digest(label, value), source, started)
        if version < expected:
            counts.stale_reads += 1
            counts.staleness_ms.append(self.log.staleness(key, version, started) * 1000)
            if len(counts.stale_keys) < 5:
                counts.stale_keys.append(key)

    # -- writes --------------------------------------------------------------------------------------------
    def write(self, db: Connection, counts: Counts, key: int, draw: int, ttl_ms: int) -> None:
        self.coverage.value("key_name", self.plan.key_classes[key])
        label_class, label, value = self.plan.content(key, draw)
        self.coverage.value("label", label_class)
        self.coverage.value("value", self.plan.value_classes[key])
        written = digest(label_bytes(label), value)
        sent = time.monotonic()
        try:
            version = self.table.db_write(db.get(), key, label, value)
        except OPERATION_ERRORS as exc:
            if "\x00" in label and not db.broken:  # PostgreSQL text holds no NUL: refused, by design
                counts.refused += 1
                self.coverage.op(generate.WRITE, NUL_IN_TEXT)
                return
            if db.broken:
                self.log.maybe(key, False, written, sent)
            self._failed(generate.WRITE, exc, db)
            return
        if version is None:  # acknowledged, yet nothing written: measured, the cause is for the observers
            self.errors.failed("a write returned no row: the server skipped it (the cause: what PostgreSQL showed)")
            self.coverage.op(generate.WRITE, error=True)
            return
        counts.writes += 1
        self.coverage.op(generate.WRITE)
        cache_shape = generate.INVALIDATE if self.mode == "cache_aside" else generate.WRITE_THROUGH
        self._cache_update(cache_shape, self.table.after_write, self.mode, key, version, label, value, ttl_ms)
        # The application's promise: once a write returns (commit + cache update), no read sees older data.
        self.log.record(key, Version(version, False, written, sent, time.monotonic()))
        self.history.append(Op(generate.WRITE.name, (key,), draw, ttl_ms))

    def delete(self, db: Connection, counts: Counts, key: int) -> None:
        sent = time.monotonic()
        try:
            version = self.table.db_delete(db.get(), key)
        except OPERATION_ERRORS as exc:
            if db.broken:
                self.log.maybe(key, True, b"", sent)
            self._failed(generate.DELETE, exc, db)
            return
        counts.deletes += 1
        self.coverage.op(generate.DELETE)
        if version is not None:
            self._cache_update(generate.INVALIDATE, self.table.after_delete, key, version)
            self.log.record(key, Version(version, True, b"", sent, time.monotonic()))
        self.history.append(Op(generate.DELETE.name, (key,)))

    def _cache_update(self, shape: generate.Shape, action: Callable[..., bool], *args: object) -> None:
        """The cache step after a committed write, retried (it is idempotent: version-guarded) because a lost
        invalidation leaves the cache stale until its TTL; every failed attempt is counted, a final failure
        never hides the write."""
        for pause in CACHE_UPDATE_RETRIES:
            try:
                action(*args)
            except OPERATION_ERRORS as exc:
                self.errors.failed(exc)
                if pause is None:
                    self.coverage.op(shape, error=True)
                    return
                time.sleep(pause)
            else:
                self.coverage.op(shape)
                self.errors.ok()
                return

    # -- bookkeeping ---------------------------------------------------------------------------------------
    def _done(self, shape: generate.Shape, op: Op) -> None:
        self.errors.ok()
        self.coverage.op(shape)
        self.history.append(op)

    def _failed(self, shape: generate.Shape, exc: BaseException, db: Connection) -> None:
        self.errors.failed(exc)
        self.coverage.op(shape, error=True)
        db.discard_if_broken()


def run_workers(
    executor: Executor, config: CacheConfig, connect: ConnectionFactory, seed: int
) -> tuple[Counts, float, list[str]]:
    """Readers and writers until the budget ends: (summed counts, elapsed seconds, crashes)."""
    budget = _Budget(int(config.max_ops or 1), float(config.max_seconds or 1))
    interval = int(config.writers or 1) / float(config.writes_per_second or 1)
    crashes: list[str] = []
    per_thread: list[Counts] = []
    threads = []
    for index in range(int(config.readers or 1)):
        counts = Counts()
        per_thread.append(counts)
        work = _reader(executor, connect, budget, counts, random.Random(f"{seed}:reader:{index}"), config)
        threads.append(threading.Thread(target=_guarded(work, crashes), name=f"cache-reader-{index}"))
    for index in range(int(config.writers or 1)):
        counts = Counts()
        per_thread.append(counts)
        work = _writer(executor, connect, budget, counts, random.Random(f"{seed}:writer:{index}"), interval)
        threads.append(threading.Thread(target=_guarded(work, crashes), name=f"cache-writer-{index}"))
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(float(config.max_seconds or 1) + 60)
    total = Counts()
    for counts in per_thread:
        total.add(counts)
    return total, time.monotonic() - started, crashes


def _reader(
    executor: Executor,
    connect: ConnectionFactory,
    budget: _Budget,
    counts: Counts,
    rng: random.Random,
    config: CacheConfig,
) -> Callable[[], None]:
    plan, keys = executor.plan, int(config.keys or 1)
    pick = plan.picker(rng, keys)
    most = max(2, min(int(config.multi_read_max or 2), keys))

    def run() -> None:
        db = Connection(connect)
        try:
            while budget.take():
                op = plan.read_op(rng)
                ttl_class, ttl_ms = plan.ttl(rng)
                executor.coverage.value("ttl", ttl_class)
                started = time.monotonic()
                if op == generate.MULTI_READ.name and keys > 1:
                    wanted = rng.randint(2, most)
                    chosen = tuple(dict.fromkeys(pick() for _ in range(wanted * 2)))[:wanted]
                    executor.multi_read(db, counts, chosen, ttl_ms)
                else:
                    executor.read(db, counts, pick(), ttl_ms, refresh=op == generate.REFRESH.name)
                counts.timed(op, started)
        finally:
            db.close()

    return run


def _writer(
    executor: Executor,
    connect: ConnectionFactory,
    budget: _Budget,
    counts: Counts,
    rng: random.Random,
    interval_s: float,
) -> Callable[[], None]:
    plan = executor.plan
    pick = plan.picker(rng, executor.table.keys)

    def run() -> None:
        db = Connection(connect)
        next_at = time.monotonic()
        try:
            while budget.take():
                key, op, started = pick(), plan.write_op(rng), time.monotonic()
                if op == generate.DELETE.name:
                    executor.delete(db, counts, key)
                else:
                    ttl_class, ttl_ms = plan.ttl(rng)
                    executor.coverage.value("ttl", ttl_class)
                    executor.write(db, counts, key, next(executor.draws), ttl_ms)
                counts.timed(op, started)
                next_at += interval_s
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(min(pause, max(0.0, budget.deadline - time.monotonic())))
        finally:
            db.close()

    return run


def _guarded(target: Callable[[], None], crashes: list[str]) -> Callable[[], None]:
    def run() -> None:
        try:
            target()
        except Exception as exc:  # a client library raising outside its error types: measured, named, never lost
            crashes.append(root_cause(exc).describe())

    return run
