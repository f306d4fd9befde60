"""Comparing one statement's outcome on Citus with vanilla PostgreSQL. Pure.

Rows are compared as lists when the statement's ORDER BY gives a total order, else as multisets. Numerics are
compared at 10 decimal places (Citus computes avg as sum/count on the coordinator; trailing digits of a
numeric division are not part of the answer). An error Citus raises where PostgreSQL answers is a refusal by
design only when the statement's shape lists that SQLSTATE (e.g. 0A000 for a write that would move a row to
another shard); any other refusal is a mismatch: an always-refused shape never hides an allowed one.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from enum import StrEnum
from typing import Any

FEATURE_NOT_SUPPORTED = "0A000"
PLACES = Decimal("1e-10")
WIDE = Context(prec=80)  # quantizing a large sum must not overflow the default 28 digits


@dataclass(frozen=True)
class Outcome:
    """What one system did with a statement: rows (queries, RETURNING), rows affected, or an error."""

    rows: tuple[tuple[Any, ...], ...] = ()
    rowcount: int = -1
    sqlstate: str | None = None
    error: str = ""

    @property
    def failed(self) -> bool:
        return self.sqlstate is not None or bool(self.error)


class Verdict(StrEnum):
    SAME = "same"
    UNSUPPORTED = "unsupported"
    MISMATCH = "mismatch"
    UNKNOWN = "unknown"  # a side's connection was lost mid-statement (or a node was unreachable): not judged


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    detail: str = ""


def normalize(value: Any) -> Any:
    """A comparable form: numerics rounded to 10 places, floats to 9 significant digits, the rest as is."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        return value.quantize(PLACES, context=WIDE).normalize(context=WIDE) + 0  # `+ 0`: -0 becomes 0
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return float(f"{value:.9g}")
    if isinstance(value, list | tuple):
        return tuple(normalize(v) for v in value)
    return value


def normalize_rows(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    return [tuple(normalize(v) for v in row) for row in rows]


def _sortable(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, type(v).__name__, v if v is not None else 0) for v in row)


def diff_rows(citus: Sequence[Sequence[Any]], vanilla: Sequence[Sequence[Any]], ordered: bool) -> str:
    """'' when the results are the same answer, else a short description of the difference."""
    a, b = normalize_rows(citus), normalize_rows(vanilla)
    if ordered:
        if a == b:
            return ""
        if len(a) != len(b):
            return f"{len(a)} rows on Citus, {len(b)} on PostgreSQL"
        i = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
        return f"row {i + 1} differs: Citus {a[i]!r}, PostgreSQL {b[i]!r}"
    ca, cb = Counter(a), Counter(b)
    if ca == cb:
        return ""
    only_citus = sorted((ca - cb).elements(), key=_sortable)
    only_vanilla = sorted((cb - ca).elements(), key=_sortable)
    parts = [f"{len(a)} rows on Citus, {len(b)} on PostgreSQL"]
    if only_citus:
        parts.append(f"only on Citus ({len(only_citus)}): {only_citus[:3]!r}")
    if only_vanilla:
        parts.append(f"only on PostgreSQL ({len(only_vanilla)}): {only_vanilla[:3]!r}")
    return "; ".join(parts)


def judge(citus: Outcome, vanilla: Outcome, ordered: bool, by_design: frozenset[str] = frozenset()) -> Judgement:
    """Same answer, refused by design for this shape (`by_design` SQLSTATEs), or a mismatch with what differs."""
    if citus.failed and citus.sqlstate in by_design:  # refused at planning, whatever PostgreSQL's executor said
        return Judgement(Verdict.UNSUPPORTED, citus.error)
    if citus.failed and not vanilla.failed:
        return Judgement(
            Verdict.MISMATCH,
            f"Citus refused what PostgreSQL answered, and this shape is not refused by design: {_outcome_text(citus)}",
        )
    if citus.failed or vanilla.failed:
        if citus.failed and vanilla.failed and citus.sqlstate == vanilla.sqlstate:
            return Judgement(Verdict.SAME)
        return Judgement(
            Verdict.MISMATCH,
            f"Citus: {_outcome_text(citus)}; PostgreSQL: {_outcome_text(vanilla)}",
        )
    if citus.rowcount != vanilla.rowcount and not citus.rows and not vanilla.rows:
        return Judgement(Verdict.MISMATCH, f"{citus.rowcount} rows affected on Citus, {vanilla.rowcount} on PostgreSQL")
    difference = diff_rows(citus.rows, vanilla.rows, ordered)
    return Judgement(Verdict.MISMATCH, difference) if difference else Judgement(Verdict.SAME)


def _outcome_text(outcome: Outcome) -> str:
    if outcome.failed:
        return f"error {outcome.sqlstate}: {outcome.error}"
    return f"ok ({len(outcome.rows)} rows, {outcome.rowcount} affected)"
