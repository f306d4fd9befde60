"""HA failover area: Patroni health (hourly-safe) and measured failover with a write ledger (opt-in).

Thin glue only: resource -> scenario -> MaterializeResult. Needs the resource key `patroni`
(`resources.patroni.PatroniResource`).
"""

from __future__ import annotations

import dagster as dg

from assets.ha_failover.health import HEALTH_INVARIANTS, HealthConfig, run_health
from regression_pipelines.area_glue import invariant_check_specs, to_materialize_result
from resources.patroni import PatroniResource

GROUP = "ha_failover"
HEALTH_KEY = "ha_health"


@dg.asset(
    name=HEALTH_KEY,
    group_name=GROUP,
    check_specs=invariant_check_specs(HEALTH_KEY, HEALTH_INVARIANTS),
    description="Patroni health: one leader (REST and SQL agree), replicas streaming, lag, timeline, "
    "HAProxy routing. Non-destructive, safe to run hourly.",
)
def ha_health(patroni: PatroniResource) -> dg.MaterializeResult:
    target = patroni.checked_target()
    result = run_health(target, HealthConfig(maximum_lag_bytes=patroni.maximum_lag_bytes))
    return to_materialize_result(result, HEALTH_INVARIANTS)


ASSETS = [ha_health]
ASSET_CHECKS: list[dg.AssetChecksDefinition] = []
