"""The warehouse's tables: what the scorecard copies from the Dagster instance, and how the report reads it.

Every row carries the id Dagster gave its event (materialization storage id, check execution id), and
inserts skip ids already present, so copying the same events twice changes nothing and a deleted or
outdated warehouse is rebuilt from the instance alone. The schema is versioned: a warehouse written by an
older layout (e.g. the kit's former per-area record) is dropped and rebuilt rather than misread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

SCHEMA_VERSION = 2
TABLES = ("runs", "metrics", "invariants", "verdicts")
_BOOKKEEPING = ("synced_checks", "warehouse_meta")

# One arrow schema per table: the column order of the DuckDB table and of every export.
_TS = pa.timestamp("us", tz="UTC")
SCHEMAS: dict[str, pa.Schema] = {
    "runs": pa.schema(
        [
            ("storage_id", pa.int64()),  # the materialization event
            ("area", pa.string()),
            ("run_id", pa.string()),  # "" for results reported outside a run
            ("recorded_at", _TS),
            ("status", pa.string()),  # measured | skipped
            ("skip_reason", pa.string()),
            ("baseline_key", pa.string()),  # the settings a baseline must share, as JSON
        ]
    ),
    "metrics": pa.schema(
        [
            ("storage_id", pa.int64()),
            ("area", pa.string()),
            ("run_id", pa.string()),
            ("recorded_at", _TS),
            ("metric", pa.string()),
            ("value", pa.float64()),  # NULL when nothing was measured (e.g. no cache misses)
            ("unit", pa.string()),
            ("direction", pa.string()),
            ("kind", pa.string()),  # performance | volume | info: only performance is ever judged
            ("samples", pa.int64()),
            ("baseline_key", pa.string()),
        ]
    ),
    "invariants": pa.schema(
        [
            ("check_id", pa.int64()),  # the check execution
            ("area", pa.string()),
            ("invariant", pa.string()),
            ("passed", pa.bool_()),
            ("severity", pa.string()),
            ("detail", pa.string()),
            ("run_id", pa.string()),
            ("materialization_id", pa.int64()),  # the materialization it judged (NULL if unknown)
            ("recorded_at", _TS),
        ]
    ),
    "verdicts": pa.schema(
        [
            ("check_id", pa.int64()),  # the performance_regression check execution
            ("area", pa.string()),
            ("metric", pa.string()),
            ("status", pa.string()),  # ok | regression | improvement | insufficient_data | slo_breach
            ("severity", pa.string()),
            ("change_pct", pa.float64()),
            ("latest", pa.float64()),
            ("baseline", pa.float64()),
            ("unit", pa.string()),
            ("first_bad_run", pa.string()),
            ("summary", pa.string()),
            ("run_id", pa.string()),
            ("materialization_id", pa.int64()),
            ("recorded_at", _TS),
        ]
    ),
}
_KEYS = {
    "runs": "storage_id",
    "metrics": "storage_id, metric",
    "invariants": "check_id",
    "verdicts": "check_id, metric",
}
_DUCK_TYPES = {
    pa.int64(): "BIGINT",
    pa.string(): "VARCHAR",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    _TS: "TIMESTAMPTZ",
}


@dataclass
class Batch:
    """Rows read from the instance, by table, plus the check executions they came from (rows or not)."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {t: [] for t in TABLES})
    checks: list[int] = field(default_factory=list)

    def add(self, table: str, row: Mapping[str, Any]) -> None:
        self.rows[table].append(dict(row))


def _create(conn: duckdb.DuckDBPyConnection) -> None:
    for table, schema in SCHEMAS.items():
        columns = ", ".join(f"{f.name} {_DUCK_TYPES[f.type]}" for f in schema)
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns}, PRIMARY KEY ({_KEYS[table]}))")
    conn.execute("CREATE TABLE IF NOT EXISTS synced_checks (check_id BIGINT PRIMARY KEY)")
    conn.execute("CREATE TABLE IF NOT EXISTS warehouse_meta (schema_version INTEGER)")
    if conn.execute("SELECT count(*) FROM warehouse_meta").fetchall()[0][0] == 0:
        conn.execute("INSERT INTO warehouse_meta VALUES (?)", [SCHEMA_VERSION])


def _version(conn: duckdb.DuckDBPyConnection) -> int | None:
    found = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'warehouse_meta'"
    ).fetchall()[0][0]
    if not found:
        return None
    return conn.execute("SELECT max(schema_version) FROM warehouse_meta").fetchall()[0][0]


