"""etcd, the DCS of the lab's Patroni cluster (v2 API on too: Patroni 3.0 and patronictl use it)."""

from __future__ import annotations

import json
from pathlib import Path

from regression_pipelines.lab.files import service_dir
from regression_pipelines.lab.health import Probe, http_get, short
from regression_pipelines.lab.procs import spawn
from regression_pipelines.lab.service import AdminTool, Binary, LabService, PortClaim
from regression_pipelines.lab.settings import LAB_HOST, LabSettings
from regression_pipelines.lab.state import record_service

ETCD = Binary(Path("/usr/bin/etcd"), "etcd-server")
ETCDCTL = Binary(Path("/usr/bin/etcdctl"), "etcd-client")


class Etcd(LabService):
    name = "etcd"
    binaries = (ETCD,)

    def port_claims(self, s: LabSettings) -> list[PortClaim]:
        return [
            PortClaim("etcd", s.etcd_client_port, "etcd_client_port"),
            PortClaim("etcd", s.etcd_peer_port, "etcd_peer_port"),
        ]

    def start(self, s: LabSettings, process: str) -> int:
        base = service_dir(s, "etcd")
        name = s.lab_name
        client = f"http://{LAB_HOST}:{s.etcd_client_port}"
        peer = f"http://{LAB_HOST}:{s.etcd_peer_port}"
        argv = [
            str(ETCD.path), "--name", name, "--data-dir", str(base / "data"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"{name}={peer}", "--initial-cluster-token", name,
            "--initial-cluster-state", "new", "--enable-v2=true", "--logger", "zap", "--log-outputs", "stderr",
        ]  # fmt: skip
        pid = spawn(argv, base / "etcd.log")
        ports = {"client": s.etcd_client_port, "peer": s.etcd_peer_port}
        record_service(s, "etcd", pid=pid, ports=ports, started_by_lab=True)
        return pid

    def admin_tool(self, s: LabSettings) -> AdminTool:
        argv = (str(ETCDCTL.path), f"--endpoints=http://{LAB_HOST}:{s.etcd_client_port}")
        return AdminTool(ETCDCTL, argv, (("ETCDCTL_API", "3"),), default_args=("endpoint", "status", "-w", "table"))

    def probe(self, s: LabSettings, process: str) -> Probe:
        try:
            code, body = http_get(f"http://{LAB_HOST}:{s.etcd_client_port}/health")
            ok = code == 200 and json.loads(body).get("health") in ("true", True)
            return ok, "healthy" if ok else f"HTTP {code}"
        except Exception as exc:
            return False, short(exc)


SERVICE = Etcd()
