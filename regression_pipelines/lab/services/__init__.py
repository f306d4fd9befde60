"""The lab's services, found by scanning this package: every module here is one service.

How to add a lab service (e.g. a Citus cluster, a private PostgreSQL for Dagster's storage):

1. Add its LabSettings fields (ports, credentials) in `lab/settings.py`; REGRESS_LAB_* and the port offset
   then apply to them with no further code.
2. Add its config template to `deploy/local/` if it has one (rendered with `lab.render.render`).
3. Add `lab/services/<name>.py` with a `lab.service.LabService` subclass and `SERVICE = <instance>`:
   `name`, `depends_on`, `binaries` (+ Debian package), `templates`, `port_claims` (each with the
   LabSettings field that sets it), `start` (render, `procs.spawn` as a non-root user if the server
   refuses root, `state.record_service`), `probe`; override `processes` (several state entries, like
   Patroni's members), `ready` (idempotent set-up such as roles, e.g. Citus adding its workers),
   `healthy`/`summary` (status), `stop_signal`/`stop_timeout`, `endpoint` (what clients read from
   `load_endpoints()`), `available` and `optional = True` for a service not every machine can run (Citus:
   available only when the citus extension is installed for PostgreSQL 15; skipped by `up`, shown by
   `status` with the reason and how to install it, never making status unhealthy).

Nothing else changes: `up`, `down`, `status`, the port and binary checks, `down --purge` and
`load_endpoints` iterate this registry. `tests/unit/test_lab_registry.py` checks the new module fits
(unique ports, known and acyclic dependencies, templates and binaries declared).

Why discovery rather than a list: like `assets/` and Patroni's `dcs/` backends, adding a service cannot
forget a registration line, and a broken module fails the registry test at once.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from regression_pipelines.lab.errors import LabError
from regression_pipelines.lab.service import LabService
from regression_pipelines.lab.settings import LabSettings


@functools.cache
def _registry() -> dict[str, LabService]:
    found: dict[str, LabService] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        service = getattr(module, "SERVICE", None)
        if not isinstance(service, LabService):
            raise LabError(f"{module.__name__} defines no SERVICE (a LabService instance); every module here is one")
        if service.name in found:
            raise LabError(f"two lab services are named {service.name!r}")
        found[service.name] = service
    return {svc.name: svc for svc in _dependency_order(found)}


def _dependency_order(services: dict[str, LabService]) -> list[LabService]:
    """Dependencies before dependents, ties by name; raises on an unknown dependency or a cycle."""
    for svc in services.values():
        unknown = set(svc.depends_on) - set(services)
        if unknown:
            raise LabError(f"lab service {svc.name!r} depends on unknown {sorted(unknown)}")
    ordered: list[LabService] = []
    placed: set[str] = set()
    while len(ordered) < len(services):
        ready = sorted(n for n, s in services.items() if n not in placed and set(s.depends_on) <= placed)
        if not ready:
            raise LabError(f"lab services depend on each other in a cycle: {sorted(set(services) - placed)}")
        ordered.append(services[ready[0]])
        placed.add(ready[0])
    return ordered


def all_services() -> list[LabService]:
    """Every registered service, dependencies first."""
    return list(_registry().values())


def get(name: str) -> LabService:
    try:
        return _registry()[name]
    except KeyError:
        raise LabError(f"no lab service {name!r}; services are {', '.join(_registry())}") from None


def dependents(name: str) -> list[LabService]:
    """Services that depend on `name` directly."""
    return [svc for svc in all_services() if name in svc.depends_on]


def selected(s: LabSettings, names: list[str] | None = None) -> list[LabService]:
    """The services `up` brings up (dependencies first): the named ones, by default every service nothing
    else depends on, plus what each needs. A service used from outside (`outside`) needs nothing: with
    the broker reused, the lab runs no epmd."""
    wanted = [get(n) for n in names] if names else [svc for svc in all_services() if not dependents(svc.name)]
    chosen: set[str] = set()
    stack = list(wanted)
    while stack:
        svc = stack.pop()
        if svc.name not in chosen:
            chosen.add(svc.name)
            if svc.outside(s) is None:
                stack += [get(dep) for dep in svc.depends_on]
    return [svc for svc in all_services() if svc.name in chosen]


def owner_of(process: str, s: LabSettings) -> LabService | None:
    """The service that runs the process recorded under this state-entry name."""
    return next((svc for svc in all_services() if process in svc.processes(s)), None)
