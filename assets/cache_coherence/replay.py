"""Shrink a failed check to the fewest recorded operations that still show it, replayed on fresh state.

The workload's history (operations in the order they completed) is replayed one operation at a time on a new
table and key prefix seeded with the same initial rows, with the same mode and fault; the kit's ddmin keeps the
target (the first stale read, the last operation on a divergent key, the first read of foreign bytes, the last
cache write of a key without a TTL) and reduces what came before it. Operations on other keys are dropped first
(the oracles judge keys one by one). A failure that needs concurrency or time to pass (a delayed invalidation, a
read after a sub-second expiry, a nemesis) may not come back in a sequential replay: the case then says so.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from assets.cache_coherence import generate
from assets.cache_coherence.config import CacheConfig
from assets.cache_coherence.generate import Plan
from assets.cache_coherence.oracle import CommitLog, ExpiryLedger
from assets.cache_coherence.store import CachedTable
from assets.cache_coherence.workload import Connection, ConnectionFactory, Counts, Executor, Op
from regression_pipelines.kit.generate import Coverage, ddmin
from regression_pipelines.measure import ErrorTally

STALE, DIVERGENT, VALUES, TTL = "stale_read_rate_within_bound", "no_divergence_after_settle", "values_intact", "ttl"


@dataclass(frozen=True)
class Target:
    """What to shrink: the check, the key it failed on, and the index of the operation that showed it."""

    check: str
    key: int
    index: int


@dataclass(frozen=True)
class Shrunk:
    check: str
    mode: str
    ops: list[Op]
    reproduced: bool
    complete: bool
    tests: int
    path: Path | None

    def describe(self) -> str:
        if not self.reproduced:
            return f"not reproduced by a sequential replay of the key's {len(self.ops)} operations ({self.tests} tries)"
        where = f", written to {self.path.name}" if self.path else ""
        state = "" if self.complete else " (time bound reached: not 1-minimal)"
        return f"shrunk to {len(self.ops)} operations in {self.tests} replays{state}{where}"


class Replayer:
    """Replays candidate operation lists on fresh tables of their own (dropped after each replay)."""

    def __init__(
        self,
        mode: str,
        config: CacheConfig,
        plan: Plan,
        connect: ConnectionFactory,
        cache: redis.Redis,
        deadline: float,
    ) -> None:
        self.mode, self.config, self.plan = mode, config, plan
        self.connect, self.cache, self.deadline = connect, cache, deadline

    def shows(self, check: str, key: int, ops: Sequence[Op]) -> bool | None:
        """Whether `ops`, replayed alone on fresh state, still fail `check` on `key`; None when out of time."""
        if time.monotonic() >= self.deadline:
            return None
        table = CachedTable(f"r{uuid.uuid4().hex[:11]}", self.config, self.plan, self.cache, latency_keys=0)
        touched = sorted({k for op in ops for k in op.keys} | {key})
        table.ledger = ExpiryLedger()
        log = CommitLog(table.keys)
        for k in touched:
            _, label, value = self.plan.content(k, 0)
            log.initial(k, generate.digest(generate.label_bytes(label), value))
        errors = ErrorTally().at("replay")
        executor = Executor(self.mode, table, log, table.ledger, Coverage(), errors)
        counts = Counts()
        with self.connect() as admin:
            table.create(admin, touched)
            db = Connection(self.connect)
            try:
                for op in ops:
                    _apply(executor, db, counts, op)
                table.wait_for_pending(self.config.delay_invalidation_ms / 1000 + 5)
                return _still_fails(check, key, table, log, counts, admin)
            finally:
                db.close()
                table.drop(admin)
                table.remove_keys()


def _apply(executor: Executor, db: Connection, counts: Counts, op: Op) -> None:
    if op.kind == generate.WRITE.name:
        executor.write(db, counts, op.keys[0], op.draw, op.ttl_ms)
    elif op.kind == generate.DELETE.name:
        executor.delete(db, counts, op.keys[0])
    elif op.kind == generate.MULTI_READ.name:
        executor.multi_read(db, counts, op.keys, op.ttl_ms)
    else:
        executor.read(db, counts, op.keys[0], op.ttl_ms, refresh=op.kind == generate.REFRESH.name)


def _still_fails(check: str, key: int, table: CachedTable, log: CommitLog, counts: Counts, admin: object) -> bool:
    if check == STALE:
        return counts.stale_reads > 0
    if check == VALUES:
        return bool(log.finish())
    if check == DIVERGENT:
        versions = table.db_versions(admin)  # type: ignore[arg-type]
        entry = table.get(key)
        if entry is None or entry.tombstone:
            return False
        return versions.get(key) != entry.version
    if check == TTL:
        pttl = table.cache.pttl(table.cache_key(key))
        return pttl == -1 or pttl > int(table.config.ttl_seconds * 1000)
    return False


def shrink(
    target: Target,
    history: Sequence[Op],
    replayer: Replayer,
    budget: int = 400,
) -> tuple[list[Op], bool, bool, int]:
    """(ops, reproduced, complete, replays): ddmin over the target key's operations before the target."""
    relevant = [op for op in history[: target.index] if target.key in op.keys]
    target_op = history[target.index]

    def shows(candidate: list[Op]) -> bool | None:
        return replayer.shows(target.check, target.key, candidate)

    found = ddmin(relevant, target_op, shows, budget)
    steps, tests = found.steps, found.tests
    if found.reproduced:
        steps, tests = _narrow(steps, target.key, shows, tests, budget)
    return steps, found.reproduced, found.complete, tests


def _narrow(
    steps: list[Op], key: int, shows: Callable[[list[Op]], bool | None], tests: int, budget: int
) -> tuple[list[Op], int]:
    """Multi-key reads cut down to the target key where the failure still shows (a shorter case to read)."""
    for index, op in enumerate(steps):
        if len(op.keys) < 2 or tests >= budget:
            continue
        candidate = [*steps[:index], op._replace(keys=(key,)), *steps[index + 1 :]]
        tests += 1
        if shows(candidate):
            steps = candidate
    return steps, tests


def write_case(
    output_dir: Path, mode: str, check: str, config: CacheConfig, plan: Plan, ops: Sequence[Op], outcome: dict
) -> Path:
    """The shrunk case next to the run: settings, seed, the plan and the operations in words and as data."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"cache_coherence_{mode}_{check}_shrunk.json"
    case = {
        "check": check,
        "mode": mode,
        "fault": config.fault,
        "profile": config.profile,
        "plan": plan.describe(),
        **outcome,
        "operations": [op.describe(plan) for op in ops],
        "replay": [list(op) for op in ops],
        "how_to_replay": "run cache_coherence with the same seed and settings; or Replayer.shows(check, key, ops)",
    }
    path.write_text(json.dumps(case, indent=2, default=str))
    return path


Shrinker = Callable[[Target], Shrunk]
