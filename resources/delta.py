"""Delta Lake tables (delta-rs through `deltalake`) for the change-data-feed area.

Only the storage location lives here until the Delta area is built. Spark's Delta jars cannot be fetched on
these machines (no Maven Central, see LAB-NOTES), so `spark_session()` says so instead of pretending.
"""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from regression_pipelines.errors import ResourceConfigError

RESOURCE = "DeltaLakeResource"


class DeltaLakeResource(ConfigurableResource):
    """Root folder of the Delta tables the CDF area writes and replays."""

    root: str = Field(default=".lab/delta", description="Folder holding Delta tables (local path)")

    def table_uri(self, name: str) -> str:
        if not name.isidentifier():
            raise ResourceConfigError(RESOURCE, "table name", f"{name!r} is not a plain identifier", "use [A-Za-z0-9_]")
        return str(Path(self.root).resolve() / name)

    def spark_session(self) -> None:
        raise ResourceConfigError(
            RESOURCE,
            "engine",
            "Spark with Delta needs the delta-spark jars, which cannot be downloaded here",
            "use the deltalake (delta-rs) engine via table_uri(); Spark support comes with the Delta area",
        )
