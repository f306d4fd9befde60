"""Read `series,run,value[,direction]` tables (CSV or Parquet) for `regress detect`, with errors that name
the row and column, because the person fixing the file needs to find the bad cell."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regression_pipelines.results import Direction

REQUIRED = ("series", "run", "value")
PARQUET_SUFFIXES = (".parquet", ".pq")


class InputError(ValueError):
    """Bad input file; the message names the file, row and column."""


@dataclass
class SeriesInput:
    name: str
    direction: Direction
    runs: list[int | str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


def _rows(path: Path) -> tuple[list[str], list[dict[str, Any]], int]:
    """Column names, rows as dicts, and the line number of the first data row (for messages)."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise InputError(f"{path}: not a readable Parquet file ({exc})") from exc
        return list(table.column_names), table.to_pylist(), 1
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            return [c.strip() for c in (reader.fieldnames or [])], rows, 2
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read CSV ({exc})") from exc


def _run_label(raw: Any) -> int | str:
    text = str(raw).strip()
    try:
        return int(text)
    except ValueError:
        return text


def read_series(path: str | Path) -> list[SeriesInput]:
    """Series in order of first appearance; rows of a series keep file order (= run order)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    columns, rows, first_line = _rows(path)
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(columns) or 'none'}")
    has_direction = "direction" in columns
    by_name: dict[str, SeriesInput] = {}
    for i, row in enumerate(rows):
        where = f"{path}: row {i + 1} (line {i + first_line})"
        row = {k.strip() if isinstance(k, str) else k: v for k, v in row.items()}
        name = row.get("series")
        if name is None or str(name).strip() == "":
            raise InputError(f"{where}, column 'series': empty series name")
        name = str(name).strip()
        raw_value = row.get("value")
        try:
            value = float(str(raw_value).strip()) if not isinstance(raw_value, (int, float)) else float(raw_value)
        except ValueError:
            raise InputError(f"{where}, column 'value': {raw_value!r} is not a number") from None
        if not math.isfinite(value):
            raise InputError(f"{where}, column 'value': {raw_value!r} is not a finite number")
        if row.get("run") is None or str(row.get("run")).strip() == "":
            raise InputError(f"{where}, column 'run': empty run label")
        raw_dir = str(row.get("direction") or "").strip().lower() if has_direction else ""
        try:
            direction = Direction(raw_dir) if raw_dir else Direction.LOWER_IS_BETTER
        except ValueError:
            raise InputError(
                f"{where}, column 'direction': {raw_dir!r} is not lower_is_better or higher_is_better"
            ) from None
        series = by_name.setdefault(name, SeriesInput(name, direction))
        if raw_dir and direction is not series.direction:
            raise InputError(
                f"{where}, column 'direction': {direction.value} contradicts {series.direction.value} "
                f"given earlier for series {name!r}"
            )
        series.runs.append(_run_label(row["run"]))
        series.values.append(value)
    if not by_name:
        raise InputError(f"{path}: no data rows")
    return list(by_name.values())
