"""Parquet and JSON exports of the warehouse tables for the report's window, written by DuckDB itself.

Parquet keeps the types (timestamps in UTC); JSON is one array of objects per table with ISO 8601 times,
readable by DuckDB (`read_json`), polars (`read_json`) and pandas (`read_json`).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb

from regression_pipelines.reports.model import Scorecard
from regression_pipelines.reports.tables import TABLES, order_by

_ORDER = {
    "runs": "storage_id",
    "metrics": "storage_id, metric",
    "invariants": "check_id",
    "verdicts": "check_id, metric",
}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def write_exports(
    conn: duckdb.DuckDBPyConnection, folder: Path, since: datetime, scorecard: Scorecard | None
) -> dict[str, Path]:
    """`<table>.parquet` and `<table>.json` for every table (rows since `since`), plus `scorecard.json`."""
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    start = _literal(since.isoformat())
    for table in TABLES:
        query = f"SELECT * FROM {table} WHERE recorded_at >= {start}::TIMESTAMPTZ ORDER BY {order_by(table)}"
        parquet, js = folder / f"{table}.parquet", folder / f"{table}.json"
        conn.execute(f"COPY ({query}) TO {_literal(str(parquet))} (FORMAT parquet)")
        conn.execute(
            f"COPY ({query}) TO {_literal(str(js))} (FORMAT json, ARRAY true, TIMESTAMPFORMAT '%Y-%m-%dT%H:%M:%S.%fZ')"
        )
        written[f"{table}.parquet"], written[f"{table}.json"] = parquet, js
    if scorecard is not None:
        path = folder / "scorecard.json"
        path.write_text(json.dumps(scorecard.to_json(), indent=1, sort_keys=True))
        written["scorecard.json"] = path
    return written
