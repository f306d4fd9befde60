"""HA failover (destructive, opt-in): one real fault on the Patroni leader while a ledger writer runs.

Needs the `patroni` resource. Faults come from local signals (lab), Patroni's REST API or a command template.
"""

from __future__ import annotations

from typing import Any

from assets.ha_failover.config import FailoverConfig
from assets.ha_failover.faults import LocalSignalInjector, Mode, choose_injector
from assets.ha_failover.scenario import FAILOVER_INVARIANTS, RunPlace, run_failover
from regression_pipelines.kit import Area, RunContext
from regression_pipelines.kit.guard import LAB_TARGET
from regression_pipelines.kit.nemeses.lab import patroni_lab_control
from regression_pipelines.results import ScenarioResult


def run(config: FailoverConfig, ctx: RunContext) -> ScenarioResult:
    patroni: Any = ctx.resource("patroni")  # opt-in, allow_list and target are checked by the kit (kit/guard.py)
    target = patroni.checked_target()
    local = None
    if config.target == LAB_TARGET and config.fault_mode is not Mode.SWITCHOVER and not config.command_template:
        control = patroni_lab_control([(m.name, m.rest_port, m.pg_port) for m in target.members], target.host)
        local = LocalSignalInjector(pids=control.pids, restart_member=control.restart_member)
    injector = choose_injector(config.fault_mode, target, config.command_template, local)
    result = run_failover(target, config, injector, RunPlace(ctx.run_id, ctx.output_dir), ctx.sup)
    ctx.log.info(f"ha_failover {config.mode}: history at {result.environment['history_jsonl']}")
    return result


AREA = Area(
    name="ha_failover",
    description="DESTRUCTIVE, opt-in: injects one real fault on the Patroni leader while a ledger writer runs "
    "through HAProxy; measures outage, time to leader, lost/phantom writes, split brain, rejoin.",
    config=FailoverConfig,
    run=run,
    invariants=FAILOVER_INVARIANTS,
    resources=("patroni",),
    kinds=("postgres", "patroni"),
    destructive=True,
    # Static bounds next to the learned baselines: an outage over 30 s or any lost acknowledged write is a
    # breach on its own, whatever the history says.
    policies={"failover.outage_s": {"upper_bound": 30.0}, "failover.lost_acknowledged": {"upper_bound": 0.0}},
)
