"""Which ports the lab needs, and whether something that is not the lab already holds one."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterable

from regression_pipelines.lab.errors import PortConflictError
from regression_pipelines.lab.service import PortClaim
from regression_pipelines.lab.services import all_services
from regression_pipelines.lab.settings import LAB_HOST, LabSettings


def env_var(setting: str) -> str:
    return "REGRESS_LAB_" + setting.upper()


def claims(settings: LabSettings) -> list[PortClaim]:
    """Every port of every registered lab service (callers keep only the processes they will start)."""
    return [claim for svc in all_services() for claim in svc.port_claims(settings)]


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
