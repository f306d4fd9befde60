"""The protocol every lab service implements, so `up`, `down`, `status` and the port and binary checks can
iterate the registry (`lab.services`) instead of naming services. How to add one: see `lab.services`.

A service runs one or more processes, each recorded in the state file under its own name (a single-process
service uses its own name; Patroni uses `patroni-pg0`..). The lifecycle decides what to keep or start,
checks ports and binaries, starts a service once everything it depends on is ready, polls `ready` until it
is usable, and stops services dependents first. A service only says how: ports, start, probe, stop.
"""

from __future__ import annotations

import os
import signal
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from regression_pipelines.lab.health import Probe
from regression_pipelines.lab.settings import LabSettings


@dataclass(frozen=True)
class Binary:
    """An executable a service needs, and the Debian package that brings it (named in the error)."""

    path: Path
    package: str

    def installed(self) -> bool:
        return os.access(self.path, os.X_OK)


@dataclass(frozen=True)
class PortClaim:
    """A port a lab process binds, and the LabSettings field that sets it (named in the 'port taken' error)."""

    service: str  # state-entry (process) name, e.g. "redis", "patroni-pg1"
    port: int
    setting: str


@dataclass(frozen=True)
class AdminTool:
    """The service's own admin tool aimed at the lab's instance: `regress lab ctl SERVICE -- ARGS` runs
    `argv + ARGS` with `env` added (as `user`, when the tool must not run as root)."""

    binary: Binary
    argv: tuple[str, ...]  # the tool and the options that point it at the lab's instance
    env: tuple[tuple[str, str], ...] = ()
    user: str | None = None
    default_args: tuple[str, ...] = ()  # when no ARGS are given (e.g. `status`)


PSQL = Binary(Path("/usr/lib/postgresql/15/bin/psql"), "postgresql-client-15")


def psql(port: int, user: str, password: str, dbname: str) -> AdminTool:
    """psql on a lab PostgreSQL over TCP; the password travels in PGPASSWORD, never on the command line."""
    argv = (str(PSQL.path), "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", dbname)
    return AdminTool(PSQL, argv, (("PGPASSWORD", password),), default_args=("-c", "SELECT version()"))


@dataclass(frozen=True)
class Outside:
    """A server outside the lab that the user configured the lab to use instead of starting its own."""

    host: str
    port: int
    setting: str  # LabSettings field that configured the reuse (named when a destructive action is refused)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Leftover:
    """A process of the lab's own making that is not in the state file (e.g. a postmaster orphaned when
    its Patroni was killed): `down` stops it, and its ports are not a conflict for `up`."""

    what: str
    pid: int
    ports: tuple[int, ...]
    stop_signal: int = signal.SIGTERM


class LabService(ABC):
    """One lab service. Subclasses set the class attributes and implement `port_claims`, `start`, `probe`;
    the other methods have defaults that fit a single-process server."""

    name: ClassVar[str]
    depends_on: ClassVar[tuple[str, ...]] = ()  # started only once these are ready; stopped before them
    binaries: ClassVar[tuple[Binary, ...]] = ()
    templates: ClassVar[tuple[str, ...]] = ()  # files in deploy/local/ that `start` renders
    optional: ClassVar[bool] = False  # unavailable optional services are skipped, not an error
    stop_signal: ClassVar[int] = signal.SIGTERM
    stop_timeout: ClassVar[float] = 15.0  # then SIGKILL

    def processes(self, s: LabSettings) -> tuple[str, ...]:
        """State-entry names of the processes this service runs, in start order."""
        return (self.name,)

    @abstractmethod
    def port_claims(self, s: LabSettings) -> list[PortClaim]:
        """Every port its processes bind, each with the LabSettings field that sets it."""

    @abstractmethod
    def start(self, s: LabSettings, process: str) -> int:
        """Prepare dirs, render config, spawn one process (procs.spawn) and record it (state.record_service).
        Returns the PID at once; waiting is the lifecycle's job (it polls `ready`)."""

    @abstractmethod
    def probe(self, s: LabSettings, process: str) -> Probe:
        """Quick 'is this process answering?': `up` keeps a running process that answers."""

    def ready(self, s: LabSettings) -> Probe:
        """One attempt at 'the service is usable as a whole', polled by `up`. May do idempotent set-up
        (e.g. create the login role). Default: every process answers its probe."""
        probes = [self.probe(s, p) for p in self.processes(s)]
        return all(ok for ok, _ in probes), "; ".join(detail for _, detail in probes)

    def healthy(self, s: LabSettings, process: str) -> Probe:
        """What `status` shows for a running process. Default: its probe."""
        return self.probe(s, process)

    def summary(self, s: LabSettings) -> Probe | None:
        """A service-wide status row below the process rows (e.g. the Patroni cluster), or None."""
        return None

    def available(self) -> tuple[bool, str]:
        """Can this machine run it? Default: every binary is installed. The reason says how to fix it."""
        missing = [b for b in self.binaries if not b.installed()]
        if not missing:
            return True, "installed"
        packages = " ".join(sorted({b.package.split()[0] for b in missing}))
        paths = ", ".join(str(b.path) for b in missing)
        return False, f"not installed ({paths}; apt-get install -y {packages})"

    def outside(self, s: LabSettings) -> Outside | None:
        """The outside server to use instead of the lab's own, when the user configured one; else None."""
        return None

    def endpoint(self, s: LabSettings) -> dict[str, Any] | None:
        """What clients need to reach it (`state.load_endpoints()[name]`), or None for internal services."""
        return None

    def admin_tool(self, s: LabSettings) -> AdminTool | None:
        """Its own admin tool aimed at the lab's instance (`regress lab ctl`), or None when it has none."""
        return None

    def leftovers(self, s: LabSettings) -> list[Leftover]:
        """The lab's own processes of this service that the state file does not list. Default: none."""
        return []

    def folder(self, s: LabSettings) -> Path:
        """Where its config, data and logs live (named in start-up errors; removed by `down --purge`)."""
        return s.lab_dir / self.name
