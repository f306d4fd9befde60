"""HA failover area: Patroni health (hourly-safe) and measured failover with a write ledger (opt-in).

Thin glue only: resource -> scenario -> MaterializeResult. Needs the resource key `patroni`
(`resources.patroni.PatroniResource`). No `from __future__ import annotations` here: Dagster must
see the Config class itself, not a string annotation.
"""

from pathlib import Path

import dagster as dg
from pydantic import Field

from assets.ha_failover.failover import FAILOVER_INVARIANTS, FailoverConfig, run_failover
from assets.ha_failover.faults import Mode, choose_injector, parse_mode
from assets.ha_failover.guard import LAB_TARGET, require_destructive_opt_in
from assets.ha_failover.health import HEALTH_INVARIANTS, HealthConfig, run_health
from regression_pipelines.area_glue import invariant_check_specs, performance_check, to_materialize_result
from resources.patroni import PatroniResource

GROUP = "areas"
HEALTH_KEY = "ha_health"
FAILOVER_KEY = "ha_failover"


@dg.asset(
    name=HEALTH_KEY,
    group_name=GROUP,
    check_specs=invariant_check_specs(HEALTH_KEY, HEALTH_INVARIANTS),
    description="Patroni health: one leader (REST and SQL agree), replicas streaming, lag, timeline, "
    "HAProxy routing. Non-destructive, safe to run hourly.",
    kinds={"postgres", "patroni"},
    tags={"destructive": "false"},
)
def ha_health(patroni: PatroniResource) -> dg.MaterializeResult:
    target = patroni.checked_target()
    result = run_health(target, HealthConfig(maximum_lag_bytes=patroni.maximum_lag_bytes))
    return to_materialize_result(result, HEALTH_INVARIANTS)


class HaFailoverConfig(dg.Config):
    """Run config of the destructive scenario; nothing happens unless allow_destructive is true."""

    mode: str = Field(
        default=Mode.SWITCHOVER.value,
        description="switchover, kill_patroni_postmaster, "
        "kill_postmaster, pause, or kill_patroni (orphaned primary, split-brain demo)",
    )
    allow_destructive: bool = Field(default=False, description="Must be true: this kills or pauses members")
    target: str = Field(default=LAB_TARGET, description="'lab' (loopback lab) or the resource's host, allow-listed")
    allow_list: list[str] = Field(default_factory=list, description="Non-lab hosts you own and allow faults on")
    pause_seconds: float = Field(default=20.0, description="mode=pause: how long the leader stays frozen")
    write_rate_hz: float = Field(default=20.0, description="Ledger writes per second through HAProxy rw")
    max_seconds: float = Field(default=120.0, description="Bound on every wait after the fault")
    recovery_slo_s: float = Field(default=30.0, description="Largest acceptable client write outage")
    expect_zero_loss: bool = Field(
        default=True, description="Fail on any lost acknowledged write (always on in synchronous_mode)"
    )
    command_template: str = Field(
        default="",
        description="For non-lab targets: command per action, e.g. 'ssh {host} sudo pg-fault {action} {member}'",
    )


@dg.asset(
    name=FAILOVER_KEY,
    group_name=GROUP,
    check_specs=invariant_check_specs(FAILOVER_KEY, FAILOVER_INVARIANTS),
    description="DESTRUCTIVE, opt-in: injects one real fault on the Patroni leader while a ledger writer "
    "runs through HAProxy; measures outage, time to leader, lost/phantom writes, split brain, rejoin.",
    kinds={"postgres", "patroni"},
    tags={"destructive": "true"},
)
def ha_failover(
    context: dg.AssetExecutionContext, config: HaFailoverConfig, patroni: PatroniResource
) -> dg.MaterializeResult:
    mode = parse_mode(config.mode)
    require_destructive_opt_in(config.allow_destructive, config.target, config.allow_list, patroni.host)
    target = patroni.checked_target()
    local = None
    if config.target == LAB_TARGET and mode is not Mode.SWITCHOVER and not config.command_template:
        from assets.ha_failover.lab_faults import lab_injector

        local = lab_injector(target)
    injector = choose_injector(mode, target, config.command_template, local)
    output_dir = Path(context.instance.storage_directory()) / "ha_failover" / context.run.run_id
    scenario = FailoverConfig(
        mode=mode,
        run_id=context.run.run_id,
        output_dir=output_dir,
        pause_seconds=config.pause_seconds,
        write_rate_hz=config.write_rate_hz,
        max_seconds=config.max_seconds,
        recovery_slo_s=config.recovery_slo_s,
        expect_zero_loss=config.expect_zero_loss,
    )
    result = run_failover(target, scenario, injector)
    context.log.info(f"ha_failover {mode.value}: history at {result.environment['history_jsonl']}")
    return to_materialize_result(result, FAILOVER_INVARIANTS)


ASSETS = [ha_health, ha_failover]
# Static bounds next to the learned baselines: an outage over 30 s or any lost acknowledged write is a
# breach on its own, whatever the history says.
ASSET_CHECKS = [
    performance_check(HEALTH_KEY),
    performance_check(
        FAILOVER_KEY,
        {"failover.outage_s": {"upper_bound": 30.0}, "failover.lost_acknowledged": {"upper_bound": 0.0}},
    ),
]