def drop_all(conn: duckdb.DuckDBPyConnection) -> None:
    for table in (*TABLES, *_BOOKKEEPING):
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def ensure_schema(conn: duckdb.DuckDBPyConnection, rebuild: bool = False) -> bool:
    """Create the tables; drop everything first when asked or when the file has another layout.
    True when the warehouse starts empty (a rebuild from the instance follows)."""
    stale = _version(conn) != SCHEMA_VERSION
    if rebuild or stale:
        drop_all(conn)
    _create(conn)
    return rebuild or stale


def insert(conn: duckdb.DuckDBPyConnection, batch: Batch) -> dict[str, int]:
    """Append the batch, skipping rows whose event ids are already there; returns new rows per table."""
    added = {}
    conn.execute("BEGIN TRANSACTION")
    try:
        for table in TABLES:
            before = conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            if batch.rows[table]:
                arrow = pa.Table.from_pylist(batch.rows[table], schema=SCHEMAS[table])  # noqa: F841 - read by SQL
                conn.execute(f"INSERT OR IGNORE INTO {table} SELECT * FROM arrow")
            added[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] - before
        if batch.checks:
            ids = pa.table({"check_id": pa.array(batch.checks, pa.int64())})  # noqa: F841 - read by SQL
            conn.execute("INSERT OR IGNORE INTO synced_checks SELECT * FROM ids")
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    return added


def last_storage_id(conn: duckdb.DuckDBPyConnection, area: str) -> int | None:
    """The newest materialization already copied for the area (materializations are append-only)."""
    return conn.execute("SELECT max(storage_id) FROM runs WHERE area = ?", [area]).fetchall()[0][0]


def synced_check_ids(conn: duckdb.DuckDBPyConnection) -> set[int]:
    return {row[0] for row in conn.execute("SELECT check_id FROM synced_checks").fetchall()}


def window_failure_share(conn: duckdb.DuckDBPyConnection, area: str, since: datetime, newest: int) -> tuple[int, float]:
    """(measured runs in the window, share of the earlier ones, i.e. not `newest`, with a failed invariant)."""
    rows = conn.execute(
        """
        SELECT r.storage_id, coalesce(bool_or(NOT i.passed), false)
        FROM runs r LEFT JOIN invariants i ON i.materialization_id = r.storage_id
        WHERE r.area = ? AND r.recorded_at >= ? AND r.status = 'measured'
        GROUP BY r.storage_id
        """,
        [area, since],
    ).fetchall()
    earlier = [failed for storage_id, failed in rows if storage_id != newest]
    return len(rows), (sum(earlier) / len(earlier) if earlier else 0.0)


def order_by(table: str) -> str:
    """The one row order of a table, in the report, the exports and the tests: by time, then event id."""
    return "recorded_at, " + _KEYS[table]


def read(conn: duckdb.DuckDBPyConnection, table: str, since: datetime | None = None) -> pa.Table:
    """A table (runs in the window only, when `since` is given), oldest first, with the export's columns."""
    if table not in SCHEMAS:
        raise ValueError(f"unknown table {table!r}; tables: {list(SCHEMAS)}")
    order = order_by(table)
    if since is None:
        return conn.sql(f"SELECT * FROM {table} ORDER BY {order}").to_arrow_table()
    return conn.sql(f"SELECT * FROM {table} WHERE recorded_at >= ? ORDER BY {order}", params=[since]).to_arrow_table()


def read_all(conn: duckdb.DuckDBPyConnection, since: datetime | None = None) -> dict[str, pa.Table]:
    return {table: read(conn, table, since) for table in TABLES}


def counts(conn: duckdb.DuckDBPyConnection, tables: Sequence[str] = TABLES) -> dict[str, int]:
    return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] for table in tables}


def read_metrics_with_history(conn: duckdb.DuckDBPyConnection, since: datetime, runs_before: int = 300) -> pa.Table:
    """Metric rows of the window plus, per area, the `runs_before` runs before it: change points and
    baseline bands near the window's start need the level that came before."""
    return conn.sql(
        """
        WITH before AS (
            SELECT area, storage_id FROM runs WHERE recorded_at < $since
            QUALIFY row_number() OVER (PARTITION BY area ORDER BY storage_id DESC) <= $n),
        cut AS (SELECT area, min(storage_id) AS first_id FROM before GROUP BY area)
        SELECT m.* FROM metrics m LEFT JOIN cut USING (area)
        WHERE m.recorded_at >= $since OR m.storage_id >= cut.first_id
        ORDER BY m.storage_id, m.metric
        """,
        params={"since": since, "n": runs_before},
    ).to_arrow_table()
