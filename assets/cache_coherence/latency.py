"""Read latency of the cache and the database, measured in a phase of its own right after the workload.

During the workload every reader also does the oracle's bookkeeping (commit log, staleness, fills), and on 2
cores that Python, queued on the GIL, sat inside every timed call: cache reads came out 3-5x redis-benchmark's
p50 even with lean clients, 10-14x with redis-py (benchmarks/fidelity/RESULTS.md). Here the readers' threads
do nothing but timed calls, at the readers' concurrency, with a skew over the table's latency rows: rows and
entries of a small fixed size that the workload never writes, warmed up first (`warm_up`), so the figures stay
comparable run to run whatever values the run generated, and match what redis-benchmark and pgbench read.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from assets.cache_coherence.store import OPERATION_ERRORS, CachedTable
from regression_pipelines.measure import PhaseErrors
from regression_pipelines.timed_calls import TimedRedis

CALLS_PER_THREAD = 50_000  # a bound besides the time (a thread manages ~10-25k calls per second here)


@dataclass
class ReadLatency:
    """Milliseconds per GET (hit or miss) and per point SELECT."""

    cache_ms: list[float] = field(default_factory=list)
    db_ms: list[float] = field(default_factory=list)


def warm_up(table: CachedTable, errors: PhaseErrors) -> int:
    """Cache every latency row (one pipeline of SETs with the longest TTL); returns how many were cached."""
    entry = table.latency_entry().encode()
    pipe = table.cache.pipeline(transaction=False)
    for key in table.latency_ids:
        pipe.set(table.cache_key(key), entry, px=int(table.config.ttl_seconds * 1000))
    try:
        done = sum(1 for ok in pipe.execute(raise_on_error=False) if ok is True)
    except OPERATION_ERRORS as exc:
        errors.failed(exc, len(table.latency_ids))
        return 0
    failed = len(table.latency_ids) - done
    if failed:
        errors.failed(f"{failed} latency entries not cached", failed)
    errors.ok(done)
    return done


def skewed_sequence(ids: range) -> Callable[[int, int], list[int]]:
    """`(seed, count)` -> `count` ids of `ids` with a Zipf-like skew, drawn in one call."""
    cum = _skew(len(ids))
    return lambda seed, count: random.Random(seed).choices(ids, cum_weights=cum, k=count)


def _skew(n: int) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank + 1) ** 0.9 for rank in range(n)))


def measure(
    table: CachedTable,
    connect: Callable[[], psycopg.Connection],
    keys: Callable[[int, int], list[int]],
    threads: int,
    seconds: float,
    errors: PhaseErrors,
) -> ReadLatency:
    """`threads` threads, each timing GETs for half of `seconds`, then point SELECTs for the other half.

    `keys(seed, count)` gives a thread's key sequence (the workload's skew). A failed call is counted in `errors` and
    ends that thread's phase (the workload already measured how the servers behave under errors)."""
    found = ReadLatency()
    start = threading.Barrier(threads)
    workers = [
        threading.Thread(
            target=_thread, args=(table, connect, keys(seed, CALLS_PER_THREAD), start, seconds / 2, found, errors)
        )
        for seed in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + 30)
    return found


def _thread(
    table: CachedTable,
    connect: Callable[[], psycopg.Connection],
    keys: list[int],
    start: threading.Barrier,
    half_s: float,
    found: ReadLatency,
    errors: PhaseErrors,
) -> None:
    gets = [table.packed_get(key) for key in keys]
    cache_ns: list[int] = []
    db_ns: list[int] = []
    cache, conn = None, None
    try:
        cache = TimedRedis.like(table.cache)
        conn = connect()
        query = table.db_read_query(conn)
        start.wait(30)
        deadline = time.monotonic() + half_s
        for get in gets:
            if time.monotonic() >= deadline:
                break
            cache_ns.append(cache.call(get)[1])
        start.wait(30)  # both halves start together: the concurrency stays the readers'
        deadline = time.monotonic() + half_s
        for key in keys:
            if time.monotonic() >= deadline:
                break
            db_ns.append(query.run(key)[1])
    except threading.BrokenBarrierError:
        pass  # another thread failed first; its error is counted
    except OPERATION_ERRORS as exc:
        errors.failed(exc)
        start.abort()
    finally:
        if cache is not None:
            cache.close()
        if conn is not None:
            conn.close()
        errors.ok(len(cache_ns) + len(db_ns))
        found.cache_ms.extend(ns / 1e6 for ns in cache_ns)  # list.extend holds the GIL: safe across threads
        found.db_ms.extend(ns / 1e6 for ns in db_ns)
