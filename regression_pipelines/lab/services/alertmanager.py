"""Alertmanager receiving the regression sensor's alerts; its default receiver is the lab webhook URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regression_pipelines.lab.files import service_dir, write_file
from regression_pipelines.lab.health import Probe, http_get, short
from regression_pipelines.lab.procs import spawn
from regression_pipelines.lab.render import render
from regression_pipelines.lab.service import AdminTool, Binary, LabService, PortClaim
from regression_pipelines.lab.settings import LAB_HOST, LabSettings
from regression_pipelines.lab.state import record_service

ALERTMANAGER = Binary(Path("/usr/bin/prometheus-alertmanager"), "prometheus-alertmanager")
AMTOOL = Binary(Path("/usr/bin/amtool"), "prometheus-alertmanager")
TEMPLATE = "alertmanager.yml.tmpl"


def alertmanager_yml(s: LabSettings) -> str:
    return render(TEMPLATE, webhook_url=s.alertmanager_webhook_url)


class Alertmanager(LabService):
    name = "alertmanager"
    binaries = (ALERTMANAGER,)
    templates = (TEMPLATE,)

    def port_claims(self, s: LabSettings) -> list[PortClaim]:
        return [PortClaim("alertmanager", s.alertmanager_port, "alertmanager_port")]

    def start(self, s: LabSettings, process: str) -> int:
        base = service_dir(s, "alertmanager")
        cfg = base / "alertmanager.yml"
        write_file(cfg, alertmanager_yml(s))
        argv = [
            str(ALERTMANAGER.path), f"--config.file={cfg}", f"--storage.path={base / 'data'}",
            # an empty cluster address: otherwise it also binds 0.0.0.0:9094 for gossip
            f"--web.listen-address={LAB_HOST}:{s.alertmanager_port}", "--cluster.listen-address=",
        ]  # fmt: skip
        pid = spawn(argv, base / "alertmanager.log")
        record_service(s, "alertmanager", pid=pid, ports={"http": s.alertmanager_port}, started_by_lab=True)
        return pid

    def probe(self, s: LabSettings, process: str) -> Probe:
        try:
            code, _ = http_get(f"http://{LAB_HOST}:{s.alertmanager_port}/-/ready")
            return code == 200, f"HTTP {code}"
        except Exception as exc:
            return False, short(exc)

    def admin_tool(self, s: LabSettings) -> AdminTool:
        argv = (str(AMTOOL.path), f"--alertmanager.url=http://{LAB_HOST}:{s.alertmanager_port}")
        return AdminTool(AMTOOL, argv, default_args=("alert", "query"))

    def endpoint(self, s: LabSettings) -> dict[str, Any]:
        return {"url": f"http://{LAB_HOST}:{s.alertmanager_port}", "webhook_url": s.alertmanager_webhook_url}


SERVICE = Alertmanager()
