"""Dagster glue for the cache-coherence area: resources in, scenario run, metadata and checks out."""

import dagster as dg
from pydantic import Field

from assets.cache_coherence import scenario
from assets.cache_coherence.config import MODES, CacheConfig, CacheConfigError
from regression_pipelines.area_glue import invariant_check_specs, performance_check, to_materialize_result
from resources.postgres import PostgresResource
from resources.redis import RedisResource
from resources.warehouse import WarehouseResource

ASSET_KEY = "cache_coherence"


class CacheCoherenceConfig(dg.Config):
    """Run config; every field maps 1:1 to `CacheConfig` (validated there, with the field named on error)."""

    modes: list[str] = Field(default=list(MODES), description="cache_aside and/or write_through")
    keys: int = Field(default=100, description="Rows/keys in the cached table")
    readers: int = Field(default=4, description="Concurrent reader threads")
    writers: int = Field(default=2, description="Concurrent writer threads")
    writes_per_second: float = Field(default=200.0, description="Total paced write rate")
    max_ops: int = Field(default=20_000, description="Operation budget per mode")
    max_seconds: float = Field(default=4.0, description="Time budget per mode")
    ttl_seconds: float = Field(default=30.0, description="Cache TTL the application sets")
    settle_seconds: float = Field(default=0.5, description="Wait before comparing cache with database")
    max_stale_read_rate: float = Field(default=0.01, description="Bound for the stale-read check")
    fault: str = Field(default="none", description="none | skip_invalidation | delay_invalidation | no_ttl")
    delay_invalidation_ms: int = Field(default=0, description="Delay for fault=delay_invalidation")
    seed: int = Field(default=7, description="Seed of the key choice")


@dg.asset(
    key=ASSET_KEY,
    group_name="areas",
    description="PostgreSQL fronted by Redis under concurrent readers/writers: hit ratio, latency, stale reads.",
    check_specs=invariant_check_specs(ASSET_KEY, scenario.INVARIANTS),
    kinds={"postgres", "redis"},
    tags={"destructive": "false"},
)
def cache_coherence(
    context: dg.AssetExecutionContext,
    config: CacheCoherenceConfig,
    postgres: PostgresResource,
    redis: RedisResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    try:
        settings = CacheConfig(**{**config.model_dump(), "modes": tuple(config.modes)})
    except CacheConfigError as exc:
        raise dg.Failure(description=str(exc)) from None
    cache = redis.client(pool_size=settings.readers + settings.writers + 4)
    postgres.connect().close()  # fail fast, naming the field, before any thread starts
    context.log.info(f"cache_coherence against {postgres.describe()} and redis {redis.host}:{redis.port}")
    result = scenario.run(settings, postgres.connect, cache)
    warehouse.record(context.run.run_id, result)
    return to_materialize_result(result, scenario.INVARIANTS)


ASSETS = [cache_coherence]
ASSET_CHECKS = [performance_check(ASSET_KEY)]
