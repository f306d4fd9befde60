"""A journal of faults in force on the lab, so a harness that died mid-fault does not leave the lab broken.

Why: a nemesis heals in the run that started it (after the workload, after a crash, first thing in cleanup).
A harness killed outright (SIGKILL, a lost CI machine) heals nothing: Redis keeps its 20 kB `maxmemory`, the
broker its alarm, a role its connection limit, a table its row-dropping trigger, a server stays stopped. Each
lab fault is written to `<lab dir>/nemeses/` when it starts (with what its heal needs) and removed once healed;
the next nemesis run on this lab heals every entry whose process is gone before it does anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from regression_pipelines.lab.procs import start_time
from regression_pipelines.lab.settings import LabSettings


def folder(s: LabSettings) -> Path:
    return s.lab_dir / "nemeses"


def entry_path(s: LabSettings, nemesis: str, area: str) -> Path:
    return folder(s) / f"{os.getpid()}-{nemesis}-{area}.json"


def write(s: LabSettings, nemesis: str, area: str, endpoint: Mapping[str, Any], state: Mapping[str, Any]) -> Path:
    """Record a fault in force (its heal's state: only what JSON can hold; threads die with the process)."""
    path = entry_path(s, nemesis, area)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "nemesis": nemesis,
        "area": area,
        "pid": os.getpid(),
        "start_time": start_time(os.getpid()),
        "endpoint": dict(endpoint),
        "state": {k: v for k, v in state.items() if _plain(v)},
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entry, sort_keys=True))
    tmp.replace(path)
    return path


def remove(s: LabSettings, nemesis: str, area: str) -> None:
    entry_path(s, nemesis, area).unlink(missing_ok=True)


def orphans(s: LabSettings) -> list[tuple[Path, dict[str, Any]]]:
    """Entries whose harness process is gone (or is another process now): nobody will heal them."""
    found = []
    for path in sorted(folder(s).glob("*.json")) if folder(s).is_dir() else []:
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        if start_time(int(entry.get("pid", 0))) != entry.get("start_time"):
            found.append((path, entry))
    return found


def heal_orphans(s: LabSettings, heal: Callable[[dict[str, Any]], str]) -> list[str]:
    """Heal every orphaned fault with `heal(entry)`; an entry that cannot be healed yet stays for next time."""
    done = []
    for path, entry in orphans(s):
        try:
            done.append(f"{entry['nemesis']} (left by pid {entry['pid']}): {heal(entry)}")
        except Exception as exc:
            done.append(f"{entry['nemesis']} (left by pid {entry['pid']}): heal failed, kept: {exc}")
            continue
        path.unlink(missing_ok=True)
    return done


def _plain(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False
