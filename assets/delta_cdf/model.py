"""The workload's own model of the table: the exact rows after every version, so every check has an answer.

A change is the logical operation a commit carries (append, update by key, delete by key, MERGE upsert,
partition overwrite, or data-neutral). Writers own disjoint keys, so concurrent changes commute: applying
them in commit-version order gives the table's true state whatever order they raced in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

COLUMNS = ("id", "part", "val", "note")
Row = tuple[int, str, int, str | None]
State = Mapping[int, Row]

KINDS = ("append", "update", "delete", "merge", "overwrite_partition", "schema_append", "neutral")
# Commits the model says change no rows (OPTIMIZE, property changes): they must add no change rows.
NEUTRAL = "neutral"


def partition_of(key: int, partitions: int) -> str:
    return f"p{key % partitions}"


@dataclass(frozen=True)
class Change:
    """One commit's logical effect. `rows` for append/merge/overwrite, `keys` + `delta` for update/delete."""

    kind: str
    rows: tuple[Row, ...] = ()
    keys: tuple[int, ...] = ()
    delta: int = 0
    part: str = ""
    label: str = ""  # what made it (e.g. "optimize", "cdf off"), for details

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown change kind {self.kind!r}")

    def apply(self, state: State) -> dict[int, Row]:
        rows = dict(state)
        if self.kind in ("append", "schema_append", "merge"):
            rows.update((row[0], row) for row in self.rows)
        elif self.kind == "update":
            for key in self.keys:
                if key in rows:
                    k, part, val, note = rows[key]
                    rows[key] = (k, part, val + self.delta, note)
        elif self.kind == "delete":
            for key in self.keys:
                rows.pop(key, None)
        elif self.kind == "overwrite_partition":
            rows = {k: r for k, r in rows.items() if r[1] != self.part}
            rows.update((row[0], row) for row in self.rows)
        return rows


class VersionedModel:
    """Expected rows at every version, built by applying each version's change to the one before."""

    def __init__(self, changes: Mapping[int, Change]) -> None:
        versions = sorted(changes)
        if versions != list(range(len(versions))):
            raise ValueError(f"the model needs every version from 0; got {versions}")
        self.changes = dict(changes)
        self.states: list[dict[int, Row]] = []
        state: State = {}
        for version in versions:
            state = changes[version].apply(state)
            self.states.append(dict(state))

    @property
    def latest(self) -> int:
        return len(self.states) - 1

    def rows(self, version: int) -> list[Row]:
        """Rows at `version`; version -1 is the empty table before the first commit."""
        return [] if version < 0 else sorted(self.states[version].values(), key=row_key)

    def changed(self, version: int) -> bool:
        """Did the rows really change at this version (a change may match nothing)."""
        before = self.states[version - 1] if version > 0 else {}
        return self.states[version] != before

    def data_neutral(self, version: int) -> bool:
        return self.changes[version].kind == NEUTRAL


def row_of(record: Mapping[str, object]) -> Row:
    """A row read from any engine, as the model spells it (a missing `note` column reads as null)."""
    note = record.get("note")
    return (int(record["id"]), str(record["part"]), int(record["val"]), None if note is None else str(note))


def rows_of(records: Iterable[Mapping[str, object]]) -> list[Row]:
    return sorted((row_of(r) for r in records), key=row_key)


def row_key(row: Row) -> tuple[int, str, int, str]:
    """Sort key that tolerates a null note (None does not compare with str)."""
    return (row[0], row[1], row[2], row[3] or "")
