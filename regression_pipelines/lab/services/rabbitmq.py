"""The lab's own RabbitMQ broker (loopback, its own AMQP/dist ports and epmd), so destructive broker faults
only ever hit a broker the lab started. An outside broker is used only when REGRESS_LAB_RABBITMQ_REUSE
names one; the lab then starts no broker and refuses to restart or kill it (see lab.control)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regression_pipelines.lab.binaries import SETPRIV
from regression_pipelines.lab.files import chown_tree, service_dir, write_file
from regression_pipelines.lab.health import Probe, amqp_ok
from regression_pipelines.lab.procs import spawn
from regression_pipelines.lab.render import render
from regression_pipelines.lab.service import AdminTool, Binary, LabService, Outside, PortClaim
from regression_pipelines.lab.settings import LAB_HOST, LabSettings
from regression_pipelines.lab.state import record_service

RABBITMQ_SERVER = Binary(Path("/usr/lib/rabbitmq/bin/rabbitmq-server"), "rabbitmq-server")
# Not /usr/sbin/rabbitmqctl: that wrapper switches HOME to /var/lib/rabbitmq and misses the lab node's cookie.
RABBITMQCTL = Binary(Path("/usr/lib/rabbitmq/bin/rabbitmqctl"), "rabbitmq-server")
CONF_TEMPLATE = "rabbitmq.conf.tmpl"
ENV_TEMPLATE = "rabbitmq-env.conf.tmpl"


def rabbitmq_conf(s: LabSettings) -> str:
    return render(CONF_TEMPLATE, port=s.rabbitmq_port)


def rabbitmq_env(s: LabSettings) -> str:
    base = s.lab_dir / "rabbitmq"
    return render(
        ENV_TEMPLATE,
        nodename=s.rabbitmq_nodename,
        port=s.rabbitmq_port,
        dist_port=s.rabbitmq_dist_port,
        epmd_port=s.rabbitmq_epmd_port,
        config_file=base / "rabbitmq.conf",
        plugins_file=base / "enabled_plugins",
        mnesia_base=base / "mnesia",
        log_base=base / "log",
    )


def _process_env(s: LabSettings) -> dict[str, str]:
    base = s.lab_dir / "rabbitmq"
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": str(base / "home"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        # rabbitmq-server then execs the Erlang VM instead of waiting on it from a shell, so the recorded
        # PID is the broker itself (a kill of that PID is a real crash). The env file adds -noinput back.
        "RABBITMQ_ALLOW_INPUT": "true",
        "ERL_EPMD_ADDRESS": LAB_HOST,
        "ERL_EPMD_PORT": str(s.rabbitmq_epmd_port),
    }


class RabbitMQ(LabService):
    name = "rabbitmq"
    depends_on = ("epmd",)  # started on its port first; otherwise the VM would spawn an epmd no one tracks
    binaries = (RABBITMQ_SERVER, SETPRIV)
    templates = (CONF_TEMPLATE, ENV_TEMPLATE)
    stop_timeout = 30.0

    def port_claims(self, s: LabSettings) -> list[PortClaim]:
        return [
            PortClaim("rabbitmq", s.rabbitmq_port, "rabbitmq_port"),
            PortClaim("rabbitmq", s.rabbitmq_dist_port, "rabbitmq_dist_port"),
        ]

    def start(self, s: LabSettings, process: str) -> int:
        base = service_dir(s, "rabbitmq", "rabbitmq")
        for sub in ("home", "mnesia", "log"):
            (base / sub).mkdir(exist_ok=True)
        write_file(base / "rabbitmq-env.conf", rabbitmq_env(s), user="rabbitmq")
        write_file(base / "rabbitmq.conf", rabbitmq_conf(s), user="rabbitmq")
        write_file(base / "enabled_plugins", "[].\n", user="rabbitmq")
        chown_tree(base, "rabbitmq")
        argv = [str(RABBITMQ_SERVER.path)]
        pid = spawn(argv, base / "rabbitmq.log", user="rabbitmq", env=_process_env(s), cwd=base)
        ports = {"amqp": s.rabbitmq_port, "dist": s.rabbitmq_dist_port}
        record_service(
            s, "rabbitmq", pid=pid, ports=ports, started_by_lab=True, mode="started", nodename=s.rabbitmq_nodename
        )
        return pid

    def probe(self, s: LabSettings, process: str) -> Probe:
        return amqp_ok(s.rabbitmq_port, s.rabbitmq_user, s.rabbitmq_password)

    def ready(self, s: LabSettings) -> Probe:
        outside = self.outside(s)
        if outside is None:
            return self.probe(s, self.name)
        return amqp_ok(outside.port, s.rabbitmq_user, s.rabbitmq_password, host=outside.host)

    def outside(self, s: LabSettings) -> Outside | None:
        reuse = s.rabbitmq_reuse_address
        return Outside(reuse[0], reuse[1], "rabbitmq_reuse") if reuse else None

    def admin_tool(self, s: LabSettings) -> AdminTool | None:
        """rabbitmqctl against the lab's node: its name, cookie (HOME), env file and epmd port, as rabbitmq."""
        if self.outside(s) is not None:
            return None  # an outside broker: use its own tools with its own cookie
        env = tuple((k, v) for k, v in _process_env(s).items() if k != "RABBITMQ_ALLOW_INPUT")
        argv = (str(RABBITMQCTL.path), "-n", s.rabbitmq_nodename)
        return AdminTool(RABBITMQCTL, argv, env, "rabbitmq", ("status",))

    def endpoint(self, s: LabSettings) -> dict[str, Any]:
        outside = self.outside(s)
        host, port = (outside.host, outside.port) if outside else (LAB_HOST, s.rabbitmq_port)
        return {"host": host, "port": port, "user": s.rabbitmq_user, "reused": outside is not None}


SERVICE = RabbitMQ()
