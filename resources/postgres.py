"""PostgreSQL (standalone lab server by default) as a Dagster resource."""

from __future__ import annotations

from typing import Any

import psycopg
from dagster import ConfigurableResource
from pydantic import Field

from regression_pipelines.errors import ResourceConfigError, mask_secrets
from resources._network import require_allowed_host

RESOURCE = "PostgresResource"


def explain_connect_error(resource: str, exc: Exception, password: str | None) -> ResourceConfigError:
    """Map libpq's message to the field that is wrong, so the user knows what to change."""
    text = str(exc)
    lowered = text.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return ResourceConfigError(
            resource,
            "password",
            "authentication failed",
            "set REGRESS_PG_PASSWORD to the role's password",
            password,
        )
    if "role" in lowered and "does not exist" in lowered:
        return ResourceConfigError(
            resource, "user", mask_secrets(text.strip(), password), "set REGRESS_PG_USER to an existing role"
        )
    if "database" in lowered and "does not exist" in lowered:
        return ResourceConfigError(
            resource,
            "dbname",
            mask_secrets(text.strip(), password),
            "set REGRESS_PG_DB to an existing database",
        )
    first_line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ResourceConfigError(
        resource,
        "host/port",
        f"cannot connect ({mask_secrets(first_line, password)})",
        "start the lab (`regress lab up`) or set REGRESS_PG_HOST / REGRESS_PG_PORT",
        password,
    )


class PostgresResource(ConfigurableResource):
    """Connection settings for one PostgreSQL server; `connect()` gives a psycopg connection."""

    host: str = Field(default="127.0.0.1", description="Server host (loopback unless allow-listed)")
    port: int = Field(default=5432, description="Server port (the lab profile passes the lab's)")
    user: str = Field(default="postgres", description="Login role")
    password: str = Field(default="", description="Password; pass it with EnvVar('REGRESS_PG_PASSWORD')")
    dbname: str = Field(default="postgres", description="Database name")
    connect_timeout_s: int = Field(default=5, description="Seconds before a connection attempt gives up")
    allowed_hosts: list[str] = Field(default_factory=list, description="Non-loopback hosts you allow")

    def conninfo(self) -> str:
        return psycopg.conninfo.make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password or None,
            dbname=self.dbname,
            connect_timeout=self.connect_timeout_s,
            application_name="regression_pipelines",
        )

    def describe(self) -> str:
        """A DSN safe to print: never contains the password."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def connect(self, autocommit: bool = True) -> psycopg.Connection:
        require_allowed_host(RESOURCE, self.host, self.allowed_hosts)
        try:
            return psycopg.connect(self.conninfo(), autocommit=autocommit)
        except psycopg.OperationalError as exc:
            raise explain_connect_error(RESOURCE, exc, self.password) from None

    def server_version(self) -> str:
        with self.connect() as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])

    def nemesis_endpoint(self) -> dict[str, Any]:
        """The server as the kit's nemeses see it (no secrets); `probe` opens a fresh connection and queries."""

        def probe() -> object:
            require_allowed_host(RESOURCE, self.host, self.allowed_hosts)
            with psycopg.connect(self.conninfo(), connect_timeout=min(self.connect_timeout_s, 3)) as conn:
                return conn.execute("SELECT 1").fetchone()

        return {
            "service": "postgres", "host": self.host, "port": self.port, "dbname": self.dbname, "user": self.user,
            "probe": probe,
        }  # fmt: skip
