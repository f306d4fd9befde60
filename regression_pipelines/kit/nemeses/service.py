"""The shape most nemeses share: one service, acted on in the lab (verified its own) or through the template.

A subclass names its `service` (a resource key: postgres, redis, rabbitmq, patroni, citus, delta) and implements
`act` / `heal` against the lab's settings; this base refuses targets it may not touch (preflight), runs the
command template instead when the run gives one, and judges recovery with a fresh client: the resource's own
probe (the area's credentials), or the lab's when the resource gives none.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from regression_pipelines.kit.nemeses import journal, lab
from regression_pipelines.kit.nemeses.base import Endpoint, Nemesis, NemesisError, Target
from regression_pipelines.kit.supervisor import Supervisor
from regression_pipelines.lab.health import amqp_ok
from regression_pipelines.lab.settings import LAB_HOST, LabSettings
from regression_pipelines.measure import describe_error


class ServiceNemesis(Nemesis):
    """A fault on one service; `objects` (a created kind) are what it acts on when it acts on the run's things."""

    service: ClassVar[str]
    objects: ClassVar[str] = ""  # e.g. "table": start refuses when the run registered none

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "service" in cls.__dict__:
            cls.services = frozenset({cls.service})

    # -- the protocol ----------------------------------------------------------------------------------------
    def check(self, target: Target) -> None:
        endpoint = target.endpoint(self.service)
        if target.command_template:
            lab.check_template(self.name, target, endpoint)
            return
        s = self.settings(target)
        for healed in journal.heal_orphans(s, heal_entry):
            target.supervisor.note(f"healed a fault a dead run left on the lab: {healed}")

    def start(self, target: Target) -> str:
        endpoint = target.endpoint(self.service)
        if target.command_template:
            return self._template("start", target, endpoint)
        if self.objects and not target.created(self.objects):
            raise NemesisError(
                f"nothing to act on: the run has registered no {self.objects} yet (supervisor.created"
                f"({self.objects!r}, ...))"
            )
        s = self.settings(target)
        journal.write(s, self.name, target.area, _described(endpoint), self.state(target))
        try:
            return self.act(s, target, endpoint)
        finally:  # what the heal needs, as far as the act got
            journal.write(s, self.name, target.area, _described(endpoint), self.state(target))

    def stop(self, target: Target) -> str:
        endpoint = target.endpoint(self.service)
        if target.command_template:
            return self._template("stop", target, endpoint)
        s = self.settings(target)
        done = self.heal(s, target, endpoint)
        journal.remove(s, self.name, target.area)
        return done

    def recovered(self, target: Target) -> bool:
        endpoint = target.endpoint(self.service)
        probe = endpoint.probe or (None if target.command_template else self.lab_probe(self.settings(target)))
        if probe is not None:
            probe()
        return target.command_template != "" or self.healed(self.settings(target), target, endpoint)

    # -- what subclasses implement ---------------------------------------------------------------------------
    @abstractmethod
    def act(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str: ...

    @abstractmethod
    def heal(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str: ...

    def healed(self, s: LabSettings, target: Target, endpoint: Endpoint) -> bool:
        """Beyond the probe: is what the nemesis changed undone (a policy gone, a limit restored)?"""
        return True

    def lab_probe(self, s: LabSettings) -> Callable[[], object] | None:
        return LAB_PROBES.get(self.service, lambda _s: None)(s)

    # -- helpers ---------------------------------------------------------------------------------------------
    def settings(self, target: Target) -> LabSettings:
        """This lab's settings, once the endpoint is proven to be its own service (cached per run)."""
        key = f"{self.name}:lab"
        if key not in target.state:
            target.state[key] = lab.require_lab(self.name, target.endpoint(self.service))
        return target.state[key]

    def state(self, target: Target) -> dict[str, Any]:
        """What this nemesis keeps between start and stop in one run (the nemesis object is shared)."""
        return target.state.setdefault(self.name, {})

    def _template(self, action: str, target: Target, endpoint: Endpoint) -> str:
        objects = target.created(self.objects) if self.objects else []
        values = lab.template_values(action, self.name, endpoint, objects)
        return f"{action}: {lab.run_template(target.command_template, values)}"


def _described(endpoint: Endpoint) -> dict[str, Any]:
    return {"service": endpoint.service, "host": endpoint.host, "port": endpoint.port, "extra": dict(endpoint.extra)}


def heal_entry(entry: dict[str, Any]) -> str:
    """Heal one journal entry of a dead run with its nemesis's own heal (lab targets only, re-verified)."""
    from regression_pipelines.kit import nemeses  # the registry imports this module

    nemesis = nemeses.by_name(entry["nemesis"])
    if not isinstance(nemesis, ServiceNemesis):
        return "nothing to heal"
    described = entry["endpoint"]
    endpoint = Endpoint(described["service"], described["host"], described["port"], described.get("extra", {}))
    target = Target(entry["area"], {nemesis.service: endpoint}, Supervisor(entry["area"]))
    target.state[nemesis.name] = dict(entry.get("state", {}))
    return nemesis.heal(nemesis.settings(target), target, endpoint)


class Window:
    """Repeats `tick` every `period_s` in a thread until stopped: a fault that keeps acting for its window."""

    def __init__(self, name: str, tick: Callable[[], str | None], period_s: float = 0.25) -> None:
        self.tick, self.period_s = tick, period_s
        self.done: list[str] = []
        self.errors: list[str] = []
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"nemesis-{name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._halt.is_set():
            try:
                if (did := self.tick()) is not None:
                    self.done.append(did)
            except Exception as exc:  # the system under test may refuse: count it, keep acting
                self.errors.append(describe_error(exc))
            self._halt.wait(self.period_s)

    def stop(self) -> str:
        self._halt.set()
        self._thread.join(timeout=30)
        errors = f"; {len(self.errors)} refused (last: {self.errors[-1]})" if self.errors else ""
        return f"{len(self.done)} actions{errors}"


def _pg_probe(s: LabSettings) -> Callable[[], object]:
    def probe() -> object:
        import psycopg

        with psycopg.connect(
            host=LAB_HOST, port=s.postgres_port, user=s.postgres_user, password=s.postgres_password,
            dbname=s.postgres_db, connect_timeout=2,
        ) as conn:  # fmt: skip
            return conn.execute("SELECT 1").fetchone()

    return probe


def _redis_probe(s: LabSettings) -> Callable[[], object]:
    def probe() -> object:
        client = lab.redis_admin(s)
        try:
            return client.set("regress:nemesis:probe", "1", px=1000)
        finally:
            client.close()

    return probe


def _amqp_probe(s: LabSettings) -> Callable[[], object]:
    def probe() -> object:
        ok, detail = amqp_ok(s.rabbitmq_port, s.rabbitmq_user, s.rabbitmq_password)
        if not ok:
            raise ConnectionError(detail)
        return ok

    return probe


LAB_PROBES: dict[str, Callable[[LabSettings], Callable[[], object] | None]] = {
    "postgres": _pg_probe,
    "redis": _redis_probe,
    "rabbitmq": _amqp_probe,
}
