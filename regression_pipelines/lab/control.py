"""Destructive control of one lab service (restart, kill) for fault scenarios such as "broker restart
mid-run". Refuses, touching nothing, whatever the lab did not start: an outside server it was configured
to reuse, or a service with no lab-started process on record."""

from __future__ import annotations

import signal

from regression_pipelines.lab import services
from regression_pipelines.lab.errors import LabError, NotLabOwnedError
from regression_pipelines.lab.lifecycle import wait_ready
from regression_pipelines.lab.ports import ensure_free, env_var, port_in_use
from regression_pipelines.lab.procs import stop
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.lab.state import read_state, service_alive, state_path


def why_not_lab_owned(s: LabSettings, name: str) -> str | None:
    """Why the lab may not restart or kill service `name`, or None when every process of it is the lab's."""
    svc = services.get(name)
    if (outside := svc.outside(s)) is not None:
        setting = env_var(outside.setting)
        return (
            f"{name} is the outside server {outside.address} that {setting} tells the lab to reuse; the lab "
            f"never restarts or kills a server it did not start. Unset {setting} and run `regress lab up` "
            f"so the lab runs its own {name}"
        )
    entries = read_state(s)["services"]
    missing = [p for p in svc.processes(s) if not (entries.get(p) or {}).get("started_by_lab")]
    if missing:
        return f"{', '.join(missing)} not started by this lab ({state_path(s)}); run `regress lab up` first"
    return None


def service_is_lab_owned(s: LabSettings, name: str) -> bool:
    return why_not_lab_owned(s, name) is None


def broker_is_lab_owned(s: LabSettings) -> bool:
    """True when the broker the lab's resources use is one the lab started (destructive faults allowed)."""
    return service_is_lab_owned(s, "rabbitmq")


def _require_lab_owned(s: LabSettings, name: str, action: str) -> None:
    if (why := why_not_lab_owned(s, name)) is not None:
        raise NotLabOwnedError(f"refusing to {action} {name}: {why}")


def kill_service(s: LabSettings, name: str, sig: int = signal.SIGKILL) -> list[int]:
    """Crash the service: send `sig` to each of its running lab-started processes and wait until they are
    gone. Returns the PIDs signalled. Their state entries stay, so `restart_service` or `up` brings it back."""
    _require_lab_owned(s, name, "kill")
    svc = services.get(name)
    entries = read_state(s)["services"]
    killed = []
    for process in svc.processes(s):
        entry = entries[process]
        if service_alive(entry):
            stop(entry["pid"], entry.get("start_time"), sig=sig, timeout=10.0)
            killed.append(int(entry["pid"]))
    if held := [c.port for c in svc.port_claims(s) if port_in_use(c.port)]:
        raise LabError(
            f"killed {name} (pids {killed}) but its ports {held} are still in use: a process the state file does "
            "not record holds them (e.g. a broker started by an older lab under a wrapper shell); run "
            "`regress lab down` and `regress lab up`"
        )
    return killed


def service_pids(s: LabSettings, name: str, processes: tuple[str, ...] = ()) -> dict[str, int]:
    """The running lab-started PID of each process of the service (all, or those named), by process name."""
    _require_lab_owned(s, name, "signal")
    entries = read_state(s)["services"]
    wanted = processes or services.get(name).processes(s)
    return {p: int(entries[p]["pid"]) for p in wanted if service_alive(entries.get(p))}


def stop_service(
    s: LabSettings, name: str, sig: int | None = None, processes: tuple[str, ...] = (), timeout: float | None = None
) -> list[int]:
    """Stop the service's processes (all, or those named) with `sig` (default: its own stop signal, the way
    `down` does) and wait until they are gone (SIGKILL after the timeout). Entries stay, so
    `start_processes` or `restart_service` brings them back. Returns the PIDs signalled."""
    _require_lab_owned(s, name, "stop")
    svc = services.get(name)
    entries = read_state(s)["services"]
    stopped = []
    for process in processes or svc.processes(s):
        entry = entries[process]
        if service_alive(entry):
            wait = svc.stop_timeout if timeout is None else timeout
            stop(entry["pid"], entry.get("start_time"), sig=svc.stop_signal if sig is None else sig, timeout=wait)
            stopped.append(int(entry["pid"]))
    return stopped


def start_processes(
    s: LabSettings, name: str, processes: tuple[str, ...] = (), timeout: float = 60.0
) -> dict[str, int]:
    """Start the service's processes that are not running (all, or those named) and wait until it is ready."""
    _require_lab_owned(s, name, "start")
    svc = services.get(name)
    entries = read_state(s)["services"]
    down = [p for p in processes or svc.processes(s) if not service_alive(entries.get(p))]
    ensure_free([c for c in svc.port_claims(s) if c.service in down])
    pids = {process: svc.start(s, process) for process in down}
    wait_ready(s, svc, pids, timeout)
    return pids


def restart_service(s: LabSettings, name: str, timeout: float = 60.0) -> dict[str, int]:
    """Stop the service the way `down` does (if it runs), start it again and wait until it is ready.

    Its dependencies must be ready (the broker's epmd, Patroni's etcd). Returns the new PIDs by process.
    """
    _require_lab_owned(s, name, "restart")
    svc = services.get(name)
    for dep in svc.depends_on:
        ok, detail = services.get(dep).ready(s)
        if not ok:
            raise LabError(f"cannot restart {name}: {dep} is not ready ({detail}); run `regress lab up`")
    entries = read_state(s)["services"]
    for process in svc.processes(s):
        entry = entries[process]
        if service_alive(entry):
            stop(entry["pid"], entry.get("start_time"), sig=svc.stop_signal, timeout=svc.stop_timeout)
    ensure_free(svc.port_claims(s))
    pids = {process: svc.start(s, process) for process in svc.processes(s)}
    wait_ready(s, svc, pids, timeout)
    return pids
