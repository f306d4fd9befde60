"""The nemesis protocol (after Jepsen's nemesis.clj): a fault with a start, a stop, and a notion of recovered.

A nemesis acts from outside the area's code on a service the area uses (a restart, a pause, killed client
connections, a resource limit) or on what the run created (files of its Delta table, an outside writer on its
table, a trigger, a broker policy). The area never knows which one runs: the supervisor starts it at a seeded
point of the workload phase, heals it after `for_s` (or when the workload ends, or after a crash), measures when
the service is usable again (`recovered`, from a fresh client), and notes it on every failed check.

Where it acts: on the lab's own services (verified: the area's endpoint has the lab's port and the lab started
the process), or, for anything else, only through the run's command template (`nemesis_command`) and only on
loopback or allow-listed hosts. Plain Python; lab services are reached through `lab.control`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from regression_pipelines.errors import RunConfigError
from regression_pipelines.kit.supervisor import Supervisor


class NemesisError(RunConfigError):
    """A nemesis could not act (refused, or its command failed); the message says why and what to change."""


@dataclass(frozen=True)
class Endpoint:
    """A service the area uses, as a nemesis sees it: where it listens, facts it needs, and a fresh-client probe.

    `extra` holds non-secret facts (dbname, user, members, a Delta root); `probe` (from the resource's
    `nemesis_endpoint()`) opens a fresh client with the area's own credentials and does one small operation,
    raising if the service is not usable: it is never printed (repr=False) and carries no secret in its name.
    """

    service: str  # postgres, redis, rabbitmq, patroni, citus, delta
    host: str = "127.0.0.1"
    port: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    probe: Callable[[], object] | None = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        return f"{self.service} at {self.host}:{self.port}" if self.port else f"{self.service} at {self.host}"

    @classmethod
    def from_description(cls, key: str, described: Mapping[str, Any]) -> Endpoint:
        """An endpoint from a resource's `nemesis_endpoint()` dict (service, host, port, probe, anything else)."""
        rest = {k: v for k, v in described.items() if k not in ("service", "host", "port", "probe")}
        port = described.get("port")
        return cls(
            service=str(described.get("service", key)),
            host=str(described.get("host", "127.0.0.1")),
            port=int(port) if port is not None else None,
            extra=rest,
            probe=described.get("probe"),
        )


@dataclass
class Target:
    """What a nemesis may act on in one run: the area's services, and what the run created (its supervisor)."""

    area: str
    endpoints: Mapping[str, Endpoint]
    supervisor: Supervisor
    allow_destructive: bool = False
    allow_list: tuple[str, ...] = ()
    command_template: str = ""  # for services outside the lab: e.g. "ssh {host} sudo fault {action} {service}"
    seed: int = 0
    state: dict[str, Any] = field(default_factory=dict)  # what nemeses keep between start and stop in this run

    def endpoint(self, service: str) -> Endpoint:
        try:
            return self.endpoints[service]
        except KeyError:
            raise NemesisError(f"{self.area} uses no {service} (it uses {sorted(self.endpoints)})") from None

    def created(self, kind: str) -> list[str]:
        """Names of things of `kind` the run registered (tables, queues, delta tables...), oldest first."""
        return [c.name for c in list(self.supervisor.created_things) if c.kind == kind]


class Nemesis(ABC):
    """One fault. Subclasses set the class attributes and implement start/stop; `recovered` defaults to True.

    `check` runs before the workload (preflight): a target the nemesis may not or cannot act on is refused
    there, naming the reason and the setting that would change it, and nothing is touched.
    """

    name: ClassVar[str]
    services: ClassVar[frozenset[str]]  # a matrix cell exists for every area that uses one of them
    destructive: ClassVar[bool]  # acts on a shared service (restart, pause, limits): needs allow_destructive
    description: ClassVar[str]

    def check(self, target: Target) -> None:
        """Refuse (NemesisError) a target this nemesis may not act on; default: anything goes."""
        return None

    @abstractmethod
    def start(self, target: Target) -> str:
        """Inject the fault; return what was done, in words (goes to the run's environment)."""

    @abstractmethod
    def stop(self, target: Target) -> str:
        """Heal it (idempotent: also called after a crash or a failed start); return what was done."""

    def recovered(self, target: Target) -> bool:
        """True once the service is usable again from a fresh client (polled after `stop`)."""
        return True

    def applies_to(self, services: set[str]) -> bool:
        return bool(self.services & services)
