"""Results warehouse: every area's figures in one DuckDB file, queryable with plain SQL."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from dagster import ConfigurableResource
from pydantic import Field

from regression_pipelines.errors import ResourceConfigError
from regression_pipelines.results import ScenarioResult

RESOURCE = "WarehouseResource"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS metrics (
    run_id VARCHAR, area VARCHAR, metric VARCHAR, value DOUBLE, unit VARCHAR, direction VARCHAR,
    recorded_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS invariants (
    run_id VARCHAR, area VARCHAR, invariant VARCHAR, passed BOOLEAN, detail VARCHAR, recorded_at TIMESTAMPTZ);
"""


def _default_path() -> str:
    home = os.environ.get("DAGSTER_HOME") or str(Path.cwd() / ".dagster_home")
    return str(Path(home) / "warehouse.duckdb")


class WarehouseResource(ConfigurableResource):
    """Where results land besides Dagster's metadata (for SQL, exports and reports)."""

    path: str = Field(default_factory=_default_path, description="DuckDB file (default $DAGSTER_HOME/warehouse.duckdb)")

    def connect(self) -> duckdb.DuckDBPyConnection:
        target = Path(self.path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            conn = duckdb.connect(str(target))
        except (OSError, duckdb.Error) as exc:
            raise ResourceConfigError(
                RESOURCE,
                "path",
                f"cannot open {target} ({exc})",
                "set REGRESS_WAREHOUSE_PATH to a writable file",
            ) from None
        conn.execute(_SCHEMA)
        return conn

    def record(self, run_id: str, result: ScenarioResult) -> None:
        now = datetime.now(UTC)
        with self.connect() as conn:
            conn.executemany(
                "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(run_id, result.area, m.name, m.value, m.unit, m.direction.value, now) for m in result.metrics],
            )
            if result.invariants:
                conn.executemany(
                    "INSERT INTO invariants VALUES (?, ?, ?, ?, ?, ?)",
                    [(run_id, result.area, i.name, i.passed, i.detail, now) for i in result.invariants],
                )
