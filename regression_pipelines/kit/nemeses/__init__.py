"""The nemesis library: every fault the kit can inject into any area's run, found by scanning this package.

Each module here may define `NEMESES = (instance, ...)` (kit.nemeses.base.Nemesis subclasses). An area runs
with one of them through its config (`--set <area>.nemesis=<name>`, `nemesis_at_s`, `nemesis_for_s`,
`nemesis_seed`; destructive ones also need `allow_destructive`); the chaos matrix is every area x every
nemesis that touches a service the area uses (`Area.resources` against `Nemesis.services`, both resource keys:
postgres, redis, rabbitmq, patroni, citus, delta).

Modules: `process` (restart fast/immediate, pause), `connections` (killed client connections), `limits`
(Redis maxmemory, RabbitMQ memory/disk alarms, PostgreSQL connection limits), `tamper` (outside writer,
row-dropping trigger and rule, queue policies), `delta` (files removed from or added to a Delta table, an
outside writer); `lab` says where a nemesis may act (the lab's own services, or a command template);
`journal` keeps the faults in force on the lab so the next run heals what a killed harness left.

What the run created, by kind. Nemeses that act on the run's own objects find them through what the area
registered with `ctx.sup.created(kind, name, remove, exists)`; areas use these kind names:

- "table": a PostgreSQL table, name schema-qualified ("etl_ab12.jobs" or "public.cache_items");
- "queue", "exchange": a RabbitMQ queue / exchange name (default vhost unless the resource names another);
- "delta_table": the path (or URI) of a Delta table folder;
- "redis_prefix": a key prefix the run's Redis keys start with ("cache:ab12:");
- anything else ("role", "schema", "directory", ...) is removed and checked by the supervisor alike.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from regression_pipelines.kit.nemeses.base import Endpoint, Nemesis, NemesisError, Target

NONE = "none"
NOT_NEMESES = ("base", "schedule", "lab", "service", "journal")
KINDS = ("table", "queue", "exchange", "delta_table", "redis_prefix")

__all__ = ["KINDS", "NONE", "Endpoint", "Nemesis", "NemesisError", "Target", "by_name", "names", "registry"]


@functools.cache
def registry() -> dict[str, Nemesis]:
    found: dict[str, Nemesis] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name in NOT_NEMESES:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for nemesis in getattr(module, "NEMESES", ()):
            if nemesis.name in found:
                raise ValueError(f"two nemeses are named {nemesis.name!r} ({module.__name__} and earlier)")
            found[nemesis.name] = nemesis
    return dict(sorted(found.items()))


def names() -> list[str]:
    return list(registry())


def by_name(name: str) -> Nemesis:
    try:
        return registry()[name]
    except KeyError:
        raise NemesisError(f"nemesis {name!r} is unknown; use one of {', '.join(names())} (or none)") from None


def for_services(services: set[str] | tuple[str, ...]) -> list[Nemesis]:
    """Every nemesis that touches one of these services (a matrix row for an area with these resources)."""
    return [nemesis for nemesis in registry().values() if nemesis.applies_to(set(services))]
