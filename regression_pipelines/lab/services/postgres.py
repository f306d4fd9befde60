"""Standalone PostgreSQL 15 (the plain-PostgreSQL and cache areas' database), run as the postgres user."""

from __future__ import annotations

import signal
from typing import Any

from regression_pipelines.lab.binaries import INITDB, POSTGRES, SETPRIV
from regression_pipelines.lab.files import service_dir
from regression_pipelines.lab.health import Probe, pg_query, short
from regression_pipelines.lab.pg_roles import ensure_regress_role
from regression_pipelines.lab.pg_server import initdb_once, postgres_argv
from regression_pipelines.lab.procs import spawn
from regression_pipelines.lab.service import AdminTool, LabService, PortClaim, psql
from regression_pipelines.lab.settings import LAB_HOST, LabSettings
from regression_pipelines.lab.state import record_service


class Postgres(LabService):
    name = "postgres"
    binaries = (POSTGRES, INITDB, SETPRIV)
    stop_signal = signal.SIGINT  # fast shutdown; SIGTERM would wait for clients to leave

    def port_claims(self, s: LabSettings) -> list[PortClaim]:
        return [PortClaim("postgres", s.postgres_port, "postgres_port")]

    def start(self, s: LabSettings, process: str) -> int:
        base = service_dir(s, "postgres", "postgres")
        data = base / "data"
        initdb_once(data)
        pid = spawn(postgres_argv(data, s.postgres_port, base), base / "postgres.log", user="postgres")
        record_service(s, "postgres", pid=pid, ports={"pg": s.postgres_port}, started_by_lab=True)
        return pid

    def probe(self, s: LabSettings, process: str) -> Probe:
        try:
            pg_query(s.postgres_port, s.postgres_user, s.postgres_password, s.postgres_db, "SELECT 1")
            return True, "query ok"
        except Exception as exc:
            return False, short(exc)

    def ready(self, s: LabSettings) -> Probe:
        """The login role exists (created over the trusted local socket) and answers a query over TCP."""
        try:
            ensure_regress_role(str(self.folder(s)), s.postgres_port, None, s)
        except Exception as exc:
            return False, short(exc)
        return self.probe(s, self.name)

    def endpoint(self, s: LabSettings) -> dict[str, Any]:
        return {"host": LAB_HOST, "port": s.postgres_port, "user": s.postgres_user, "dbname": s.postgres_db}

    def admin_tool(self, s: LabSettings) -> AdminTool:
        return psql(s.postgres_port, s.postgres_user, s.postgres_password, s.postgres_db)


SERVICE = Postgres()
