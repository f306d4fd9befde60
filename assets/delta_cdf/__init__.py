"""Delta Lake change data feed: is the feed a faithful, complete account of every commit, and how fast is it?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assets.delta_cdf import scenario
from assets.delta_cdf.config import DeltaCdfConfig
from assets.delta_cdf.engines import SparkEngine
from regression_pipelines.kit import Area, RunContext
from regression_pipelines.results import ScenarioResult

TABLE_KIND = "delta_table"  # what the kit's nemeses look for among the run's created things


def run(config: DeltaCdfConfig, ctx: RunContext) -> ScenarioResult:
    """Preflight (an unusable table root ends the step), then the supervised scenario on a registered table."""
    from resources.delta import SparkUnavailable  # the resource is Dagster's; the scenario never needs it

    delta: Any = ctx.resource("delta")
    uri = delta.new_table_uri("cdf")
    ctx.sup.created(TABLE_KIND, uri, remove=lambda: delta.remove_table(uri), exists=lambda: Path(uri).exists())
    spark, reason = None, ""
    try:
        session, description = delta.spark_session(config.spark)
        spark = SparkEngine(session, description)
        ctx.sup.on_cleanup("stop the Spark session", spark.stop)
    except SparkUnavailable as unavailable:
        reason = unavailable.reason
        ctx.log.info(f"delta_cdf: Spark engine unavailable: {reason}")
    return scenario.run(config, ctx.sup, uri, spark, reason, ctx.log, ctx.output_dir)


AREA = Area(
    name="delta_cdf",
    description="Delta Lake change data feed on a seeded, searching workload (appends, updates, deletes, MERGE with "
    "several clauses and large matched sets, schema evolution, partition overwrites on adversarial partition values, "
    "concurrent writers of every kind, OPTIMIZE, VACUUM): CDF replay against the model, feed shape, range splitting, "
    "commit metrics, time travel, the log as a ledger, delta-rs/DuckDB/Spark agreement; failures shrunk.",
    config=DeltaCdfConfig,
    run=run,
    invariants=scenario.INVARIANTS,
    resources=("delta",),
    kinds=("deltalake", "duckdb", "spark"),
)
