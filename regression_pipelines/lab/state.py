"""The lab's state file (<lab_dir>/state.json): which services the lab runs, their PIDs and ports.

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

    Keys: postgres, patroni (members, etcd), haproxy (rw_port, ro_port, stats_url), redis, rabbitmq
    (port, reused), alertmanager (url, webhook_url). Raises LabNotRunningError before `regress lab up`.
    """
    s = settings or LabSettings.from_env()
    services = read_state(s)["services"]
    if not services:
        raise LabNotRunningError(f"no lab state in {state_path(s)}; run `regress lab up` first")
    rabbit = services.get("rabbitmq", {})
    return {
        "host": LAB_HOST,
        "postgres": {"host": LAB_HOST, "port": s.postgres_port, "user": s.postgres_user, "dbname": s.postgres_db},
        "patroni": {
            "scope": s.lab_name,
            "etcd_url": f"http://{LAB_HOST}:{s.etcd_client_port}",
            "members": [
                {"name": name, "pg_port": pg, "rest_url": f"http://{LAB_HOST}:{rest}", "rest_port": rest}
                for name, pg, rest in zip(s.patroni_members, s.patroni_pg_ports, s.patroni_rest_ports, strict=True)
            ],
            "superuser": "postgres",
            "user": s.postgres_user,
            "dbname": s.postgres_db,
        },
        "haproxy": {
            "host": LAB_HOST,
            "rw_port": s.haproxy_rw_port,
            "ro_port": s.haproxy_ro_port,
            "stats_url": f"http://{LAB_HOST}:{s.haproxy_stats_port}/",
        },
        "redis": {"host": LAB_HOST, "port": s.redis_port},
        "rabbitmq": {
            "host": LAB_HOST,
            "port": int(rabbit.get("ports", {}).get("amqp", s.rabbitmq_port)),
            "user": s.rabbitmq_user,
            "reused": not rabbit.get("started_by_lab", False),
        },
        "alertmanager": {
            "url": f"http://{LAB_HOST}:{s.alertmanager_port}",
            "webhook_url": s.alertmanager_webhook_url,
        },
    }
