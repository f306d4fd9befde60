"""A Citus cluster as a Dagster resource: the coordinator, and its nodes as it lists them.

`probe()` tells "no Citus here" (nothing answers, or no citus extension: the area is skipped) from "Citus is
here but misconfigured" (bad password, role or database: a ResourceConfigError that fails the asset).
"""

from __future__ import annotations

from typing import Any

import psycopg
from dagster import ConfigurableResource
from pydantic import Field

from regression_pipelines.errors import ResourceConfigError, mask_secrets
from resources._network import require_allowed_host
from resources.postgres import explain_connect_error

RESOURCE = "CitusResource"


class CitusUnavailable(Exception):  # noqa: N818 - an outcome (no Citus to test), not a failure
    """No Citus cluster answers at the configured address, or the database has no citus extension."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CitusResource(ConfigurableResource):
    """Connection settings of a Citus coordinator; workers are reached at the addresses it lists, same role."""

    host: str = Field(
        default="127.0.0.1", description="Coordinator host (loopback unless allow-listed); empty: no Citus configured"
    )
    port: int = Field(default=5432, description="Coordinator port (the lab profile passes the lab's)")
    user: str = Field(default="postgres", description="Login role (also used on the workers)")
    password: str = Field(default="", description="Password; pass it with EnvVar('REGRESS_CITUS_PASSWORD')")
    dbname: str = Field(default="postgres", description="Database with the citus extension")
    superuser: str = Field(default="postgres", description="Superuser, only for injected faults (metadata edits)")
    superuser_password: str = Field(
        default="", description="Its password (EnvVar('REGRESS_CITUS_SUPERUSER_PASSWORD')); only faults need it"
    )
    connect_timeout_s: int = Field(default=5, description="Seconds before a connection attempt gives up")
    allowed_hosts: list[str] = Field(default_factory=list, description="Non-loopback hosts you allow")

    def describe(self) -> str:
        """A DSN safe to print: never contains the password."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def _connect(self, host: str, port: int, user: str, password: str) -> psycopg.Connection:
        require_allowed_host(RESOURCE, host, self.allowed_hosts)
        return psycopg.connect(
            host=host,
            port=port,
            user=user,
            password=password or None,
            dbname=self.dbname,
            connect_timeout=self.connect_timeout_s,
            application_name="regression_pipelines",
            autocommit=True,
        )

    def probe(self) -> str:
        """The Citus version of the coordinator; raises CitusUnavailable or ResourceConfigError."""
        if not self.host:
            raise CitusUnavailable("no Citus configured (REGRESS_CITUS_HOST is not set)")
        try:
            conn = self._connect(self.host, self.port, self.user, self.password)
        except psycopg.OperationalError as exc:
            text = str(exc).lower()
            if any(k in text for k in ("password", "role", "does not exist", "no pg_hba", "permission")):
                raise _config_error(exc, self.password) from None
            first = mask_secrets(str(exc).strip().splitlines()[0] if str(exc).strip() else "", self.password)
            raise CitusUnavailable(f"no Citus reachable at {self.host}:{self.port} ({first})") from None
        with conn:
            row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'citus'").fetchone()
            if row is None:
                raise CitusUnavailable(
                    f"{self.describe()} answers but has no citus extension (CREATE EXTENSION citus, or point "
                    "REGRESS_CITUS_HOST/REGRESS_CITUS_PORT at a coordinator)"
                )
            return str(conn.execute("SELECT citus_version()").fetchone()[0]).split(" on ")[0]

    def connect(self) -> psycopg.Connection:
        """An autocommit connection to the coordinator."""
        try:
            return self._connect(self.host, self.port, self.user, self.password)
        except psycopg.OperationalError as exc:
            raise _config_error(exc, self.password) from None

    def connect_node(self, host: str, port: int) -> psycopg.Connection:
        """An autocommit connection to one node, as listed in pg_dist_node, with the same role."""
        try:
            return self._connect(host, port, self.user, self.password)
        except psycopg.OperationalError as exc:
            raise _config_error(exc, self.password) from None

    def nemesis_endpoint(self) -> dict[str, Any]:
        """The coordinator as the kit's nemeses see it (no secrets); `probe` queries it on a fresh connection."""

        def probe() -> object:
            with self._connect(self.host, self.port, self.user, self.password) as conn:
                return conn.execute("SELECT 1").fetchone()

        return {
            "service": "citus", "host": self.host, "port": self.port, "dbname": self.dbname, "user": self.user,
            "probe": probe,
        }  # fmt: skip

    def connect_superuser(self) -> psycopg.Connection:
        """The coordinator as superuser: only fault injection edits metadata."""
        if not self.superuser_password:
            raise ResourceConfigError(
                RESOURCE, "superuser_password", "not set, and injected faults edit Citus metadata",
                "set REGRESS_CITUS_SUPERUSER_PASSWORD (lab: done for you) or run with fault=none",
            )  # fmt: skip
        try:
            return self._connect(self.host, self.port, self.superuser, self.superuser_password)
        except psycopg.OperationalError as exc:
            raise _config_error(exc, self.superuser_password) from None


def _config_error(exc: Exception, password: str) -> ResourceConfigError:
    error = explain_connect_error(RESOURCE, exc, password)
    return ResourceConfigError(
        RESOURCE, error.field, str(error).split(": ", 1)[1].split(". Fix:")[0],
        "set REGRESS_CITUS_HOST/PORT/USER/PASSWORD/DB for your coordinator, or `regress lab up citus`", password,
    )  # fmt: skip
