"""Cache coherence: PostgreSQL fronted by Redis under concurrent readers and writers (cache-aside, write-through)."""

from __future__ import annotations

from typing import Any

from assets.cache_coherence import scenario
from assets.cache_coherence.config import CacheConfig
from regression_pipelines.kit import Area, RunContext
from regression_pipelines.results import ScenarioResult


def run(config: CacheConfig, ctx: RunContext) -> ScenarioResult:
    postgres: Any = ctx.resource("postgres")
    redis: Any = ctx.resource("redis")
    cache = redis.client(pool_size=config.readers + config.writers + 4)
    postgres.connect().close()  # fail fast, naming the field, before any thread starts
    ctx.log.info(f"cache_coherence against {postgres.describe()} and redis {redis.host}:{redis.port}")
    return scenario.run(config, postgres.connect, cache)


AREA = Area(
    name="cache_coherence",
    description="PostgreSQL fronted by Redis under concurrent readers/writers: hit ratio, latency, stale reads.",
    config=CacheConfig,
    run=run,
    invariants=scenario.INVARIANTS,
    resources=("postgres", "redis"),
    kinds=("postgres", "redis"),
)
