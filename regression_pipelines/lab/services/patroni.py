"""The Patroni cluster: members pg0..pg2 (one process each, state entries `patroni-<member>`) over the
lab's etcd, each managing its own PostgreSQL 15. Ready means 1 leader + 2 streaming replicas."""

from __future__ import annotations

import json
import os
import pwd
import signal
from pathlib import Path
from typing import Any

from regression_pipelines.lab.binaries import INITDB, PG_BIN, POSTGRES, SETPRIV
from regression_pipelines.lab.files import service_dir, write_file
from regression_pipelines.lab.health import Probe, http_get, pg_query, short
from regression_pipelines.lab.pg_roles import ensure_regress_role
from regression_pipelines.lab.procs import cmdline, is_alive, read_pidfile_pid, spawn
from regression_pipelines.lab.render import render
from regression_pipelines.lab.service import AdminTool, Binary, LabService, Leftover, PortClaim
from regression_pipelines.lab.settings import LAB_HOST, LabSettings
from regression_pipelines.lab.state import record_service

PATRONI = Binary(Path("/usr/bin/patroni"), "patroni")
PATRONICTL = Binary(Path("/usr/bin/patronictl"), "patroni")
TEMPLATE = "patroni.yml.tmpl"
PREFIX = "patroni-"


def member_dir(s: LabSettings, member: str) -> Path:
    return s.lab_dir / "patroni" / member


def config_path(s: LabSettings, member: str) -> Path:
    return member_dir(s, member) / "patroni.yml"


def patroni_yml(s: LabSettings, index: int) -> str:
    member = s.patroni_members[index]
    mdir = member_dir(s, member)
    return render(
        TEMPLATE,
        scope=s.lab_name,
        name=member,
        rest_port=s.patroni_rest_ports[index],
        pg_port=s.patroni_pg_ports[index],
        etcd_client_port=s.etcd_client_port,
        synchronous_mode="true" if s.patroni_synchronous_mode else "false",
        data_dir=mdir / "data",
        bin_dir=PG_BIN,
        pgpass=mdir / "pgpass",
        socket_dir=mdir,
        superuser_password=s.patroni_superuser_password,
        replication_password=s.patroni_replication_password,
    )


def member_document(s: LabSettings, index: int) -> dict[str, Any] | None:
    """The member's GET /patroni document (role, state, ...), or None if it does not answer."""
    try:
        code, body = http_get(f"http://{LAB_HOST}:{s.patroni_rest_ports[index]}/patroni")
        return json.loads(body) if code in (200, 503) else None
    except Exception:
        return None


def member_running(s: LabSettings, index: int) -> Probe:
    doc = member_document(s, index)
    if doc is None:
        return False, "REST API not answering"
    return doc.get("state") == "running", f"{doc.get('role', '?')} {doc.get('state', '?')}"


def leader_index(s: LabSettings) -> int | None:
    for i in range(len(s.patroni_members)):
        doc = member_document(s, i)
        if doc and doc.get("role") in ("master", "primary") and doc.get("state") == "running":
            return i
    return None


def cluster_ok(s: LabSettings) -> Probe:
    """1 leader and 2 replicas streaming (Patroni 3.0.2 has no 'streaming' state: ask the leader)."""
    return _leader_and_cluster(s)[1]


def _leader_and_cluster(s: LabSettings) -> tuple[int | None, Probe]:
    leader = leader_index(s)
    if leader is None:
        return None, (False, "no leader")
    try:
        streaming = pg_query(
            s.patroni_pg_ports[leader],
            "postgres",
            s.patroni_superuser_password,
            "postgres",
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
        )
    except Exception as exc:
        return leader, (False, short(exc))
    want = len(s.patroni_members) - 1
    return leader, (streaming == want, f"leader {s.patroni_members[leader]}, {streaming}/{want} streaming")


def postmaster_pid(s: LabSettings, member: str) -> int | None:
    """PID of the member's postmaster (first line of postmaster.pid), if that process is alive."""
    pid = read_pidfile_pid(member_dir(s, member) / "data" / "postmaster.pid")
    if pid is None or not is_alive(pid):
        return None
    args = " ".join(cmdline(pid))  # guards against a recycled PID
    if "postgres" not in args and "postmaster" not in args:
        return None
    return pid


