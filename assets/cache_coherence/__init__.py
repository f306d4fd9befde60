"""Cache coherence: PostgreSQL fronted by Redis under concurrent readers and writers (cache-aside, write-through)."""

from __future__ import annotations

from typing import Any

from assets.cache_coherence import scenario
from assets.cache_coherence.config import CacheConfig
from regression_pipelines import calibration
from regression_pipelines.kit import Area, RunContext
from regression_pipelines.results import ScenarioResult


def run(config: CacheConfig, ctx: RunContext) -> ScenarioResult:
    postgres: Any = ctx.resource("postgres")
    redis: Any = ctx.resource("redis")
    cache = redis.client(pool_size=config.readers + config.writers + 4)
    postgres.connect().close()  # fail fast, naming the field, before any thread starts
    ctx.log.info(f"cache_coherence against {postgres.describe()} and redis {redis.host}:{redis.port}")

    def calibrate(redis_key: str, pg_script: str, clients: int) -> list[calibration.Calibration]:
        """The field's instruments against the same servers (passwords through env only, never logged)."""
        found = [
            calibration.redis_get(redis.host, redis.port, redis_key, clients, password=redis.password),
            calibration.pgbench(
                postgres.host,
                postgres.port,
                postgres.user,
                postgres.dbname,
                pg_script,
                clients,
                seconds=config.calibration_seconds,
                password=postgres.password,
            ),
        ]
        for probe in found:
            ctx.log.info(f"calibration {probe.describe()}")
        return found

    return scenario.run(config, postgres.connect, cache, calibrate if config.calibrate else None)


AREA = Area(
    name="cache_coherence",
    description="PostgreSQL fronted by Redis under concurrent readers/writers: hit ratio, latency, stale reads.",
    config=CacheConfig,
    run=run,
    invariants=scenario.INVARIANTS,
    resources=("postgres", "redis"),
    kinds=("postgres", "redis"),
)
