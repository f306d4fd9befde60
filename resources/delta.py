"""Delta Lake tables for the change-data-feed area: where tables live, and how to reach a Spark with Delta.

delta-rs (`deltalake`) needs nothing but a folder. Spark needs either a Spark Connect endpoint
(`sc://host:port`, loopback unless allow-listed) or a local session with the Delta jars: given as local jar
paths (`spark.jars`), or resolved from Maven by delta-spark's `configure_spark_with_delta_pip`
(`spark.jars.packages`), which fails on machines without Maven Central. `spark_session()` never pretends:
when no Spark with Delta can be had it raises `SparkUnavailable` with the reason.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dagster import ConfigurableResource
from pydantic import Field

from regression_pipelines.errors import ResourceConfigError
from regression_pipelines.measure import describe_error
from regression_pipelines.removal import remove_tree
from resources._network import require_allowed_host

RESOURCE = "DeltaLakeResource"
SPARK_MODES = ("auto", "connect", "local", "off")
DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


class SparkUnavailable(Exception):  # noqa: N818 - an outcome the area reports, not a crash
    """No Spark with Delta could be reached; `reason` says why and what would fix it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DeltaLakeResource(ConfigurableResource):
    """Root folder of the Delta tables the CDF area writes and replays, and the optional Spark to read them."""

    root: str = Field(default="", description="Folder holding Delta tables (local path; REGRESS_DELTA_ROOT)")
    spark_connect_url: str = Field(
        default="", description="Spark Connect endpoint sc://host:port (REGRESS_SPARK_CONNECT_URL); empty: none"
    )
    spark_delta_jars: str = Field(
        default="",
        description="Comma-separated local jar paths (delta-spark and delta-storage) for a local Spark session "
        "(REGRESS_SPARK_DELTA_JARS); empty: resolve them from Maven with delta-spark's helper",
    )
    allowed_hosts: list[str] = Field(default_factory=list, description="Non-loopback Spark Connect hosts you allow")

    def table_uri(self, name: str) -> str:
        if not self.root:
            raise ResourceConfigError(RESOURCE, "root", "is empty", "set REGRESS_DELTA_ROOT to a writable folder")
        if not name.isidentifier():
            raise ResourceConfigError(RESOURCE, "table name", f"{name!r} is not a plain identifier", "use [A-Za-z0-9_]")
        return str(Path(self.root).resolve() / name)

    def new_table_uri(self, prefix: str) -> str:
        """A table path no earlier run used (the folder is created by the first write)."""
        if not self.root:
            raise ResourceConfigError(RESOURCE, "root", "is empty", "set REGRESS_DELTA_ROOT to a writable folder")
        root = Path(self.root).resolve()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ResourceConfigError(
                RESOURCE,
                "root",
                f"cannot create {root} ({exc.strerror})",
                "set REGRESS_DELTA_ROOT to a writable folder",
            ) from None
        return self.table_uri(f"{prefix}_{uuid.uuid4().hex[:12]}")

    def remove_table(self, uri: str) -> None:
        """Delete one table folder, and only one under the root (never the root itself)."""
        path, root = Path(uri).resolve(), Path(self.root).resolve()
        if path.parent != root:
            raise ValueError(f"{path} is not a table folder directly under {root}")
        remove_tree(path)  # raises while a fault keeps part of it: the supervisor retries, then names it

    def nemesis_endpoint(self) -> dict[str, Any]:
        """Where the tables live, for the kit's nemeses (they act only on tables the run registered)."""
        return {"service": "delta", "host": "127.0.0.1", "port": None, "root": str(Path(self.root).resolve())}

    def spark_session(self, mode: str = "auto") -> tuple[Any, str]:
        """(SparkSession, description) for Delta reads, or SparkUnavailable naming the reason and the fix."""
        if mode not in SPARK_MODES:
            raise ResourceConfigError(RESOURCE, "spark mode", f"{mode!r} is unknown", f"use one of {SPARK_MODES}")
        if mode == "off":
            raise SparkUnavailable("switched off (spark=off)")
        if mode == "connect" or (mode == "auto" and self.spark_connect_url):
            return self._connect_session()
        if mode == "local" or (mode == "auto" and self.spark_delta_jars):
            return self._local_session()
        raise SparkUnavailable(
            "no Spark with Delta configured: set REGRESS_SPARK_CONNECT_URL=sc://host:port (a Spark Connect server "
            "with Delta) or REGRESS_SPARK_DELTA_JARS=<delta-spark and delta-storage jar paths> for a local session"
        )

    def _connect_session(self) -> tuple[Any, str]:
        url = self.spark_connect_url
        if not url:
            raise SparkUnavailable("spark=connect but REGRESS_SPARK_CONNECT_URL is empty; set it to sc://host:port")
        parsed = urlparse(url)
        if parsed.scheme != "sc" or not parsed.hostname or not parsed.port:
            raise ResourceConfigError(
                RESOURCE, "spark_connect_url", f"{url!r} is not a Spark Connect URL", "use sc://host:port"
            )
        require_allowed_host(RESOURCE, parsed.hostname, self.allowed_hosts)
        try:  # the Connect client retries an absent endpoint for minutes: ask the socket first
            socket.create_connection((parsed.hostname, parsed.port), timeout=3).close()
        except OSError as exc:
            raise SparkUnavailable(f"nothing answers at {url} ({exc.strerror or exc})") from None
        from pyspark.sql import SparkSession

        try:
            session = SparkSession.builder.remote(url).create()
            version = session.version
        except Exception as exc:  # pyspark raises several unrelated types for an endpoint that is not there
            raise SparkUnavailable(f"Spark Connect endpoint {url} not usable: {_first_line(exc)}") from None
        return session, f"Spark Connect {url} (server reports Spark {version})"

    def _local_session(self) -> tuple[Any, str]:
        from delta import configure_spark_with_delta_pip
        from pyspark.sql import SparkSession

        builder = (
            SparkSession.builder.master("local[2]")
            .appName("regress-delta-cdf")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.extensions", DELTA_EXTENSION)
            .config("spark.sql.catalog.spark_catalog", DELTA_CATALOG)
        )
        if self.spark_delta_jars:
            missing = [p for p in self.spark_delta_jars.split(",") if not Path(p.strip()).is_file()]
            if missing:
                raise SparkUnavailable(f"REGRESS_SPARK_DELTA_JARS names missing files: {missing}")
            builder, source = builder.config("spark.jars", self.spark_delta_jars), "spark.jars"
        else:
            builder, source = configure_spark_with_delta_pip(builder), "spark.jars.packages"
        try:
            session = builder.getOrCreate()
        except Exception as exc:
            reason = (
                f"local Spark with Delta did not start ({source}: {builder._options.get(source)}): {_first_line(exc)}"
            )
            if "JAVA_GATEWAY_EXITED" in str(exc) and source == "spark.jars.packages":
                reason += (
                    "; the JVM could not resolve the Delta jars (no Maven repository reachable?): set "
                    "REGRESS_SPARK_DELTA_JARS to local jar paths or REGRESS_SPARK_CONNECT_URL"
                )
            raise SparkUnavailable(reason) from None
        return session, f"local Spark {session.version} with Delta ({source})"


def _first_line(exc: BaseException) -> str:
    return describe_error(exc)[:300]