class Patroni(LabService):
    name = "patroni"
    depends_on = ("etcd",)
    binaries = (PATRONI, POSTGRES, INITDB, SETPRIV)
    templates = (TEMPLATE,)
    stop_timeout = 30.0

    def processes(self, s: LabSettings) -> tuple[str, ...]:
        return tuple(PREFIX + m for m in s.patroni_members)

    def _index(self, s: LabSettings, process: str) -> int:
        return s.patroni_members.index(process.removeprefix(PREFIX))

    def port_claims(self, s: LabSettings) -> list[PortClaim]:
        out = []
        for process, pg, rest in zip(self.processes(s), s.patroni_pg_ports, s.patroni_rest_ports, strict=True):
            out += [PortClaim(process, pg, "patroni_pg_ports"), PortClaim(process, rest, "patroni_rest_ports")]
        return out

    def start(self, s: LabSettings, process: str) -> int:
        index = self._index(s, process)
        member = s.patroni_members[index]
        service_dir(s, "patroni", "postgres")
        mdir = member_dir(s, member)
        mdir.mkdir(parents=True, exist_ok=True)
        pw = pwd.getpwnam("postgres")
        os.chown(mdir, pw.pw_uid, pw.pw_gid)
        cfg = config_path(s, member)
        write_file(cfg, patroni_yml(s, index), user="postgres", mode=0o600)  # holds the passwords
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(mdir),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        pid = spawn([str(PATRONI.path), str(cfg)], mdir / "patroni.log", user="postgres", env=env, cwd=mdir)
        ports = {"pg": s.patroni_pg_ports[index], "rest": s.patroni_rest_ports[index]}
        record_service(s, process, pid=pid, ports=ports, started_by_lab=True, member=member)
        return pid

    def probe(self, s: LabSettings, process: str) -> Probe:
        doc = member_document(s, self._index(s, process))
        return doc is not None, f"{doc.get('role')} {doc.get('state')}" if doc else "REST API not answering"

    def healthy(self, s: LabSettings, process: str) -> Probe:
        return member_running(s, self._index(s, process))

    def ready(self, s: LabSettings) -> Probe:
        """The cluster streams, and the login role exists on the leader (reachable through HAProxy later)."""
        leader, (ok, detail) = _leader_and_cluster(s)
        if not ok or leader is None:
            return False, detail
        try:
            port = s.patroni_pg_ports[leader]
            ensure_regress_role(LAB_HOST, port, s.patroni_superuser_password, s)
            pg_query(port, s.postgres_user, s.postgres_password, s.postgres_db, "SELECT 1")
        except Exception as exc:
            return False, f"login role: {short(exc)}"
        return True, detail

    def summary(self, s: LabSettings) -> Probe:
        return cluster_ok(s)

    def admin_tool(self, s: LabSettings) -> AdminTool:
        """patronictl with the first member's config (etcd address and scope), as the postgres user."""
        config = config_path(s, s.patroni_members[0])
        env = (("HOME", str(member_dir(s, s.patroni_members[0]))), ("LANG", "C.UTF-8"), ("LC_ALL", "C.UTF-8"))
        return AdminTool(PATRONICTL, (str(PATRONICTL.path), "-c", str(config)), env, "postgres", ("list",))

    def endpoint(self, s: LabSettings) -> dict[str, Any]:
        return {
            "scope": s.lab_name,
            "etcd_url": f"http://{LAB_HOST}:{s.etcd_client_port}",
            "members": [
                {"name": name, "pg_port": pg, "rest_url": f"http://{LAB_HOST}:{rest}", "rest_port": rest}
                for name, pg, rest in zip(s.patroni_members, s.patroni_pg_ports, s.patroni_rest_ports, strict=True)
            ],
            "superuser": "postgres",
            "user": s.postgres_user,
            "dbname": s.postgres_db,
        }

    def leftovers(self, s: LabSettings) -> list[Leftover]:
        """Members' postmasters: once their Patroni is gone, one still alive is an orphan (Patroni was killed)."""
        out = []
        for index, member in enumerate(s.patroni_members):
            if pid := postmaster_pid(s, member):
                out.append(Leftover(f"postmaster of {member}", pid, (s.patroni_pg_ports[index],), signal.SIGINT))
        return out


SERVICE = Patroni()
