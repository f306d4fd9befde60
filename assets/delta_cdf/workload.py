"""The write workload on delta-rs: seeded steps (change for the model + how to commit it), conflicts rerun.

Every commit carries a tag in its commit info (`regress.op`), so the model maps each version to the change
it made from the log itself, whatever order concurrent writers raced in. A conflict (`CommitFailedError`)
reruns the step on a fresh view of the table after a jittered backoff, up to `max_conflict_retries`; that
is measured, not an error (a conflict still unresolved after them is).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

from assets.delta_cdf.config import DeltaCdfConfig
from assets.delta_cdf.model import Change, Row, partition_of
from regression_pipelines.measure import ErrorTally

TAG = "regress.op"
# What delta-rs raises when a write fails (a conflict is a CommitFailedError, a DeltaError handled first).
OPERATION_ERRORS = (DeltaError, pa.ArrowException, OSError)

Commit = Callable[[DeltaTable | None, CommitProperties], object]  # None: the step creates the table


@dataclass(frozen=True)
class Step:
    """One commit to make: what it does to the rows (for the model) and how to commit it."""

    kind: str  # latency bucket: append, update, delete, merge, overwrite, schema, optimize, property, ...
    change: Change
    commit: Commit


@dataclass
class Outcome:
    tag: str
    step: Step
    writer: int
    latency_s: float = math.nan
    conflicts: int = 0
    error: str | None = None


@dataclass
class WorkloadLog:
    """What the writers did: outcomes in completion order, and the rows as the writers know them now."""

    outcomes: list[Outcome] = field(default_factory=list)
    state: dict[int, Row] = field(default_factory=dict)
    errors: ErrorTally = field(default_factory=ErrorTally)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)
            if outcome.error is None:
                self.state = outcome.step.change.apply(self.state)

    def by_tag(self) -> dict[str, Outcome]:
        return {o.tag: o for o in self.outcomes if o.error is None}


def arrow_rows(rows: list[Row] | tuple[Row, ...], with_note: bool) -> pa.Table:
    columns = {
        "id": pa.array([r[0] for r in rows], pa.int64()),
        "part": pa.array([r[1] for r in rows], pa.string()),
        "val": pa.array([r[2] for r in rows], pa.int64()),
    }
    if with_note:
        columns["note"] = pa.array([r[3] for r in rows], pa.string())
    return pa.table(columns)


def in_list(keys: tuple[int, ...]) -> str:
    return "id IN (" + ", ".join(str(k) for k in keys) + ")"


# --- how each kind of change is committed with delta-rs ----------------------------------------------------


def append_step(rows: tuple[Row, ...], with_note: bool, schema_change: bool = False) -> Step:
    data = arrow_rows(rows, with_note)

    def commit(dt: DeltaTable, props: CommitProperties) -> None:
        write_deltalake(
            dt, data, mode="append", schema_mode="merge" if schema_change else None, commit_properties=props
        )

    kind = "schema_append" if schema_change else "append"
    return Step("schema" if schema_change else "append", Change(kind, rows=rows), commit)


def create_step(uri: str, rows: tuple[Row, ...], config: DeltaCdfConfig) -> Step:
    """Version 0: the first rows, partitioned, with CDF on and a checkpoint every `checkpoint_interval`."""
    data = arrow_rows(rows, with_note=False)
    settings = {"delta.enableChangeDataFeed": "true", "delta.checkpointInterval": str(config.checkpoint_interval)}

    def commit(_: DeltaTable | None, props: CommitProperties) -> None:
        write_deltalake(uri, data, partition_by=["part"], configuration=settings, commit_properties=props)

    return Step("append", Change("append", rows=rows), commit)


def update_step(keys: tuple[int, ...], delta: int) -> Step:
    def commit(dt: DeltaTable, props: CommitProperties) -> dict:
        return dt.update(updates={"val": f"val + {delta}"}, predicate=in_list(keys), commit_properties=props)

    return Step("update", Change("update", keys=keys, delta=delta), commit)


def delete_step(keys: tuple[int, ...]) -> Step:
    def commit(dt: DeltaTable, props: CommitProperties) -> dict:
        return dt.delete(predicate=in_list(keys), commit_properties=props)

    return Step("delete", Change("delete", keys=keys), commit)


def merge_step(rows: tuple[Row, ...], with_note: bool) -> Step:
    data = arrow_rows(rows, with_note)

    def commit(dt: DeltaTable, props: CommitProperties) -> dict:
        merger = dt.merge(data, "t.id = s.id", source_alias="s", target_alias="t", commit_properties=props)
        return merger.when_matched_update_all().when_not_matched_insert_all().execute()

    return Step("merge", Change("merge", rows=rows), commit)


def overwrite_partition_step(part: str, rows: tuple[Row, ...], with_note: bool) -> Step:
    data = arrow_rows(rows, with_note)

    def commit(dt: DeltaTable, props: CommitProperties) -> None:
        write_deltalake(dt, data, mode="overwrite", predicate=f"part = '{part}'", commit_properties=props)

    return Step("overwrite", Change("overwrite_partition", rows=rows, part=part), commit)


def optimize_step() -> Step:
    def commit(dt: DeltaTable, props: CommitProperties) -> dict:
        return dt.optimize.compact(commit_properties=props)

    return Step("optimize", Change("neutral", label="OPTIMIZE"), commit)


def cdf_property_step(enabled: bool) -> Step:
    def commit(dt: DeltaTable, props: CommitProperties) -> None:
        dt.alter.set_table_properties({"delta.enableChangeDataFeed": str(enabled).lower()}, commit_properties=props)

    return Step("property", Change("neutral", label=f"CDF {'on' if enabled else 'off'}"), commit)


# --- planning: seeded changes on the keys a writer owns ----------------------------------------------------


class Planner:
    """Seeded changes for one writer, on keys it owns (key % stride == offset), so writers never overlap."""

    def __init__(self, config: DeltaCdfConfig, offset: int, stride: int, state: dict[int, Row], seed: int) -> None:
        self.config, self.offset, self.stride = config, offset, stride
        self.rng = random.Random(seed)
        self.keys = sorted(k for k in state if k % stride == offset)
        top = max(state, default=-1)
        self.next_key = top + 1 + ((offset - top - 1) % stride)  # first unused key this writer owns
        self.with_note = False

    def fresh(self, n: int, part: str | None = None) -> tuple[Row, ...]:
        rows = []
        while len(rows) < n:
            key, self.next_key = self.next_key, self.next_key + self.stride
            if part is None or partition_of(key, self.config.partitions) == part:
                rows.append(self.row(key))
        return tuple(rows)

    def row(self, key: int) -> Row:
        note = self.rng.choice([None, "a", "b", "é"]) if self.with_note else None
        return (key, partition_of(key, self.config.partitions), self.rng.randint(0, 10_000), note)

    def existing(self, n: int) -> tuple[int, ...]:
        return tuple(sorted(self.rng.sample(self.keys, min(n, len(self.keys)))))

    def step(self, kind: str) -> Step:
        c = self.config
        if kind in ("update", "delete", "merge") and not self.keys:
            kind = "append"
        if kind == "append":
            rows = self.fresh(c.rows_per_commit)
            self.keys += [r[0] for r in rows]
            return append_step(rows, self.with_note)
        if kind == "schema":
            self.with_note = True
            rows = self.fresh(c.rows_per_commit)
            self.keys += [r[0] for r in rows]
            return append_step(rows, True, schema_change=True)
        if kind == "update":
            return update_step(self.existing(c.keys_per_change), self.rng.randint(1, 9))
        if kind == "delete":
            keys = self.existing(c.keys_per_change)
            self.keys = [k for k in self.keys if k not in set(keys)]
            return delete_step(keys)
        if kind == "merge":
            old = [self.row(k) for k in self.existing(c.rows_per_commit // 2)]
            new = self.fresh(c.rows_per_commit - len(old))
            self.keys += [r[0] for r in new]
            return merge_step(tuple(old) + new, self.with_note)
        if kind == "overwrite":
            part = partition_of(self.rng.randrange(c.partitions), c.partitions)
            rows = self.fresh(c.rows_per_commit, part)
            gone = {k for k in self.keys if partition_of(k, c.partitions) == part}
            self.keys = [k for k in self.keys if k not in gone] + [r[0] for r in rows]
            return overwrite_partition_step(part, rows, self.with_note)
        raise ValueError(f"unknown step kind {kind!r}")


SERIAL_KINDS = ("append", "update", "delete", "merge", "overwrite")
CONCURRENT_KINDS = ("append", "update", "delete", "merge")


def serial_kinds(count: int, rng: random.Random) -> list[str]:
    """Every serial kind at least once (shuffled rounds), the schema change half way."""
    kinds: list[str] = []
    while len(kinds) < count - 1:
        round_ = list(SERIAL_KINDS)
        rng.shuffle(round_)
        kinds += round_
    kinds = kinds[: count - 1]
    kinds.insert((count - 1) // 2, "schema")
    return kinds


# --- running steps -----------------------------------------------------------------------------------------


class Writer:
    """One writer: its own DeltaTable handle, caught up before every attempt; conflicts rerun the step."""

    def __init__(self, uri: str, index: int, log: WorkloadLog, max_retries: int) -> None:
        self.uri, self.index, self.log, self.max_retries = uri, index, log, max_retries
        self.table: DeltaTable | None = None
        self.count = 0
        self.backoff = random.Random(index)

    def run(self, step: Step, creates_table: bool = False) -> Outcome:
        self.count += 1
        outcome = Outcome(tag=f"w{self.index}-{self.count}", step=step, writer=self.index)
        props = CommitProperties(custom_metadata={TAG: outcome.tag})
        while True:
            try:
                table = None if creates_table else self._fresh_table()
                started = time.perf_counter()
                step.commit(table, props)
                outcome.latency_s = time.perf_counter() - started
            except CommitFailedError as exc:
                outcome.conflicts += 1
                self.table = None
                if outcome.conflicts > self.max_retries:
                    outcome.error = f"conflict not resolved after {self.max_retries} reruns: {_first_line(exc)}"
                    break
                time.sleep(self.backoff.uniform(0, 0.004 * 2 ** min(outcome.conflicts, 6)))  # no lock-step reruns
                continue
            except OPERATION_ERRORS as exc:
                outcome.error = _first_line(exc)
                self.table = None
            break
        if outcome.error is None:
            self.log.errors.ok()
        else:
            self.log.errors.failed(f"{step.kind}: {outcome.error}")
        self.log.record(outcome)
        return outcome

    def _fresh_table(self) -> DeltaTable:
        if self.table is None:
            self.table = DeltaTable(self.uri)
        else:
            self.table.update_incremental()
        return self.table


def run_concurrently(
    uri: str, planners: list[Planner], commits_each: int, log: WorkloadLog, config: DeltaCdfConfig, deadline: float
) -> float:
    """Each planner drives its own writer thread; returns the elapsed seconds."""
    crashes: list[str] = []

    def drive(index: int, planner: Planner) -> None:
        writer = Writer(uri, index, log, config.max_conflict_retries)
        try:
            for _ in range(commits_each):
                if time.monotonic() >= deadline:
                    return
                writer.run(planner.step(planner.rng.choice(CONCURRENT_KINDS)))
        except Exception as exc:  # a harness bug must surface, never vanish in a thread
            crashes.append(f"writer {index}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=drive, args=(i + 1, p)) for i, p in enumerate(planners)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(1.0, deadline - time.monotonic()) + 60)
    if crashes:
        raise RuntimeError(crashes[0])
    return time.perf_counter() - started


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else '(no message)'}"[:300]
