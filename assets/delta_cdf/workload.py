"""The write workload on delta-rs: seeded operations that search (adversarial values, every MERGE shape, large
matched sets, concurrent writers of every kind), conflicts rerun, everything measured.

Every commit carries a tag in its commit info (`regress.op`), so the model maps each version to the op that made
it from the log itself, whatever order concurrent writers raced in. A conflict (`CommitFailedError`) reruns the
op on a fresh view of the table after a jittered backoff, up to `max_conflict_retries`; that is measured, not an
error (a conflict still unresolved after them is). Any other failure of an engine call, a Rust panic included
(pyo3's PanicException is a BaseException), is measured as that op's error: the run goes on.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError

from assets.delta_cdf.config import DeltaCdfConfig
from assets.delta_cdf.model import MergeClauses, Row, micros, partition_value
from assets.delta_cdf.ops import TAG, Op
from regression_pipelines.kit.generate import INT64, NUMERIC, TEXT, TIMESTAMP, Coverage, Domain, Shape, ValueClass
from regression_pipelines.kit.generate.values import skewed_key
from regression_pipelines.kit.supervisor import NEVER_CAUGHT
from regression_pipelines.measure import ErrorTally, describe_error

CONFLICT = "conflict"
SHAPES = (
    Shape("create", "write"),
    Shape("append", "write", frozenset({CONFLICT})),
    Shape("schema_append", "schema"),
    Shape("update", "update", frozenset({CONFLICT})),
    Shape("delete", "delete", frozenset({CONFLICT})),
    Shape("merge", "merge", frozenset({CONFLICT})),
    Shape("merge_clauses", "merge", frozenset({CONFLICT})),
    Shape("merge_large", "merge", frozenset({CONFLICT})),
    Shape("merge_schema", "schema"),
    Shape("overwrite", "overwrite", frozenset({CONFLICT})),
    Shape("optimize", "optimize", frozenset({CONFLICT})),
)
SERIAL_KINDS = ("append", "update", "delete", "merge", "merge_clauses", "overwrite")
CONCURRENT_KINDS = ("append", "update", "delete", "merge", "merge_clauses", "overwrite", "optimize")
SAFE_PATH = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
VAL_RANGE = 10_000  # val is updated by arithmetic: kept far from int64's edges (delta-rs wraps on overflow)

PARTITION_TEXT = Domain(
    "partition",
    (
        *TEXT.without("long", "nul").classes,
        ValueClass("null", lambda r: None),
        ValueClass("long_name", lambda r: "L" * r.choice([64, 120, 200])),  # a path component holds 255 bytes
    ),
)


PLAIN_INT, PLAIN_NUMERIC, PLAIN_TIMESTAMP = INT64.only("small"), NUMERIC.only("money"), TIMESTAMP.only("recent")


def needs_encoding(value: str | None) -> bool:
    """A partition value whose folder name must be URL-encoded in the log's paths."""
    return value is not None and any(c not in SAFE_PATH for c in value)


def partition_values(config: DeltaCdfConfig, rng: random.Random, coverage: Coverage, avoid: bool) -> list[str | None]:
    """The run's partition values: p0..pN, or distinct values drawn from the adversarial text domain (each
    class at least once when there are enough partitions); `avoid` leaves out values that need URL encoding."""
    if config.partition_values == "plain":
        return [f"p{i}" for i in range(config.partitions)]
    domain = PARTITION_TEXT
    values: list[str | None] = []
    classes = list(domain.classes)
    rng.shuffle(classes)
    attempts = 0
    while len(values) < config.partitions and attempts < 50 * config.partitions:
        attempts += 1
        value_class = classes[len(values) % len(classes)] if attempts <= len(classes) else rng.choice(classes)
        value = partition_value(value_class.draw(rng))
        if value in values or (avoid and needs_encoding(value)):
            continue
        coverage.value("partition", value_class.name)
        values.append(value)
    while len(values) < config.partitions:  # very few classes left after avoiding: fill with plain names
        values.append(f"p{len(values)}")
        coverage.value("partition", "plain")
    return values


@dataclass
class Outcome:
    tag: str
    op: Op
    writer: int
    latency_s: float = math.nan
    conflicts: int = 0
    error: str | None = None
    panicked: bool = False
    metrics: dict | None = None  # what the engine returned (UPDATE/DELETE/MERGE/OPTIMIZE metrics), if anything

    def expects_commit(self) -> bool:
        """Did the op change anything, so a commit must be in the log? delta-rs writes no commit for an UPDATE,
        DELETE, MERGE or OPTIMIZE that its own metrics say changed nothing."""
        if self.error is not None:
            return False
        if not isinstance(self.metrics, dict):
            return True
        return any(int(self.metrics.get(k) or 0) for k in CHANGE_METRICS)


