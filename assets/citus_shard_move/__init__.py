"""Citus shard move (destructive, opt-in): a shard moved between workers while a ledger writer commits rows."""

from __future__ import annotations

import re
import secrets
from typing import Any

from assets.citus_shard_move import scenario
from assets.citus_shard_move.config import ShardMoveConfig
from regression_pipelines.kit import Area, AreaSkipped, RunContext
from regression_pipelines.results import ScenarioResult
from resources.citus import CitusUnavailable


def run(config: ShardMoveConfig, ctx: RunContext) -> ScenarioResult:
    citus: Any = ctx.resource("citus")  # opt-in and allow_list are checked by the kit (kit/guard.py)
    try:
        version = citus.probe()
    except CitusUnavailable as unavailable:
        raise AreaSkipped(unavailable.reason) from None
    schema = f"regress_citus_move_{re.sub(r'[^a-z0-9]', '', ctx.run_id.lower())[:8]}_{secrets.token_hex(3)}"
    cluster = scenario.Citus(citus.connect, citus.connect_node, version)
    return scenario.run(config, cluster, schema, ctx.sup, ctx.log)


AREA = Area(
    name="citus_shard_move",
    description="DESTRUCTIVE, opt-in: moves one shard (and its co-located shard) between Citus workers while a "
    "writer commits numbered rows through the coordinator; lost/duplicate acknowledged rows, write outage on the "
    "moved shard from committed rows' timestamps, move duration. Skipped when no Citus is reachable.",
    config=ShardMoveConfig,
    run=run,
    invariants=scenario.INVARIANTS,
    resources=("citus",),
    kinds=("citus", "postgres"),
    destructive=True,
    policies={"ledger.lost": {"upper_bound": 0.0}},
)
