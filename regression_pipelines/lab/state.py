"""The lab's state file (<lab_dir>/state.json): which processes the lab runs, their PIDs and ports, and
which outside servers it uses instead (`started_by_lab: false`, `mode: reused`).

Other code reads endpoints through `load_endpoints(settings)`; secrets are not in the state file or the
endpoints (read them from LabSettings).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from regression_pipelines.lab.errors import LabNotRunningError
from regression_pipelines.lab.procs import is_alive, start_time
from regression_pipelines.lab.settings import LAB_HOST, LabSettings

_LOCK = threading.Lock()


def state_path(settings: LabSettings) -> Path:
    return settings.lab_dir / "state.json"


def read_state(settings: LabSettings) -> dict[str, Any]:
    """The state dict ({'services': {...}}), empty when the lab has never run here."""
    try:
        data = json.loads(state_path(settings).read_text())
    except FileNotFoundError:
        return {"services": {}}
    data.setdefault("services", {})
    return data


def _write(settings: LabSettings, data: dict[str, Any]) -> None:
    path = state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    data["updated_at"] = time.time()
    tmp = path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)


def record_service(
    settings: LabSettings,
    service: str,
    *,
    pid: int | None,
    ports: dict[str, int],
    started_by_lab: bool,
    **extra: Any,
) -> None:
    """Record (or replace) one service entry; thread-safe read-modify-write, atomic rename."""
    entry: dict[str, Any] = {
        "pid": pid,
        "start_time": start_time(pid) if pid else None,
        "ports": ports,
        "started_by_lab": started_by_lab,
        **extra,
    }
    with _LOCK:
        data = read_state(settings)
        data["services"][service] = entry
        _write(settings, data)


def forget_service(settings: LabSettings, service: str) -> None:
    with _LOCK:
        data = read_state(settings)
        data["services"].pop(service, None)
        _write(settings, data)


def service_alive(entry: dict[str, Any] | None) -> bool:
    """True if the entry's PID is still the very process the lab started."""
    if not entry or not entry.get("pid"):
        return False
    return is_alive(entry["pid"], entry.get("start_time"))


def load_endpoints(settings: LabSettings | None = None) -> dict[str, Any]:
    """Where each lab service listens, e.g. `load_endpoints()["redis"]["port"]`.

    One key per service with an endpoint (postgres, patroni, haproxy, redis, rabbitmq with `reused`,
    alertmanager, ...) plus "host". Raises LabNotRunningError before `regress lab up`.
    """
    from regression_pipelines.lab.services import all_services  # here: service modules import this one

    s = settings or LabSettings.from_env()
    if not read_state(s)["services"]:
        raise LabNotRunningError(f"no lab state in {state_path(s)}; run `regress lab up` first")
    endpoints: dict[str, Any] = {"host": LAB_HOST}
    for svc in all_services():
        if (endpoint := svc.endpoint(s)) is not None:
            endpoints[svc.name] = endpoint
    return endpoints
