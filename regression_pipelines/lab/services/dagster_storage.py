"""A private PostgreSQL 15 for Dagster's own storage (runs, events, schedules) under `regress serve`.

Never a system under test: no area, fault or failover touches it, so a destructive scenario cannot take the
orchestrator down with it. Its own port, data dir and login role (`dagster`); run as the postgres user.
"""

from __future__ import annotations

import signal
from typing import Any

from regression_pipelines.lab.binaries import INITDB, POSTGRES, SETPRIV
from regression_pipelines.lab.files import service_dir
from regression_pipelines.lab.health import Probe, pg_query, short
from regression_pipelines.lab.pg_server import initdb_once, postgres_argv
from regression_pipelines.lab.procs import spawn
from regression_pipelines.lab.service import AdminTool, LabService, PortClaim, psql
from regression_pipelines.lab.settings import LAB_HOST, LabSettings
from regression_pipelines.lab.state import record_service

NAME = "dagster_storage"


def storage_url(s: LabSettings) -> str:
    """The URL Dagster's processes get through REGRESS_DAGSTER_PG_URL (in their environment, never a file)."""
    return (
        f"postgresql://{s.dagster_storage_user}:{s.dagster_storage_password}"
        f"@{LAB_HOST}:{s.dagster_storage_port}/{s.dagster_storage_db}"
    )


def _ensure_role(socket_dir: str, s: LabSettings) -> None:
    """Create (or re-password) the `dagster` role and its database over the trusted local socket; idempotent."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        host=socket_dir, port=s.dagster_storage_port, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        role = sql.Identifier(s.dagster_storage_user)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (s.dagster_storage_user,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(s.dagster_storage_password)))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (s.dagster_storage_db,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(s.dagster_storage_db), role))


class DagsterStorage(LabService):
    name = NAME
    binaries = (POSTGRES, INITDB, SETPRIV)
    stop_signal = signal.SIGINT  # fast shutdown: the daemon and webserver keep connections open

    def port_claims(self, s: LabSettings) -> list[PortClaim]:
        return [PortClaim(NAME, s.dagster_storage_port, "dagster_storage_port")]

    def admin_tool(self, s: LabSettings) -> AdminTool:
        return psql(s.dagster_storage_port, s.dagster_storage_user, s.dagster_storage_password, s.dagster_storage_db)

    def start(self, s: LabSettings, process: str) -> int:
        base = service_dir(s, NAME, "postgres")
        data = base / "data"
        initdb_once(data)
        argv = postgres_argv(data, s.dagster_storage_port, base, "max_connections=200")
        pid = spawn(argv, base / "postgres.log", user="postgres")
        record_service(s, NAME, pid=pid, ports={"pg": s.dagster_storage_port}, started_by_lab=True)
        return pid

    def probe(self, s: LabSettings, process: str) -> Probe:
        try:
            pg_query(
                s.dagster_storage_port,
                s.dagster_storage_user,
                s.dagster_storage_password,
                s.dagster_storage_db,
                "SELECT 1",
            )
            return True, "query ok"
        except Exception as exc:
            return False, short(exc)

    def ready(self, s: LabSettings) -> Probe:
        try:
            _ensure_role(str(self.folder(s)), s)
        except Exception as exc:
            return False, short(exc)
        return self.probe(s, NAME)

    def endpoint(self, s: LabSettings) -> dict[str, Any]:
        return {
            "host": LAB_HOST,
            "port": s.dagster_storage_port,
            "user": s.dagster_storage_user,
            "dbname": s.dagster_storage_db,
        }


SERVICE = DagsterStorage()
