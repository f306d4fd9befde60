"""Which ports the lab needs, and whether something that is not the lab already holds one."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from regression_pipelines.lab.errors import PortConflictError
from regression_pipelines.lab.settings import LAB_HOST, LabSettings


@dataclass(frozen=True)
class PortClaim:
    service: str  # state/service name, e.g. "redis", "patroni-pg1"
    port: int
    setting: str  # LabSettings field that sets it


def env_var(setting: str) -> str:
    return "REGRESS_LAB_" + setting.upper()


def claims(settings: LabSettings) -> list[PortClaim]:
    """Every port each lab service binds (RabbitMQ's only matter when the lab starts its own)."""
    s = settings
    out = [
        PortClaim("postgres", s.postgres_port, "postgres_port"),
        PortClaim("etcd", s.etcd_client_port, "etcd_client_port"),
        PortClaim("etcd", s.etcd_peer_port, "etcd_peer_port"),
    ]
    for i, name in enumerate(s.patroni_members):
        out.append(PortClaim(f"patroni-{name}", s.patroni_pg_ports[i], "patroni_pg_ports"))
        out.append(PortClaim(f"patroni-{name}", s.patroni_rest_ports[i], "patroni_rest_ports"))
    out += [
        PortClaim("haproxy", s.haproxy_rw_port, "haproxy_rw_port"),
        PortClaim("haproxy", s.haproxy_ro_port, "haproxy_ro_port"),
        PortClaim("haproxy", s.haproxy_stats_port, "haproxy_stats_port"),
        PortClaim("redis", s.redis_port, "redis_port"),
        PortClaim("rabbitmq", s.rabbitmq_port, "rabbitmq_port"),
        PortClaim("rabbitmq", s.rabbitmq_dist_port, "rabbitmq_dist_port"),
        PortClaim("epmd", s.rabbitmq_epmd_port, "rabbitmq_epmd_port"),
        PortClaim("alertmanager", s.alertmanager_port, "alertmanager_port"),
    ]
    return out


def port_in_use(port: int, host: str = LAB_HOST) -> bool:
    """True if binding host:port fails with EADDRINUSE (also catches listeners on 0.0.0.0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def find_conflicts(wanted: Iterable[PortClaim], in_use: Callable[[int], bool] = port_in_use) -> list[PortClaim]:
    """The claims whose port is taken. Callers pass only the services they are about to start."""
    return [c for c in wanted if in_use(c.port)]


def conflict_message(conflicts: list[PortClaim]) -> str:
    lines = [
        f"port {c.port} for {c.service} is already in use by another process; "
        f"set {env_var(c.setting)} or REGRESS_LAB_PORT_OFFSET"
        for c in conflicts
    ]
    return "\n".join(lines)


def ensure_free(wanted: Iterable[PortClaim], in_use: Callable[[int], bool] = port_in_use) -> None:
    """Raise PortConflictError naming every taken port, its service and the setting to change."""
    conflicts = find_conflicts(wanted, in_use)
    if conflicts:
        raise PortConflictError(conflict_message(conflicts))
