"""Run one area under the kit: the destructive guard, the supervisor, and the nemesis the config asks for.

The Dagster factory, `regress` and the tests all run areas through `run_area`, so a crash becomes a verdict,
cleanup always happens and a nemesis is scheduled the same way everywhere.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from regression_pipelines.kit import nemeses
from regression_pipelines.kit.config import AreaConfig
from regression_pipelines.kit.declaration import Area, AreaSkipped, RunContext
from regression_pipelines.kit.guard import require_destructive_opt_in
from regression_pipelines.kit.nemeses.schedule import NemesisSchedule, seeded_start
from regression_pipelines.kit.supervisor import Supervisor
from regression_pipelines.results import ScenarioResult


def run_area(
    area: Area, config: AreaConfig, ctx: RunContext, passthrough: tuple[type[BaseException], ...] = ()
) -> ScenarioResult:
    """The area's result under supervision; raises only AreaSkipped or an environment unusable from the start."""
    supervisor = Supervisor(area=area.name, checks=area.checks, log=ctx.log, passthrough=passthrough)
    ctx = replace(ctx, supervisor=supervisor)

    def body() -> ScenarioResult:
        found = endpoints(dict(ctx.resources))
        if area.destructive:
            _guard_destructive_area(area, config, found)
        schedule = _schedule(area, config, found, supervisor)
        result = area.run(config, ctx)
        if schedule is not None:
            result.comparable_on.update(
                nemesis=schedule.nemesis.name, nemesis_at_s=schedule.at_s, nemesis_for_s=schedule.for_s
            )
        return result

    return supervisor.run(body)


def endpoints(resources: dict[str, Any]) -> dict[str, nemeses.Endpoint]:
    """The services an area uses, as nemeses see them (a resource describes itself: `nemesis_endpoint()`)."""
    found = {}
    for key, resource in resources.items():
        describe = getattr(resource, "nemesis_endpoint", None)
        if callable(describe):
            found[key] = nemeses.Endpoint.from_description(key, describe())
        else:
            host, port = str(getattr(resource, "host", "127.0.0.1")), getattr(resource, "port", None)
            found[key] = nemeses.Endpoint(key, host, port if isinstance(port, int) else None)
    return found


def _guard_destructive_area(area: Area, config: AreaConfig, found: dict[str, nemeses.Endpoint]) -> None:
    """A destructive area runs only when opted in (else skipped) and only on loopback or allow-listed hosts."""
    if not config.allow_destructive:
        raise AreaSkipped(
            f"{area.name} is destructive and was not opted in: set allow_destructive: true in its run config "
            "(it acts only on the lab or hosts in allow_list)"
        )
    require_destructive_opt_in(
        f"{area.name} is destructive",
        config.allow_destructive,
        [endpoint.host for endpoint in found.values()],
        config.allow_list,
        target=getattr(config, "target", None),
    )


def _schedule(
    area: Area, config: AreaConfig, found: dict[str, nemeses.Endpoint], supervisor: Supervisor
) -> NemesisSchedule | None:
    """The nemesis the config names, checked before the workload (refusals end the step, touching nothing)."""
    if config.nemesis == nemeses.NONE:
        return None
    nemesis = nemeses.by_name(config.nemesis)
    if not nemesis.applies_to(set(found)):
        raise nemeses.NemesisError(
            f"{area.name}.nemesis: {nemesis.name} acts on {sorted(nemesis.services)}, which {area.name} does not use "
            f"(it uses {sorted(found)})"
        )
    if nemesis.destructive:
        hosts = [e.host for key, e in found.items() if key in nemesis.services]
        require_destructive_opt_in(
            f"{area.name}.nemesis={nemesis.name} {nemesis.description}", config.allow_destructive, hosts,
            config.allow_list,
        )  # fmt: skip
    target = nemeses.Target(
        area=area.name,
        endpoints=found,
        supervisor=supervisor,
        allow_destructive=config.allow_destructive,
        allow_list=tuple(config.allow_list),
        command_template=config.nemesis_command,
        seed=config.nemesis_seed,
    )
    nemesis.check(target)
    at_s = config.nemesis_at_s if config.nemesis_at_s is not None else seeded_start(nemesis.name, area.name,
                                                                                     config.nemesis_seed)  # fmt: skip
    schedule = NemesisSchedule(nemesis, target, at_s, config.nemesis_for_s)
    schedule.attach(supervisor)
    return schedule