CHANGE_METRICS = (
    "num_updated_rows",
    "num_deleted_rows",
    "num_added_files",
    "num_removed_files",
    "num_target_rows_inserted",
    "num_target_rows_updated",
    "num_target_rows_deleted",
    "numFilesAdded",
    "numFilesRemoved",
)


@dataclass
class WorkloadLog:
    """What the writers did: outcomes in completion order, the rows as the writers know them, and coverage."""

    outcomes: list[Outcome] = field(default_factory=list)
    errors: ErrorTally = field(default_factory=ErrorTally)
    coverage: Coverage = field(default_factory=Coverage)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.coverage.declare(
            SHAPES,
            {
                "partition": PARTITION_TEXT.class_names,
                "note": TEXT.class_names,
                "int64": INT64.class_names,
                "numeric": NUMERIC.class_names,
                "timestamp": TIMESTAMP.class_names,
            },
        )

    def record(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)

    def by_tag(self) -> dict[str, Outcome]:
        return {o.tag: o for o in self.outcomes if o.error is None}


# --- planning: seeded ops on the keys a writer owns ------------------------------------------------------------


class Planner:
    """Seeded ops for one writer. Fresh keys are its own (key % stride == offset); it updates, deletes and
    merges the keys it knows, and partition-wide ops (overwrite, MERGE's not-matched-by-source) touch every
    writer's rows in that partition: the model orders them by commit version."""

    def __init__(
        self,
        config: DeltaCdfConfig,
        offset: int,
        stride: int,
        known: dict[int, str | None],
        seed: int,
        parts: Sequence[str | None],
        coverage: Coverage,
    ) -> None:
        self.config, self.offset, self.stride, self.parts, self.coverage = config, offset, stride, parts, coverage
        self.rng = random.Random(seed)
        self.keys: dict[int, str | None] = {k: p for k, p in known.items() if k % stride == offset}
        top = max(known, default=-1)
        self.next_key = top + 1 + ((offset - top - 1) % stride)  # first unused key this writer owns
        self.with_note = False

    def fresh(self, n: int, part: str | None | object = ...) -> tuple[Row, ...]:
        rows = []
        for _ in range(n):
            key, self.next_key = self.next_key, self.next_key + self.stride
            rows.append(self.row(key, skewed_key(self.rng, self.parts) if part is ... else part))  # type: ignore[arg-type]
        self.keys.update((r[0], r[1]) for r in rows)
        return tuple(rows)

    def row(self, key: int, part: str | None) -> Row:
        sink = self.coverage
        plain = self.config.numerics == "plain"
        big = (PLAIN_INT if plain else INT64).draw(self.rng, sink)
        amount = Decimal((PLAIN_NUMERIC if plain else NUMERIC).draw(self.rng, sink)).quantize(Decimal("0.000000001"))
        ts = micros((PLAIN_TIMESTAMP if plain else TIMESTAMP).draw(self.rng, sink))
        note = TEXT.draw(self.rng, sink) if self.with_note else None
        return (key, part, self.rng.randint(-VAL_RANGE, VAL_RANGE), big, amount, ts, note)

    def existing(self, n: int) -> tuple[int, ...]:
        return tuple(sorted(self.rng.sample(sorted(self.keys), min(n, len(self.keys)))))

    def forget(self, keys: Sequence[int]) -> None:
        for key in keys:
            self.keys.pop(key, None)

    def op(self, kind: str) -> Op:
        c = self.config
        if kind in ("update", "delete", "merge", "merge_clauses", "merge_large") and not self.keys:
            kind = "append"
        if kind == "append":
            return Op("append", rows=self.fresh(c.rows_per_commit), with_note=self.with_note)
        if kind == "schema":
            return self._schema_change()
        if kind == "update":
            return Op("update", keys=self.existing(c.keys_per_change), delta=self.rng.randint(1, 9))
        if kind == "delete":
            keys = self.existing(c.keys_per_change)
            self.forget(keys)
            return Op("delete", keys=keys)
        if kind == "merge":
            old = self._renewed(self.existing(c.rows_per_commit // 2))
            return Op("merge", rows=old + self.fresh(c.rows_per_commit - len(old)), with_note=self.with_note)
        if kind == "merge_large":
            old = self._renewed(self.existing(self.config.merge_matched_rows))
            return Op("merge_large", rows=old + self.fresh(max(1, c.rows_per_commit // 10)), with_note=self.with_note)
        if kind == "merge_clauses":
            return self._merge_clauses()
        if kind == "overwrite":
            part = self.rng.choice(list(self.parts))
            self.forget([k for k, p in self.keys.items() if p == part])
            return Op("overwrite", rows=self.fresh(c.rows_per_commit, part), part=part, with_note=self.with_note)
        if kind == "optimize":
            return Op("optimize")
        raise ValueError(f"unknown op kind {kind!r}")

    def _renewed(self, keys: Sequence[int]) -> tuple[Row, ...]:
        """Source rows for existing keys: same key and partition, new data."""
        return tuple(self.row(k, self.keys[k]) for k in keys)

    def _merge_clauses(self) -> Op:
        """Matched update + matched delete + not-matched insert + not-matched-by-source on one partition."""
        c = self.config
        old = self._renewed(self.existing(max(2, c.rows_per_commit // 2)))
        new = self.fresh(max(1, c.rows_per_commit - len(old)))
        ops = tuple(self.rng.choice("UUD") for _ in old) + tuple(self.rng.choice("UUUD") for _ in new)
        rows = old + new
        self.forget([r[0] for r, op in zip(rows, ops, strict=True) if op == "D"])
        by_source = self.rng.choice(("delete", "update", "none"))
        part = self.rng.choice(list(self.parts))
        if by_source == "delete":
            matched = {r[0] for r in rows}
            self.forget([k for k, p in self.keys.items() if p == part and k not in matched])
        return Op("merge_clauses", rows=rows, clauses=MergeClauses(ops, by_source, part), with_note=self.with_note)

    def _schema_change(self) -> Op:
        """The `note` column arrives mid-run: through an append with schema merging, or a MERGE that evolves it."""
        self.with_note = True
        if self.keys and self.rng.random() < 0.5:
            old = self._renewed(self.existing(self.config.rows_per_commit // 2))
            return Op("merge_schema", rows=old + self.fresh(self.config.rows_per_commit // 2 or 1), with_note=True)
        return Op("schema_append", rows=self.fresh(self.config.rows_per_commit), with_note=True)


def serial_kinds(count: int, rng: random.Random, large_merges: int) -> list[str]:
    """Every serial kind at least once (shuffled rounds), the schema change half way, large merges spread out
    from the first op on (a MERGE past 8,192 rows needs the initial files whole)."""
    kinds: list[str] = []
    while len(kinds) < count - 1:
        round_ = list(SERIAL_KINDS)
        rng.shuffle(round_)
        kinds += round_
    kinds = kinds[: count - 1]
    kinds.insert((count - 1) // 2, "schema")
    for index in range(large_merges):  # the first before any overwrite can shrink the big initial files
        kinds.insert(index * len(kinds) // large_merges + index, "merge_large")
    return kinds


# --- running ops ---------------------------------------------------------------------------------------------


class Writer:
    """One writer: its own DeltaTable handle, caught up before every attempt; conflicts rerun the op."""

    def __init__(self, uri: str, index: int, log: WorkloadLog, max_retries: int) -> None:
        self.uri, self.index, self.log, self.max_retries = uri, index, log, max_retries
        self.table: DeltaTable | None = None
        self.count = 0
        self.backoff = random.Random(index)

    def run(self, op: Op) -> Outcome:
        self.count += 1
        outcome = Outcome(tag=f"w{self.index}-{self.count}", op=op, writer=self.index)
        props = CommitProperties(custom_metadata={TAG: outcome.tag})
        while True:
            try:
                table = None if op.kind == "create" else self._fresh_table()
                started = time.perf_counter()
                returned = op.commit(self.uri, table, props)
                outcome.metrics = returned if isinstance(returned, dict) else None
                outcome.latency_s = time.perf_counter() - started
            except CommitFailedError as exc:
                outcome.conflicts += 1
                self.log.coverage.op(op.kind, refusal=CONFLICT)
                self.table = None
                if outcome.conflicts > self.max_retries:
                    outcome.error = f"conflict not resolved after {self.max_retries} reruns: {first_line(exc)}"
                    break
                time.sleep(self.backoff.uniform(0, 0.004 * 2 ** min(outcome.conflicts, 6)))  # no lock-step reruns
                continue
            except BaseException as exc:  # any engine failure, a Rust panic included, is this op's error
                if isinstance(exc, NEVER_CAUGHT):
                    raise
                outcome.error, outcome.panicked = first_line(exc), is_panic(exc)
                self.table = None
            break
        self._account(outcome)
        return outcome

    def _account(self, outcome: Outcome) -> None:
        op = outcome.op
        if outcome.error is None:
            self.log.errors.ok()
            self.log.coverage.op(op.kind)
        else:
            self.log.errors.failed(f"{op.kind}: {outcome.error}")
            if not outcome.error.startswith("conflict"):
                self.log.coverage.op(op.kind, refusal=outcome.error.split(":")[0], error=outcome.panicked)
        self.log.record(outcome)

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
                writer.run(planner.op(planner.rng.choice(CONCURRENT_KINDS)))
        except BaseException as exc:  # a harness bug must surface, never vanish in a thread
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


def is_panic(exc: BaseException) -> bool:
    """pyo3 turns a Rust panic into PanicException (a BaseException subclass, so `except Exception` misses it)."""
    return type(exc).__name__ == "PanicException"


def first_line(exc: BaseException) -> str:
    """Class, first line and chained causes: delta-rs says "Generic LocalFileSystem error" and the cause below."""
    return describe_error(exc)[:300]
