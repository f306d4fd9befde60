"""Citus sharding: does the cluster still answer as one PostgreSQL would, and is its layout sound?"""

from __future__ import annotations

import re
import secrets
from typing import Any

from assets.citus_sharding import scenario
from assets.citus_sharding.config import CitusShardingConfig
from regression_pipelines import calibration
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

    def calibrate(script: str) -> calibration.Calibration:
        """pgbench -M prepared on the coordinator, 1 client like the timed phase (password through env only)."""
        reading = calibration.pgbench(
            citus.host, citus.port, citus.user, citus.dbname, script, concurrency=1,
            seconds=config.calibration_seconds, password=citus.password, instrument="pgbench_router_select",
        )  # fmt: skip
        ctx.log.info(f"calibration {reading.describe()}")
        return reading

    return scenario.run(
        config,
        cluster,
        lambda: postgres.connect(autocommit=False),
        schema,
        ctx.output_dir,
        ctx.sup,
        ctx.log,
        calibrate if config.calibrate else None,
    )


AREA = Area(
    name="citus_sharding",
    description="Citus cluster: a seeded mix of generated operation shapes (key writes from other relations, "
    "repartitioned MERGE and joins, prepared generic plans, modifying CTEs, mixed transactions; adversarial values) "
    "applied to Citus and to vanilla PostgreSQL and compared (distributed, co-located and reference tables), a "
    "coverage account per shape, router/multi-shard/join latency, COPY ingest, and black-box checks of node "
    "health, placements, hash-range coverage, row placement, colocation and leftovers. "
    "Skipped when no Citus is reachable.",
    config=CitusShardingConfig,
    run=run,
    invariants=scenario.INVARIANTS,
    resources=("citus", "postgres"),
    kinds=("citus", "postgres"),
)
