"""ETL pipeline: multi-tenant jobs through RabbitMQ (extract -> transform -> load) into PostgreSQL with RLS.

Lineage: source_batch (the Parquet input) -> etl_pipeline (the run, its figures and pipeline invariants) ->
loaded_jobs (the loaded table and its data-quality check), so the asset graph shows where a failure entered.

Needs the `rabbitmq` and `postgres` resources; fault=broker_restart also needs allow_destructive and the lab's
own broker.
"""

from __future__ import annotations

from typing import Any

from assets.etl_pipeline.config import EtlConfig
from assets.etl_pipeline.oracle import DATA_QUALITY, INVARIANTS, LOADED_JOBS, SOURCE_BATCH
from regression_pipelines.errors import ResourceConfigError
from regression_pipelines.kit import Area, RunContext, Stage
from regression_pipelines.results import ScenarioResult


def run(config: EtlConfig, ctx: RunContext) -> ScenarioResult:
    from assets.etl_pipeline import scenario  # not at import: worker processes import this package too

    rabbitmq: Any = ctx.resource("rabbitmq")
    postgres: Any = ctx.resource("postgres")
    restart = None
    if config.fault == "broker_restart":
        from assets.etl_pipeline.lab_faults import broker_restarter

        restart = broker_restarter(rabbitmq.host, rabbitmq.port, config.allow_destructive)
    rabbitmq.connection().close()  # fail fast, naming the field, before any process starts
    with postgres.connect() as conn:
        allowed = conn.execute("SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    if not (allowed and allowed[0]):
        raise ResourceConfigError(
            "PostgresResource",
            "user",
            f"role {postgres.user!r} cannot create the per-run non-owner worker role (an owner bypasses RLS)",
            f"ALTER ROLE {postgres.user} CREATEROLE, or use a role that has it",
        )
    services = scenario.Services(
        amqp_connect=rabbitmq.connection,
        amqp_params={
            "host": rabbitmq.host,
            "port": rabbitmq.port,
            "user": rabbitmq.user,
            "password": rabbitmq.password,
            "vhost": rabbitmq.vhost,
        },
        pg_connect=postgres.connect,
        pg_conninfo=postgres.conninfo(),
        restart_broker=restart,
    )
    ctx.log.info(f"etl_pipeline against {postgres.describe()} and amqp://{rabbitmq.host}:{rabbitmq.port}")
    return scenario.run(config, services, ctx.output_dir, ctx.log)


AREA = Area(
    name="etl_pipeline",
    description="Multi-tenant ETL through RabbitMQ (extract -> transform -> load, confirms, manual acks, DLQ) "
    "into PostgreSQL with row-level security: per-tenant conservation oracle, isolation, drained queues, "
    "Great Expectations on the loaded rows; throughput, latencies, queue depths, fairness.",
    config=EtlConfig,
    run=run,
    invariants=INVARIANTS,
    resources=("rabbitmq", "postgres"),
    kinds=("rabbitmq", "postgres"),  # Great Expectations judges the loaded_jobs stage
    stages=(
        Stage(
            SOURCE_BATCH,
            "The seeded batch of jobs the producers publish, as Parquet (read back before publishing): rows per "
            "tenant, malformed bodies, fingerprint, seed.",
            upstream=True,
            kinds=("parquet", "duckdb"),
        ),
        Stage(
            LOADED_JOBS,
            "The table the loaders filled (exported to Parquet before the run drops it), judged by the Great "
            "Expectations suite: rows per tenant.",
            kinds=("postgres", "parquet", "great_expectations"),
            checks=(DATA_QUALITY,),
        ),
    ),
)
