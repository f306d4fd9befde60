"""Which ports the lab needs, whether they clash with each other or with the default lab's, and whether
something that is not the lab already holds one (and which process it is)."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterable
from dataclasses import fields

from regression_pipelines.lab.errors import PortConflictError, PortLayoutError
from regression_pipelines.lab.procs import describe_listener
from regression_pipelines.lab.service import PortClaim
from regression_pipelines.lab.services import all_services
from regression_pipelines.lab.settings import (
    LAB_HOST,
    OFFSET_ENV,
    SERVE_GRPC_BASE_PORT,
    SERVE_WEBSERVER_BASE_PORT,
    LabSettings,
    _env_int,
)

OFFSETS_TRIED = range(100, 10_001, 100)  # where a refused offset's suggestion comes from


def env_var(setting: str) -> str:
    return "REGRESS_LAB_" + setting.upper()


def claims(settings: LabSettings) -> list[PortClaim]:
    """Every port of every registered lab service (callers keep only the processes they will start)."""
    return [claim for svc in all_services() for claim in svc.port_claims(settings)]


def layout(settings: LabSettings, offset: int, from_env: bool = True) -> list[PortClaim]:
    """Every port the lab (and `regress serve`, and the alert webhook receiver) uses with these settings
    (`from_env`: REGRESS_SERVE_* apply; the default lab's layout is compared without them)."""
    web, grpc = "REGRESS_SERVE_WEBSERVER_PORT", "REGRESS_SERVE_GRPC_PORT"
    serve_web, serve_grpc = SERVE_WEBSERVER_BASE_PORT + offset, SERVE_GRPC_BASE_PORT + offset
    extra = [
        PortClaim("regress serve webserver", _env_int(web, serve_web) if from_env else serve_web, web),
        PortClaim("regress serve code server", _env_int(grpc, serve_grpc) if from_env else serve_grpc, grpc),
    ]
    if settings.alertmanager_webhook_url == f"http://{LAB_HOST}:{settings.alertmanager_port + 1}/alerts":
        extra.append(PortClaim("alert webhook receiver", settings.alertmanager_port + 1, "alertmanager_port"))
    return claims(settings) + extra


def _name(claim: PortClaim) -> str:
    return f"{claim.service} ({claim.setting})"


def layout_problems(settings: LabSettings, offset: int) -> list[str]:
    """Clashes within the layout, out-of-range ports, and (for a non-zero offset) ports of the default lab."""
    ports = layout(settings, offset)
    problems = [f"{_name(c)} port {c.port} is not a TCP port" for c in ports if not 0 < c.port < 65536]
    seen: dict[int, PortClaim] = {}
    for claim in ports:
        first = seen.setdefault(claim.port, claim)
        if first is not claim and (first.service, first.setting) != (claim.service, claim.setting):
            problems.append(f"port {claim.port} would be both {_name(first)} and {_name(claim)}")
    if offset:
        default = {c.port: c for c in layout(LabSettings(), 0, from_env=False)}
        problems += [
            f"{_name(c)} port {c.port} is the default lab's {_name(default[c.port])} port"
            for c in ports
            if c.port in default
        ]
    return problems


def check_layout(settings: LabSettings, offset: int) -> None:
    """Refuse a port layout that clashes (PortLayoutError naming every clash and a working offset)."""
    problems = layout_problems(settings, offset)
    if not problems:
        return
    fine = next((o for o in OFFSETS_TRIED if not layout_problems(_shifted(o), o)), None)
    hint = f"choose another {OFFSET_ENV}" + (f" (e.g. {fine})" if fine else "")
    raise PortLayoutError(
        f"{OFFSET_ENV}={offset}: the lab's ports clash: {'; '.join(problems)}. Fix: {hint}, or move the named "
        "ports with their REGRESS_LAB_<SETTING> variables"
    )


def _shifted(offset: int) -> LabSettings:
    base = LabSettings()
    shifted = {
        f.name: getattr(base, f.name) + offset
        if isinstance(getattr(base, f.name), int) and not isinstance(getattr(base, f.name), bool)
        else tuple(p + offset for p in getattr(base, f.name))
        for f in fields(base)
        if isinstance(getattr(base, f.name), (int, tuple)) and not isinstance(getattr(base, f.name), bool)
    }
    return LabSettings(**shifted)  # type: ignore[arg-type]


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
    lines = []
    for c in conflicts:
        holder = describe_listener(c.port)
        by = f"another process ({holder})" if holder else "another process"
        lines.append(
            f"port {c.port} for {c.service} is already in use by {by}; set {env_var(c.setting)} or {OFFSET_ENV}"
        )
    return "\n".join(lines)


def ensure_free(wanted: Iterable[PortClaim], in_use: Callable[[int], bool] = port_in_use) -> None:
    """Raise PortConflictError naming every taken port, its service and the setting to change."""
    conflicts = find_conflicts(wanted, in_use)
    if conflicts:
        raise PortConflictError(conflict_message(conflicts))
