"""A Citus cluster (coordinator + 2 workers, PostgreSQL 15) for the sharding areas; optional.

Debian has no Citus package: the lab runs a private install, a copy of PostgreSQL 15 with one Citus release in
it (`make citus`, regression_pipelines.matrix.citus_install), of the release `citus_version` names
(REGRESS_LAB_CITUS_VERSION, default the pinned one). Versions live side by side, each with its own data folders
(`.lab/citus/<version>/`); `up` with another version stops the nodes running the old one and starts the new
(the probe compares each node's running binary with the install asked for). Without a build `up` skips the
service and `status` says how to get one. `citus_version=system` runs the machine's own PostgreSQL 15 when Citus
was `make install`ed into it. Citus connects between nodes with SSL and the current role's password: every node
runs with HOME and PGPASSFILE in its own folder (readable by postgres), holding the lab role's and the
superuser's passwords.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import Any

from regression_pipelines.lab.binaries import INITDB, POSTGRES, SETPRIV
from regression_pipelines.lab.errors import LabError
from regression_pipelines.lab.files import service_dir, write_file
from regression_pipelines.lab.health import Probe, pg_query, short
from regression_pipelines.lab.pg_roles import ensure_regress_role
from regression_pipelines.lab.pg_server import initdb_once, postgres_argv
from regression_pipelines.lab.procs import spawn
from regression_pipelines.lab.service import AdminTool, LabService, PortClaim, psql
from regression_pipelines.lab.settings import LAB_HOST, LabSettings
from regression_pipelines.lab.state import read_state, record_service
from regression_pipelines.matrix import citus_install

NODES = ("citus-coordinator", "citus-worker1", "citus-worker2")
SYSTEM = "system"  # citus_version for Citus `make install`ed into the machine's own PostgreSQL 15


def install_hint(version: str) -> str:
    return (
        f"Debian has no Citus package: `make citus` builds citus {version} privately (from citus-{version}.tar.gz "
        f"in {citus_install.SOURCES_ENV}, else the release download), then `regress lab up citus` (README, Citus)"
    )


def resolve(version: str) -> citus_install.CitusInstall | None:
    """The install the lab runs for this version: a private build, or the system's PostgreSQL with Citus."""
    if version == SYSTEM:
        system = citus_install.CitusInstall(SYSTEM, Path("/"))
        return system if (system.extension_dir / "citus.control").is_file() else None
    return citus_install.find_install(version)


def _wanted(s: LabSettings) -> citus_install.CitusInstall:
    install = resolve(s.citus_version)
    if install is None:
        raise LabError(f"citus {s.citus_version} is not installed. {install_hint(s.citus_version)}")
    return install


def node_dir(s: LabSettings, process: str) -> Path:
    """Each version keeps its own data folders, so switching versions never reuses another's catalog."""
    return s.lab_dir / "citus" / s.citus_version / process.removeprefix("citus-")


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
        """PostgreSQL 15 is installed and so is the Citus release REGRESS_LAB_CITUS_VERSION names."""
        ok, reason = super().available()
        if not ok:
            return ok, reason
        version = LabSettings.from_env().citus_version
        install = resolve(version)
        if install is None:
            where = "/usr/share/postgresql/15/extension" if version == SYSTEM else citus_install.cache_root()
            return False, f"not installed (no build of citus {version} in {where}). {install_hint(version)}"
        return True, f"citus {version} ({install.root})"

    def processes(self, s: LabSettings) -> tuple[str, ...]:
        return NODES

    def port_claims(self, s: LabSettings) -> list[PortClaim]:
        return [PortClaim(p, _port(s, p), "citus_ports") for p in NODES]

    def admin_tool(self, s: LabSettings) -> AdminTool:
        """psql on the coordinator, as the lab's role."""
        return psql(s.citus_ports[0], s.postgres_user, s.postgres_password, s.postgres_db)

    def start(self, s: LabSettings, process: str) -> int:
        service_dir(s, "citus", "postgres")
        base = node_dir(s, process)
        base.mkdir(parents=True, exist_ok=True)
        shutil.chown(base, "postgres", "postgres")
        install = _wanted(s)
        data = base / "data"
        initdb_once(data, install.initdb)
        passfile = base / "pgpass"
        # Any host: Citus reaches itself as citus.local_hostname ('localhost') during logical shard moves.
        lines = [f"*:*:*:{s.postgres_user}:{s.postgres_password}", f"*:*:*:postgres:{s.citus_superuser_password}"]
        write_file(passfile, "\n".join(lines) + "\n", user="postgres", mode=0o600)
        argv = postgres_argv(
            data, _port(s, process), base,
            "shared_preload_libraries=citus", "wal_level=logical", "max_prepared_transactions=100",
            "max_connections=200",
            # A peer's half-open connection (a Citus backend or maintenance daemon that opened a socket mid-job and
            # never sent its startup packet) keeps a "dead-end" child alive for authentication_timeout (60 s by
            # default), and a fast shutdown waits for it: a worker restart mid repartition join took past the 15 s
            # stop timeout 2 times in 8, was SIGKILLed, and the restart then failed on the leftover children.
            "authentication_timeout=5s", postgres=install.postgres,
        )  # fmt: skip
        env = {"PATH": "/usr/bin:/bin", "HOME": str(base), "PGPASSFILE": str(passfile), "LANG": "C.UTF-8"}
        pid = spawn(argv, base / "postgres.log", user="postgres", env=env)
        record_service(
            s, process, pid=pid, ports={"pg": _port(s, process)}, started_by_lab=True,
            citus_version=s.citus_version, install=str(install.root),
        )  # fmt: skip
        return pid

    def probe(self, s: LabSettings, process: str) -> Probe:
        """The node answers and runs the install asked for (else `up` restarts it from the right one)."""
        runs = _running_binary(s, process)
        wanted = resolve(s.citus_version)
        if runs is not None and wanted is not None and runs != wanted.postgres.resolve():
            return False, f"runs {runs}, not citus {s.citus_version} ({wanted.postgres})"
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
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') "
                "THEN split_part(citus_version(), ' ', 2) END",
            )  # fmt: skip
        except Exception as exc:
            return False, short(exc)
        if version is None:
            return False, "no citus extension"
        install = (read_state(s)["services"].get(process) or {}).get("install", "")
        return True, f"citus {version}" + (f" ({install})" if install else "")

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
            "citus_version": s.citus_version,
        }

    def folder(self, s: LabSettings) -> Path:
        return s.lab_dir / "citus"


def _running_binary(s: LabSettings, process: str) -> Path | None:
    """The executable of the node's recorded process (None when it is not running or not ours to read)."""
    pid = (read_state(s)["services"].get(process) or {}).get("pid")
    try:
        return Path(f"/proc/{int(pid)}/exe").resolve(strict=True) if pid else None
    except (OSError, ValueError):
        return None


SERVICE = Citus()
