"""Helpers for HA scenarios: find a Patroni member's PIDs, and (re)start a member after it was killed.

Usage: `patroni_pid(s, "pg0")`, `postmaster_pid(s, "pg0")`, `start_member(s, "pg0")`.
"""

from __future__ import annotations

import time
from pathlib import Path

from regression_pipelines.lab.errors import LabError
from regression_pipelines.lab.procs import cmdline, is_alive
from regression_pipelines.lab.services import patroni
from regression_pipelines.lab.services.patroni import postmaster_pid
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.lab.state import read_state, service_alive


def member_index(settings: LabSettings, name: str) -> int:
    try:
        return settings.patroni_members.index(name)
    except ValueError:
        raise LabError(f"no Patroni member {name!r}; members are {', '.join(settings.patroni_members)}") from None


def data_dir(settings: LabSettings, name: str) -> Path:
    return patroni.member_dir(settings, name) / "data"


def patroni_pid(settings: LabSettings, name: str) -> int | None:
    """PID of the member's Patroni daemon: from the state file, else found by its config path in /proc."""
    member_index(settings, name)
    entry = read_state(settings)["services"].get(patroni.PREFIX + name)
    if service_alive(entry):
        return int(entry["pid"])  # type: ignore[index]
    cfg = str(patroni.config_path(settings, name))
    for pid_dir in Path("/proc").iterdir():
        if pid_dir.name.isdigit():
            pid = int(pid_dir.name)
            args = cmdline(pid)
            if cfg in args and any("patroni" in a for a in args) and is_alive(pid):
                return pid
    return None


def start_member(settings: LabSettings, name: str, *, wait: float = 30.0) -> int:
    """(Re)start the member's Patroni if it is not running; wait until its REST API reports `running`.

    Returns the Patroni PID (the existing one if it was alive). A killed member rejoins by pg_rewind.
    """
    index = member_index(settings, name)
    pid = patroni_pid(settings, name)
    if pid is None:
        pid = patroni.SERVICE.start(settings, patroni.PREFIX + name)
    if wait > 0:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            ok, _ = patroni.member_running(settings, index)
            if ok:
                return pid
            if not is_alive(pid):
                log = patroni.member_dir(settings, name) / "patroni.log"
                raise LabError(f"Patroni member {name} (pid {pid}) exited; see {log}")
            time.sleep(0.1)
        raise LabError(f"Patroni member {name} not running after {wait:.0f}s; see its patroni.log")
    return pid


def member_pids(settings: LabSettings) -> dict[str, dict[str, int | None]]:
    """{member: {"patroni": pid|None, "postmaster": pid|None}} for every member."""
    return {
        name: {"patroni": patroni_pid(settings, name), "postmaster": postmaster_pid(settings, name)}
        for name in settings.patroni_members
    }


__all__ = ["data_dir", "member_pids", "patroni_pid", "postmaster_pid", "start_member"]
