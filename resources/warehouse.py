"""Results warehouse: one DuckDB file, queryable with plain SQL, written only by the regression scorecard.

The scorecard copies what the Dagster instance holds (runs, metrics, check results, verdicts) into it, so it
can be deleted and rebuilt at any time (see regression_pipelines/reports/tables.py for the tables). DuckDB
allows one writing process per file and Dagster runs steps in parallel processes: every connection is
taken under an exclusive lock file next to the database, so a reader or writer queues instead of failing
with "Could not set lock on file".
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
from dagster import ConfigurableResource
from pydantic import Field

from regression_pipelines.errors import ResourceConfigError

RESOURCE = "WarehouseResource"


def _default_path() -> str:
    home = os.environ.get("DAGSTER_HOME") or str(Path.cwd() / ".dagster_home")
    return str(Path(home) / "warehouse.duckdb")


class WarehouseResource(ConfigurableResource):
    """Where results land besides Dagster's metadata (for SQL, exports and reports)."""

    path: str = Field(default_factory=_default_path, description="DuckDB file (default $DAGSTER_HOME/warehouse.duckdb)")

    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The warehouse, held exclusively (across processes) until the block ends; timestamps in UTC."""
        target = Path(self.path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            lock = open(target.with_name(target.name + ".lock"), "a")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise self._unusable(target, exc) from None
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                conn = duckdb.connect(str(target))
            except duckdb.Error as exc:
                raise self._unusable(target, exc) from None
            with conn:
                conn.execute("SET TimeZone = 'UTC'")
                yield conn

    @staticmethod
    def _unusable(target: Path, exc: Exception) -> ResourceConfigError:
        return ResourceConfigError(
            RESOURCE, "path", f"cannot open {target} ({exc})", "set REGRESS_WAREHOUSE_PATH to a writable file"
        )
