"""Redis without persistence (the cache areas' cache)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regression_pipelines.lab.files import service_dir
from regression_pipelines.lab.health import Probe, short
from regression_pipelines.lab.procs import spawn
from regression_pipelines.lab.service import AdminTool, Binary, LabService, PortClaim
from regression_pipelines.lab.settings import LAB_HOST, LabSettings
from regression_pipelines.lab.state import record_service

REDIS_SERVER = Binary(Path("/usr/bin/redis-server"), "redis-server")
REDIS_CLI = Binary(Path("/usr/bin/redis-cli"), "redis-tools")


class Redis(LabService):
    name = "redis"
    binaries = (REDIS_SERVER,)

    def port_claims(self, s: LabSettings) -> list[PortClaim]:
        return [PortClaim("redis", s.redis_port, "redis_port")]

    def start(self, s: LabSettings, process: str) -> int:
        base = service_dir(s, "redis")
        argv = [
            str(REDIS_SERVER.path), "--bind", LAB_HOST, "--port", str(s.redis_port),
            "--save", "", "--appendonly", "no", "--dir", str(base), "--daemonize", "no",
            "--protected-mode", "yes", "--logfile", "",
        ]  # fmt: skip
        pid = spawn(argv, base / "redis.log")
        record_service(s, "redis", pid=pid, ports={"redis": s.redis_port}, started_by_lab=True)
        return pid

    def probe(self, s: LabSettings, process: str) -> Probe:
        import redis

        try:
            client = redis.Redis(host=LAB_HOST, port=s.redis_port, socket_timeout=1, socket_connect_timeout=1)
            try:
                return bool(client.ping()), "PONG"
            finally:
                client.close()
        except Exception as exc:
            return False, short(exc)

    def endpoint(self, s: LabSettings) -> dict[str, Any]:
        return {"host": LAB_HOST, "port": s.redis_port}

    def admin_tool(self, s: LabSettings) -> AdminTool:
        argv = (str(REDIS_CLI.path), "-h", LAB_HOST, "-p", str(s.redis_port))
        return AdminTool(REDIS_CLI, argv, default_args=("INFO", "server"))


SERVICE = Redis()
