"""Pluggable fault injection: local process signals (lab), Patroni REST, or a user command template.

Each injector performs real faults on one member and knows how to heal them (SIGCONT, restart Patroni).
Which injector serves a mode is decided by `choose_injector`; none of them retries or loops unbounded.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from regression_pipelines.errors import mask_secrets
from resources.patroni.client import ClusterTarget


class Mode(StrEnum):
    SWITCHOVER = "switchover"  # Patroni REST switchover: planned, clean demotion
    KILL_PATRONI_POSTMASTER = "kill_patroni_postmaster"  # kill -9 Patroni then postmaster: crash of a node
    KILL_POSTMASTER = "kill_postmaster"  # kill -9 postmaster alone: Patroni restarts it in place
    PAUSE = "pause"  # SIGSTOP Patroni + PostgreSQL for N seconds, then SIGCONT: a frozen node
    KILL_PATRONI = "kill_patroni"  # kill -9 Patroni alone: orphaned primary, split brain without a watchdog


class FaultError(RuntimeError):
    """A fault could not be injected or healed (the message says which member and action)."""


class FaultInjector(Protocol):
    name: str

    def supports(self, mode: Mode) -> bool: ...

    def inject(self, mode: Mode, member: str) -> None: ...

    def heal(self, mode: Mode, member: str) -> None: ...


@dataclass
class PatroniRestInjector:
    """Switchover through the leader's REST API (POST /switchover); nothing to heal."""

    target: ClusterTarget
    name: str = "patroni_rest"

    def supports(self, mode: Mode) -> bool:
        return mode is Mode.SWITCHOVER

    def inject(self, mode: Mode, member: str) -> None:
        status, body = self.target.rest(
            self.target.member(member), "/switchover", "POST", {"leader": member}, timeout_s=30.0
        )
        if status != 200:
            raise FaultError(f"switchover from {member} refused: HTTP {status} {self.target.mask(str(body))[:200]}")

    def heal(self, mode: Mode, member: str) -> None:
        return None


PidLookup = Callable[[str], tuple[int | None, int | None]]  # member -> (patroni pid, postmaster pid)


def children_of(pid: int) -> list[int]:
    """Direct children of a process (PostgreSQL backends of a postmaster), read from /proc."""
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            kids.append(int(entry.name))
    return kids


@dataclass
class LocalSignalInjector:
    """kill -9 / SIGSTOP / SIGCONT on processes of this machine (the lab); heals by restarting Patroni."""

    pids: PidLookup
    restart_member: Callable[[str], None]
    name: str = "local_signals"

    def __post_init__(self) -> None:
        self._stopped: list[int] = []

    def supports(self, mode: Mode) -> bool:
        return mode is not Mode.SWITCHOVER

    def _pids(self, member: str) -> tuple[int, int]:
        patroni, postmaster = self.pids(member)
        if patroni is None or postmaster is None:
            raise FaultError(f"{member}: cannot find Patroni pid ({patroni}) or postmaster pid ({postmaster})")
        return patroni, postmaster

    def inject(self, mode: Mode, member: str) -> None:
        patroni, postmaster = self._pids(member)
        if mode in (Mode.KILL_PATRONI, Mode.KILL_PATRONI_POSTMASTER):
            os.kill(patroni, signal.SIGKILL)
        if mode in (Mode.KILL_POSTMASTER, Mode.KILL_PATRONI_POSTMASTER):
            os.kill(postmaster, signal.SIGKILL)
        if mode is Mode.PAUSE:
            # Patroni first (it must not react), then the postmaster and every backend: a frozen machine.
            self._stopped = [patroni, postmaster, *children_of(postmaster)]
            for pid in self._stopped:
                _signal_quietly(pid, signal.SIGSTOP)

    def heal(self, mode: Mode, member: str) -> None:
        if mode is Mode.PAUSE:
            for pid in reversed(self._stopped):
                _signal_quietly(pid, signal.SIGCONT)
            self._stopped = []
        elif mode in (Mode.KILL_PATRONI, Mode.KILL_PATRONI_POSTMASTER):
            self.restart_member(member)


def _signal_quietly(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


# Action names a command template receives as {action}, per mode: (inject actions, heal actions).
TEMPLATE_ACTIONS: dict[Mode, tuple[tuple[str, ...], tuple[str, ...]]] = {
    Mode.KILL_PATRONI_POSTMASTER: (("kill_patroni", "kill_postmaster"), ("start_patroni",)),
    Mode.KILL_POSTMASTER: (("kill_postmaster",), ()),
    Mode.PAUSE: (("stop",), ("cont",)),
    Mode.KILL_PATRONI: (("kill_patroni",), ("start_patroni",)),
}


@dataclass
class CommandTemplateInjector:
    """Runs a user command per action, e.g. `ssh {host} sudo /usr/local/bin/pg-fault {action} {member}`.

    The template is split with shlex *before* substitution and run without a shell, so member names can
    never inject shell syntax. Placeholders: {action}, {member}, {host}, {pg_port}, {rest_port}.
    """

    template: str
    target: ClusterTarget
    timeout_s: float = 60.0
    name: str = "command_template"

    def supports(self, mode: Mode) -> bool:
        return mode in TEMPLATE_ACTIONS

    def _run(self, action: str, member: str) -> None:
        m = self.target.member(member)
        values = {
            "action": action,
            "member": member,
            "host": self.target.host,
            "pg_port": m.pg_port,
            "rest_port": m.rest_port,
        }
        argv = [part.format(**values) for part in shlex.split(self.template)]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FaultError(f"{action} on {member}: command failed to run ({exc})") from None
        if done.returncode != 0:
            err = mask_secrets(done.stderr.strip()[-300:], self.target.password)
            raise FaultError(f"{action} on {member}: command exited {done.returncode}: {err}")

    def inject(self, mode: Mode, member: str) -> None:
        for action in TEMPLATE_ACTIONS[mode][0]:
            self._run(action, member)

    def heal(self, mode: Mode, member: str) -> None:
        for action in TEMPLATE_ACTIONS[mode][1]:
            self._run(action, member)


def choose_injector(
    mode: Mode, target: ClusterTarget, command_template: str = "", local: LocalSignalInjector | None = None
) -> FaultInjector:
    """Switchover uses REST; process faults use the command template if given, else local signals."""
    if mode is Mode.SWITCHOVER:
        return PatroniRestInjector(target)
    if command_template:
        return CommandTemplateInjector(command_template, target)
    if local is None:
        raise FaultError(
            f"mode {mode.value} needs process access: run against the lab (local signals) or set command_template"
        )
    return local
