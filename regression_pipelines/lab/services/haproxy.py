"""HAProxy in front of the Patroni cluster: rw port to the leader, ro port to the replicas, a stats page.

Ready only when checks (not HAProxy 2.6's optimistic initial state) show 1 primary and 2 replicas UP and
the rw port really reaches the leader.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from regression_pipelines.lab.files import service_dir, write_file
from regression_pipelines.lab.health import Probe, http_get, pg_query, port_open, short
from regression_pipelines.lab.procs import spawn
from regression_pipelines.lab.render import render
from regression_pipelines.lab.service import Binary, LabService, PortClaim
from regression_pipelines.lab.settings import LAB_HOST, LabSettings
from regression_pipelines.lab.state import record_service

HAPROXY = Binary(Path("/usr/sbin/haproxy"), "haproxy")
TEMPLATE = "haproxy.cfg.tmpl"


def haproxy_cfg(s: LabSettings) -> str:
    servers = "\n".join(
        f"    server {name} 127.0.0.1:{pg} maxconn 100 check port {rest}"
        for name, pg, rest in zip(s.patroni_members, s.patroni_pg_ports, s.patroni_rest_ports, strict=True)
    )
    return render(
        TEMPLATE,
        stats_port=s.haproxy_stats_port,
        rw_port=s.haproxy_rw_port,
        ro_port=s.haproxy_ro_port,
        primary_servers=servers,
        replica_servers=servers,
    )


def parse_haproxy_csv(text: str) -> list[dict[str, str]]:
    """Rows of HAProxy's `/;csv` stats page (header line starts with '# ')."""
    text = text.lstrip()
    if text.startswith("# "):
        text = text[2:]
    return [row for row in csv.DictReader(io.StringIO(text)) if row.get("pxname")]


def up_servers(rows: list[dict[str, str]], proxy: str) -> list[str]:
    """Servers of `proxy` that are UP by a passed check (HAProxy 2.6 shows unchecked servers UP too)."""
    return [
        r["svname"]
        for r in rows
        if r["pxname"] == proxy
        and r["svname"] not in ("FRONTEND", "BACKEND")
        and r.get("status", "").startswith("UP")
        and r.get("check_status", "") in ("L7OK", "L6OK", "L4OK")
    ]


def haproxy_routing_ok(rows: list[dict[str, str]], replicas: int = 2) -> Probe:
    primary, replica = up_servers(rows, "primary"), up_servers(rows, "replicas")
    ok = len(primary) == 1 and len(replica) == replicas
    return ok, f"primary UP {primary}, replicas UP {replica}"


def routing_ok(s: LabSettings) -> Probe:
    try:
        code, body = http_get(f"http://{LAB_HOST}:{s.haproxy_stats_port}/;csv")
        if code != 200:
            return False, f"stats HTTP {code}"
        ok, detail = haproxy_routing_ok(parse_haproxy_csv(body), len(s.patroni_members) - 1)
        if not ok:
            return False, detail
        in_recovery = pg_query(
            s.haproxy_rw_port, "postgres", s.patroni_superuser_password, "postgres", "SELECT pg_is_in_recovery()"
        )
        return (not in_recovery), detail + ("" if not in_recovery else "; rw port reached a replica")
    except Exception as exc:
        return False, short(exc)


class HAProxy(LabService):
    name = "haproxy"
    depends_on = ("patroni",)
    binaries = (HAPROXY,)
    templates = (TEMPLATE,)

    def port_claims(self, s: LabSettings) -> list[PortClaim]:
        return [
            PortClaim("haproxy", s.haproxy_rw_port, "haproxy_rw_port"),
            PortClaim("haproxy", s.haproxy_ro_port, "haproxy_ro_port"),
            PortClaim("haproxy", s.haproxy_stats_port, "haproxy_stats_port"),
        ]

    def start(self, s: LabSettings, process: str) -> int:
        base = service_dir(s, "haproxy")
        cfg = base / "haproxy.cfg"
        write_file(cfg, haproxy_cfg(s))
        pid = spawn([str(HAPROXY.path), "-db", "-f", str(cfg)], base / "haproxy.log")
        ports = {"rw": s.haproxy_rw_port, "ro": s.haproxy_ro_port, "stats": s.haproxy_stats_port}
        record_service(s, "haproxy", pid=pid, ports=ports, started_by_lab=True)
        return pid

    def probe(self, s: LabSettings, process: str) -> Probe:
        return port_open(s.haproxy_stats_port)

    def healthy(self, s: LabSettings, process: str) -> Probe:
        return routing_ok(s)

    def ready(self, s: LabSettings) -> Probe:
        return routing_ok(s)

    def endpoint(self, s: LabSettings) -> dict[str, Any]:
        return {
            "host": LAB_HOST,
            "rw_port": s.haproxy_rw_port,
            "ro_port": s.haproxy_ro_port,
            "stats_url": f"http://{LAB_HOST}:{s.haproxy_stats_port}/",
        }


SERVICE = HAProxy()
