"""ETL pipeline: multi-tenant jobs through RabbitMQ (extract -> transform -> load) into PostgreSQL with RLS.

Lineage: source_batch (the Parquet input) -> etl_pipeline (the run, its figures and pipeline invariants) ->
loaded_jobs (the loaded table and its data-quality check), so the asset graph shows where a failure entered.

Needs the `rabbitmq` and `postgres` resources; fault=broker_restart also needs allow_destructive and the lab's
own broker (the kit's `service_restarter`); any kit nemesis runs with `--set etl_pipeline.nemesis=<name>`.
"""

from __future__ import annotations

from typing import Any

from assets.etl_pipeline.config import EtlConfig
from assets.etl_pipeline.oracle import DATA_QUALITY, INVARIANTS, LOADED_JOBS, SOURCE_BATCH
from regression_pipelines.errors import ResourceConfigError
from regression_pipelines.kit import Area, RunContext, Stage
from regression_pipelines.kit.observe import rabbitmq as observe_rabbitmq
from regression_pipelines.results import ScenarioResult

_REPLAYING = False  # set while shrink replays run (one at a time, in the run's own thread)


def run(config: EtlConfig, ctx: RunContext) -> ScenarioResult:
    from assets.etl_pipeline import scenario  # not at import: worker processes import this package too

    rabbitmq: Any = ctx.resource("rabbitmq")
    postgres: Any = ctx.resource("postgres")
    restart = None
    if config.fault == "broker_restart":
        from regression_pipelines.kit.nemeses.lab import service_restarter  # the lab's own broker only

        what = "etl_pipeline.allow_destructive: fault=broker_restart restarts the broker"
        restart = service_restarter("rabbitmq", rabbitmq.host, rabbitmq.port, config.allow_destructive, what)
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
    broker = (rabbitmq.host, rabbitmq.port, rabbitmq.vhost, rabbitmq.management_url, rabbitmq.user, rabbitmq.password)
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
        observe_broker=observe_rabbitmq.observer(*broker),
        watch_broker=observe_rabbitmq.watcher(*broker),
    )
    if _REPLAYING:  # issue 19: a shrinking replay needs the verdict only; the broker's CLI takes seconds a look
        from dataclasses import replace as _replace

        services = _replace(services, observe_broker=None, watch_broker=None)
    ctx.log.info(f"etl_pipeline against {postgres.describe()} and amqp://{rabbitmq.host}:{rabbitmq.port}")
    result = scenario.run(config, services, ctx.sup, ctx.output_dir, ctx.log)
    _shrink(result, config, ctx)  # issue 19: a failed conservation/quality check shrunk by replay
    return result


def _shrink(result: ScenarioResult, config: EtlConfig, ctx: RunContext) -> None:
    """Replays under a supervisor of their own (fresh queues, tables, role; each removed afterwards)."""
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    from assets.etl_pipeline import shrink
    from regression_pipelines.kit import run_area

    def replay(replay_config: EtlConfig) -> ScenarioResult:
        global _REPLAYING
        _REPLAYING = True
        try:
            with tempfile.TemporaryDirectory(prefix="etl-replay-") as folder:
                return run_area(AREA, replay_config, replace(ctx, output_dir=Path(folder), supervisor=None))
        finally:
            _REPLAYING = False

    for check, text in shrink.shrink(result, config, replay, ctx.output_dir, ctx.log).items():
        result.environment[f"shrunk.{check}"] = text
        result.invariants = [
            replace(i, detail=f"{i.detail}; {text}") if i.name == check and not i.passed else i
            for i in result.invariants
        ]


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
