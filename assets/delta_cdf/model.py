"""The workload's own model of the table: the exact rows after every version, so every check has an answer.

A change is the logical operation a commit carries (append, update by key, delete by key, a MERGE with its
clauses, partition overwrite, data-neutral), each a function of the rows before it. Applied in commit-version
order they give the table's true state, whatever order concurrent writers raced in: the table is created with
`delta.isolationLevel=Serializable`, under which the commit order is the serial order (a writer whose work was
invalidated must conflict and rerun). Two more kinds come from the log, not the workload: `outside` (a commit
this workload did not make; its effect is what the table showed at that version) and `unknown` (a version
whose commit file is gone; the model cannot say what it did, so it is uncertain from there on).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

COLUMNS = ("id", "part", "val", "big", "amount", "ts", "note")
DATA_COLUMNS = ("val", "big", "amount", "ts", "note")  # what a MERGE update sets from its source
# id, partition value (None = null), val (updated by arithmetic), big (int64 edges), amount (decimal(38, 9)),
# ts (microseconds since the epoch, UTC), note (added by a schema change mid-run).
Row = tuple[int, str | None, int, int | None, Decimal | None, int | None, str | None]
State = Mapping[int, Row]

KINDS = ("append", "update", "delete", "merge", "overwrite_partition", "schema_append", "neutral", "outside", "unknown")
# Commits the model says change no rows (OPTIMIZE, property changes): they must add no change rows.
NEUTRAL = "neutral"
NOT_MATCHED_BY_SOURCE = ("none", "delete", "update")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def partition_value(value: str | None) -> str | None:
    """Delta stores partition values as strings with null for null; an empty string reads back as null (Hive's
    convention, which delta-rs and Spark follow), so the model spells it that way."""
    return None if value == "" else value


@dataclass(frozen=True)
class MergeClauses:
    """A MERGE's clauses. Source rows carry an op: 'U' updates a matched row (every data column from the source)
    or is inserted when not matched; 'D' deletes a matched row and is ignored when not matched. Target rows in
    partition `by_source_part` that no source row matched are deleted or get val + 1 (`by_source`)."""

    ops: tuple[str, ...] = ()  # one per source row; empty: every row 'U' (a plain upsert)
    by_source: str = "none"
    by_source_part: str | None = None

    def op(self, index: int) -> str:
        return self.ops[index] if self.ops else "U"


@dataclass(frozen=True)
class Change:
    """One commit's logical effect. `rows` for append/merge/overwrite/outside, `keys` + `delta` for update/delete."""

    kind: str
    rows: tuple[Row, ...] = ()
    keys: tuple[int, ...] = ()
    delta: int = 0
    part: str | None = None
    label: str = ""  # what made it (e.g. "optimize", "cdf off", "outside: WRITE by Apache-Spark"), for details
    clauses: MergeClauses = field(default_factory=MergeClauses)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown change kind {self.kind!r}")

    def apply(self, state: State) -> dict[int, Row]:
        rows = dict(state)
        if self.kind in ("append", "schema_append"):
            rows.update((row[0], row) for row in self.rows)
        elif self.kind == "merge":
            rows = self._merge(rows)
        elif self.kind == "update":
            for key in self.keys:
                if key in rows:
                    row = rows[key]
                    rows[key] = (row[0], row[1], row[2] + self.delta, *row[3:])
        elif self.kind == "delete":
            for key in self.keys:
                rows.pop(key, None)
        elif self.kind == "overwrite_partition":
            rows = {k: r for k, r in rows.items() if r[1] != self.part}
            rows.update((row[0], row) for row in self.rows)
        elif self.kind == "outside":
            rows = {row[0]: row for row in self.rows}
        return rows

    def _merge(self, rows: dict[int, Row]) -> dict[int, Row]:
        before = set(rows)  # not-matched-by-source is about target rows from before the MERGE only
        matched = set()
        for index, source in enumerate(self.rows):
            key, op = source[0], self.clauses.op(index)
            if key in rows:
                matched.add(key)
                if op == "U":
                    target = rows[key]
                    rows[key] = (key, target[1], *source[2:])  # the target keeps its partition
                else:
                    del rows[key]
            elif op == "U":
                rows[key] = source
        if self.clauses.by_source != "none":
            part = self.clauses.by_source_part
            for key in [k for k, r in rows.items() if r[1] == part and k in before and k not in matched]:
                if self.clauses.by_source == "delete":
                    del rows[key]
                else:
                    row = rows[key]
                    rows[key] = (row[0], row[1], row[2] + 1, *row[3:])
        return rows


class VersionedModel:
    """Expected rows at every version, built by applying each version's change to the one before."""

    def __init__(self, changes: Mapping[int, Change]) -> None:
        versions = sorted(changes)
        if versions != list(range(len(versions))):
            raise ValueError(f"the model needs every version from 0; got {versions}")
        self.changes = dict(changes)
        self.states: list[dict[int, Row]] = []
        unknown = [v for v in versions if changes[v].kind == "unknown"]
        self.uncertain_from: int | None = unknown[0] if unknown else None
        state: State = {}
        for version in versions:
            state = changes[version].apply(state)
            self.states.append(dict(state))

    @property
    def latest(self) -> int:
        return len(self.states) - 1

    def known(self, version: int) -> bool:
        """Can the model say what the rows are at `version` (no lost commit file at or before it)."""
        return self.uncertain_from is None or version < self.uncertain_from

    def unordered(self, version: int) -> Iterable[Row]:
        """Rows at `version` in no particular order (for multiset comparisons)."""
        return () if version < 0 else self.states[version].values()

    def rows(self, version: int) -> list[Row]:
        """Rows at `version`; version -1 is the empty table before the first commit."""
        return [] if version < 0 else sorted(self.states[version].values(), key=row_key)

    def changed(self, version: int) -> bool:
        """Did the rows really change at this version (a change may match nothing)."""
        before = self.states[version - 1] if version > 0 else {}
        return self.states[version] != before

    def data_neutral(self, version: int) -> bool:
        return self.changes[version].kind == NEUTRAL


def micros(stamp: datetime) -> int:
    """A timestamp as exact microseconds since the epoch (UTC; naive means UTC)."""
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    delta = stamp - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def row_of(record: Mapping[str, object]) -> Row:
    """A row read from any engine, as the model spells it (a column the table does not have yet reads as null)."""
    part, big, amount, ts, note = (record.get(c) for c in ("part", "big", "amount", "ts", "note"))
    return (
        int(record["id"]),  # type: ignore[call-overload]
        partition_value(None if part is None else str(part)),
        int(record["val"]),  # type: ignore[call-overload]
        None if big is None else int(big),  # type: ignore[call-overload]
        None if amount is None else Decimal(str(amount)),
        None if ts is None else (micros(ts) if isinstance(ts, datetime) else int(ts)),  # type: ignore[call-overload]
        None if note is None else str(note),
    )


def rows_of(records: Iterable[Mapping[str, object]]) -> list[Row]:
    return sorted((row_of(r) for r in records), key=row_key)


def row_key(row: Row) -> tuple:
    """Sort key that tolerates nulls (None does not compare with str or int)."""
    return tuple((value is None, value if value is not None else 0) for value in row)
