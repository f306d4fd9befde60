"""Patroni health as clients see it: one leader, replicas streaming, lag, timeline, HAProxy routing."""

from __future__ import annotations

from typing import Any

from assets.ha_health.config import HealthConfig
from assets.ha_health.scenario import HEALTH_INVARIANTS, run_health
from regression_pipelines.kit import Area, RunContext
from regression_pipelines.results import ScenarioResult


def run(config: HealthConfig, ctx: RunContext) -> ScenarioResult:
    patroni: Any = ctx.resource("patroni")
    return run_health(patroni.checked_target(), config, ctx.sup)


AREA = Area(
    name="ha_health",
    description="Patroni health: one leader (REST and SQL agree), replicas streaming, lag, timeline, "
    "HAProxy routing. Non-destructive, safe to run hourly.",
    config=HealthConfig,
    run=run,
    invariants=HEALTH_INVARIANTS,
    resources=("patroni",),
    kinds=("postgres", "patroni"),
)
