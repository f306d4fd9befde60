"""A Citus cluster (coordinator + 2 workers, PostgreSQL 15) for the sharding area; optional.

Debian has no Citus package, so the service is available only when the citus extension is installed for the
lab's PostgreSQL 15 (`citus.control` in `citus_extension_dir`); otherwise `up` skips it and `status` says how
to get it. Citus connects between nodes with SSL and the current role's password: every node runs with HOME
and PGPASSFILE in its own folder (readable by postgres), holding the lab role's and the superuser's passwords.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import Any

from regression_pipelines.lab.binaries import INITDB, POSTGRES, SETPRIV
from regression_pipelines.lab.files import service_dir, write_file
from regression_pipelines.lab.health import Probe, pg_query, short
from regression_pipelines.lab.pg_roles import ensure_regress_role
from regression_pipelines.lab.pg_server import initdb_once, postgres_argv
from regression_pipelines.lab.procs import spawn
from regression_pipelines.lab.service import LabService, PortClaim
from regression_pipelines.lab.settings import LAB_HOST, LabSettings
from regression_pipelines.lab.state import record_service

NODES = ("citus-coordinator", "citus-worker1", "citus-worker2")
INSTALL_HINT = (
    "Debian has no Citus package: build Citus 13.x (the last line for PostgreSQL 15) from source and "
    "`make install` it, then `regress lab up citus` (see README, Citus)"
)


def node_dir(s: LabSettings, process: str) -> Path:
    return s.lab_dir / "citus" / process.removeprefix("citus-")


def _port(s: LabSettings, process: str) -> int:
    return s.citus_ports[NODES.index(process)]


def _admin(s: LabSettings, process: str, statements: list[tuple[Any, tuple[Any, ...]]]) -> list[Any]:
    """Run statements as postgres over the node's socket (trusted) in the lab database; first column of each."""
    import psycopg

    out = []
    with psycopg.connect(
        host=str(node_dir(s, process)), port=_port(s, process), user="postgres", dbname=s.postgres_db,
        autocommit=True, connect_timeout=3,
    ) as conn:  # fmt: skip
        for sql, params in statements:
            cur = conn.execute(sql, params) if params else conn.execute(sql)
            row = cur.fetchone() if cur.description else None
            out.append(row[0] if row else None)
    return out


