"""Dagster's own storage, chosen by environment: SQLite under DAGSTER_HOME, or PostgreSQL when asked.

dagster.yaml cannot branch on an environment variable, so it names this class, which picks
`DagsterPostgresStorage` when REGRESS_DAGSTER_PG_URL is set and SQLite otherwise. Dagster's storage must
never be a lab server under test (a failover test would take the orchestrator down with it), so a URL
pointing at a lab port is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg
from dagster import Field, StringSource
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClass, ConfigurableClassData

from regression_pipelines.errors import mask_secrets

PG_URL_ENV = "REGRESS_DAGSTER_PG_URL"


def _lab_ports() -> set[int]:
    from regression_pipelines.lab.settings import LabSettings

    s = LabSettings.from_env()
    return {s.postgres_port, s.haproxy_rw_port, s.haproxy_ro_port, *s.patroni_pg_ports}


def refuse_lab_target(url: str) -> None:
    port = psycopg.conninfo.conninfo_to_dict(url).get("port")
    if port and int(port) in _lab_ports():
        raise ValueError(
            f"{PG_URL_ENV}={mask_secrets(url)} points at a lab server under test (port {port}); "
            "give Dagster its own PostgreSQL (e.g. the machine's on 5432)"
        )


def with_psycopg2_driver(url: str) -> str:
    """SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3, whose server-side binding breaks dagster-postgres'
    `NOTIFY channel, $1` (syntax error at or near "$1"); dagster-postgres is written for psycopg2."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url[len(scheme) :]
    return url


class EnvSelectedStorage(DagsterStorage, ConfigurableClass):
    """Factory only (never instantiated): `from_config_value` returns a real Dagster storage."""

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {
            "base_dir": Field(StringSource, is_required=False),
            # a DAGSTER_HOME that must never fall back to SQLite (regress serve, deployments)
            "require_postgres": Field(bool, is_required=False, default_value=False),
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]) -> Any:
        url = os.environ.get(PG_URL_ENV)
        if url:
            from dagster_postgres import DagsterPostgresStorage

            refuse_lab_target(url)
            return DagsterPostgresStorage(postgres_url=with_psycopg2_driver(url), inst_data=inst_data)
        if config_value.get("require_postgres"):
            raise ValueError(
                f"{PG_URL_ENV} is not set, and this DAGSTER_HOME keeps Dagster's storage in PostgreSQL "
                "(require_postgres: true); set it to postgresql://USER:PASSWORD@HOST:PORT/DB"
            )
        base_dir = config_value.get("base_dir") or str(Path(os.environ["DAGSTER_HOME"]) / "storage")
        return DagsterSqliteStorage.from_local(base_dir, inst_data=inst_data)
