"""The Erlang port mapper for the lab's RabbitMQ, on its own port: the machine's epmd (4369) is never
used or stopped, and `down` stops this one by PID (epmd outlives the broker otherwise)."""

from __future__ import annotations

from pathlib import Path

from regression_pipelines.lab.binaries import SETPRIV
from regression_pipelines.lab.files import service_dir
from regression_pipelines.lab.health import Probe, port_open
from regression_pipelines.lab.procs import spawn
from regression_pipelines.lab.service import AdminTool, Binary, LabService, PortClaim
from regression_pipelines.lab.settings import LAB_HOST, LabSettings
from regression_pipelines.lab.state import record_service

EPMD = Binary(Path("/usr/bin/epmd"), "erlang-base (pulled in by rabbitmq-server)")


class Epmd(LabService):
    name = "epmd"
    binaries = (EPMD, SETPRIV)

    def port_claims(self, s: LabSettings) -> list[PortClaim]:
        return [PortClaim("epmd", s.rabbitmq_epmd_port, "rabbitmq_epmd_port")]

    def start(self, s: LabSettings, process: str) -> int:
        base = service_dir(s, "epmd")
        argv = [str(EPMD.path), "-port", str(s.rabbitmq_epmd_port), "-address", LAB_HOST]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(base), "LANG": "C.UTF-8"}
        pid = spawn(argv, base / "epmd.log", user="rabbitmq", env=env)
        record_service(s, "epmd", pid=pid, ports={"epmd": s.rabbitmq_epmd_port}, started_by_lab=True)
        return pid

    def probe(self, s: LabSettings, process: str) -> Probe:
        return port_open(s.rabbitmq_epmd_port)

    def admin_tool(self, s: LabSettings) -> AdminTool:
        env = (("ERL_EPMD_ADDRESS", LAB_HOST),)
        return AdminTool(EPMD, (str(EPMD.path), "-port", str(s.rabbitmq_epmd_port)), env, default_args=("-names",))


SERVICE = Epmd()