class Citus(LabService):
    name = "citus"
    binaries = (POSTGRES, INITDB, SETPRIV)
    optional = True
    stop_signal = signal.SIGINT  # fast shutdown

    def available(self) -> tuple[bool, str]:
        """PostgreSQL 15 is installed and so is the citus extension (REGRESS_LAB_CITUS_EXTENSION_DIR)."""
        ok, reason = super().available()
        if not ok:
            return ok, reason
        control = Path(LabSettings.from_env().citus_extension_dir) / "citus.control"
        if not control.is_file():
            return False, f"not installed (no {control}). {INSTALL_HINT}"
        return True, "installed"

    def processes(self, s: LabSettings) -> tuple[str, ...]:
        return NODES

    def port_claims(self, s: LabSettings) -> list[PortClaim]:
        return [PortClaim(p, _port(s, p), "citus_ports") for p in NODES]

    def start(self, s: LabSettings, process: str) -> int:
        service_dir(s, "citus", "postgres")
        base = node_dir(s, process)
        base.mkdir(parents=True, exist_ok=True)
        shutil.chown(base, "postgres", "postgres")
        data = base / "data"
        initdb_once(data)
        passfile = base / "pgpass"
        # Any host: Citus reaches itself as citus.local_hostname ('localhost') during logical shard moves.
        lines = [f"*:*:*:{s.postgres_user}:{s.postgres_password}", f"*:*:*:postgres:{s.citus_superuser_password}"]
        write_file(passfile, "\n".join(lines) + "\n", user="postgres", mode=0o600)
        argv = postgres_argv(
            data, _port(s, process), base,
            "shared_preload_libraries=citus", "wal_level=logical", "max_prepared_transactions=100",
            "max_connections=200",
        )  # fmt: skip
        env = {"PATH": "/usr/bin:/bin", "HOME": str(base), "PGPASSFILE": str(passfile), "LANG": "C.UTF-8"}
        pid = spawn(argv, base / "postgres.log", user="postgres", env=env)
        record_service(s, process, pid=pid, ports={"pg": _port(s, process)}, started_by_lab=True)
        return pid

    def probe(self, s: LabSettings, process: str) -> Probe:
        try:
            pg_query(_port(s, process), s.postgres_user, s.postgres_password, s.postgres_db, "SELECT 1")
            return True, "query ok"
        except Exception as exc:
            return False, short(exc)

    def healthy(self, s: LabSettings, process: str) -> Probe:
        ok, detail = self.probe(s, process)
        if not ok:
            return ok, detail
        try:
            version = pg_query(
                _port(s, process), s.postgres_user, s.postgres_password, s.postgres_db,
                "SELECT extversion FROM pg_extension WHERE extname = 'citus'",
            )  # fmt: skip
        except Exception as exc:
            return False, short(exc)
        return version is not None, f"citus {version}" if version else "no citus extension"

    def ready(self, s: LabSettings) -> Probe:
        """Every node has the lab role, its database and the extension; the coordinator knows both workers."""
        from psycopg import sql

        set_password = sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(s.citus_superuser_password))
        try:
            for process in NODES:
                ensure_regress_role(str(node_dir(s, process)), _port(s, process), None, s)
                _admin(s, process, [(set_password, ()), ("CREATE EXTENSION IF NOT EXISTS citus", ())])
            coordinator = NODES[0]
            steps: list[tuple[Any, tuple[Any, ...]]] = [
                (
                    "SELECT citus_set_coordinator_host(%s, %s) WHERE NOT EXISTS "
                    "(SELECT 1 FROM pg_dist_node WHERE groupid = 0)",
                    (LAB_HOST, _port(s, coordinator)),
                )
            ]
            for worker in NODES[1:]:
                steps.append(
                    (
                        "SELECT citus_add_node(%s, %s) WHERE NOT EXISTS "
                        "(SELECT 1 FROM pg_dist_node WHERE nodename = %s AND nodeport = %s)",
                        (LAB_HOST, _port(s, worker), LAB_HOST, _port(s, worker)),
                    )
                )
            steps.append(("SELECT count(*) FROM pg_dist_node WHERE isactive AND noderole = 'primary'", ()))
            nodes = _admin(s, coordinator, steps)[-1]
        except Exception as exc:
            return False, short(exc)
        if nodes != len(NODES):
            return False, f"{nodes}/{len(NODES)} nodes active"
        return self.healthy(s, coordinator)[0], f"coordinator + {len(NODES) - 1} workers active"

    def summary(self, s: LabSettings) -> Probe:
        """Every node reaches every other (citus_check_cluster_node_health on the coordinator)."""
        try:
            passing = pg_query(
                s.citus_ports[0], s.postgres_user, s.postgres_password, s.postgres_db,
                "SELECT count(*) FILTER (WHERE result) || '/' || count(*) FROM citus_check_cluster_node_health()",
            )  # fmt: skip
        except Exception as exc:
            return False, short(exc)
        ok, total = str(passing).split("/")
        return ok == total, f"{passing} node-to-node checks pass"

    def endpoint(self, s: LabSettings) -> dict[str, Any]:
        return {
            "host": LAB_HOST,
            "port": s.citus_ports[0],
            "worker_ports": list(s.citus_ports[1:]),
            "user": s.postgres_user,
            "dbname": s.postgres_db,
            "superuser": "postgres",
        }

    def folder(self, s: LabSettings) -> Path:
        return s.lab_dir / "citus"


SERVICE = Citus()
