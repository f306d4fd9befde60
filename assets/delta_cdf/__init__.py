"""Delta Lake change data feed: is the feed a faithful, complete account of every commit, and how fast is it?"""

from __future__ import annotations

from typing import Any

from assets.delta_cdf import scenario
from assets.delta_cdf.config import DeltaCdfConfig
from assets.delta_cdf.engines import SparkEngine
from regression_pipelines.kit import Area, RunContext
from regression_pipelines.results import ScenarioResult
from resources.delta import SparkUnavailable


def run(config: DeltaCdfConfig, ctx: RunContext) -> ScenarioResult:
    delta: Any = ctx.resource("delta")
    uri = delta.new_table_uri("cdf")
    spark, reason = None, ""
    try:
        session, description = delta.spark_session(config.spark)
        spark = SparkEngine(session, description)
    except SparkUnavailable as unavailable:
        reason = unavailable.reason
        ctx.log.info(f"delta_cdf: Spark engine unavailable: {reason}")
    try:
        return scenario.run(config, uri, delta.remove_table, spark, reason, ctx.log)
    finally:
        if spark is not None:
            spark.stop()


AREA = Area(
    name="delta_cdf",
    description="Delta Lake change data feed on a seeded workload (appends, updates, deletes, MERGE, partition "
    "overwrites, a schema change, concurrent writers, OPTIMIZE, VACUUM): CDF replay against the model, "
    "feed shape, range splitting, commit metrics, time travel, delta-rs/DuckDB/Spark agreement.",
    config=DeltaCdfConfig,
    run=run,
    invariants=scenario.INVARIANTS,
    resources=("delta",),
    kinds=("deltalake", "duckdb", "spark"),
)
