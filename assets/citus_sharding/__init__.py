"""Citus sharding: does the cluster still answer as one PostgreSQL would, and is its layout sound?"""

from __future__ import annotations

import re
import secrets
from typing import Any

from assets.citus_sharding import scenario
from assets.citus_sharding.config import CitusShardingConfig
from regression_pipelines.kit import Area, AreaSkipped, RunContext
from regression_pipelines.results import ScenarioResult
from resources.citus import CitusUnavailable


def run(config: CitusShardingConfig, ctx: RunContext) -> ScenarioResult:
    citus: Any = ctx.resource("citus")
    postgres: Any = ctx.resource("postgres")
    try:
        version = citus.probe()
    except CitusUnavailable as unavailable:
        raise AreaSkipped(unavailable.reason) from None
    cluster = scenario.Cluster(
        connect=citus.connect,
        connect_node=citus.connect_node,
        connect_superuser=citus.connect_superuser,
        version=version,
        target=citus.describe(),
    )
    schema = f"regress_citus_{re.sub(r'[^a-z0-9]', '', ctx.run_id.lower())[:8]}_{secrets.token_hex(3)}"
    return scenario.run(config, cluster, lambda: postgres.connect(autocommit=False), schema, ctx.output_dir, ctx.log)


AREA = Area(
    name="citus_sharding",
    description="Citus cluster: a seeded DML/query mix applied to Citus and to vanilla PostgreSQL and compared "
    "(distributed, co-located and reference tables), router/multi-shard/join latency, COPY ingest, and black-box "
    "checks of node health, placements, hash-range coverage, row placement, colocation and leftovers. "
    "Skipped when no Citus is reachable.",
    config=CitusShardingConfig,
    run=run,
    invariants=scenario.INVARIANTS,
    resources=("citus", "postgres"),
    kinds=("citus", "postgres"),
)
