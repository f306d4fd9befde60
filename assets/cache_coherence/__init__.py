"""Cache coherence: PostgreSQL fronted by Redis under concurrent readers and writers (cache-aside, write-through)."""

from __future__ import annotations

from typing import Any

import psycopg
import redis

from assets.cache_coherence import scenario
from assets.cache_coherence.config import CacheConfig
from assets.cache_coherence.store import prefix_exists, remove_prefix
from regression_pipelines import calibration
from regression_pipelines.kit import Area, RunContext
from regression_pipelines.kit.observe import redis as observe_redis
from regression_pipelines.results import ScenarioResult


def bytes_client(checked: redis.Redis, pool_size: int) -> redis.Redis:
    """A client like `checked` (same server, password, database, timeouts) that keeps keys and values as bytes."""
    kwargs = checked.connection_pool.connection_kwargs
    names = ("host", "port", "password", "db", "socket_timeout", "socket_connect_timeout")
    settings = {k: kwargs[k] for k in names if k in kwargs}  # what the pool was given; defaults otherwise
    pool = redis.BlockingConnectionPool(max_connections=pool_size, decode_responses=False, **settings)
    return redis.Redis(connection_pool=pool)


def run(config: CacheConfig, ctx: RunContext) -> ScenarioResult:
    postgres: Any = ctx.resource("postgres")
    redis_resource: Any = ctx.resource("redis")
    checked = redis_resource.client(pool_size=2)  # fails fast naming the field (preflight) when unusable
    postgres.connect().close()
    cache = bytes_client(checked, config.redis_pool_size)
    ctx.log.info(f"cache_coherence ({config.profile}) against {postgres.describe()} and redis {redis_resource.host}:"
                 f"{redis_resource.port}")  # fmt: skip

    def calibrate(redis_key: str, pg_script: str, clients: int) -> list[calibration.Calibration]:
        """The field's instruments against the same servers (passwords through env only, never logged)."""
        found = [
            calibration.redis_get(redis_resource.host, redis_resource.port, redis_key, clients,
                                  password=redis_resource.password),
            calibration.pgbench(postgres.host, postgres.port, postgres.user, postgres.dbname, pg_script, clients,
                                seconds=config.calibration_seconds, password=postgres.password),
        ]  # fmt: skip
        for probe in found:
            ctx.log.info(f"calibration {probe.describe()}")
        return found

    observe = observe_redis.connector(checked)
    services = scenario.Services(
        connect=postgres.connect,
        cache=cache,
        observe_redis=lambda: observe_redis.snapshot(observe),
        sample_redis=lambda: observe_redis.sample(observe),
        calibrate=calibrate if config.calibrate else None,
        output_dir=ctx.output_dir,
        remove_table=lambda table: _drop_table(postgres.connect, table),
        table_exists=lambda table: _table_exists(postgres.connect, table),
        remove_prefix=lambda prefix: _fresh_redis(checked, lambda c: remove_prefix(c, prefix)),
        prefix_exists=lambda prefix: _fresh_redis(checked, lambda c: prefix_exists(c, prefix)),
    )
    try:
        return scenario.run(config, services, ctx.sup)
    finally:
        cache.close()
        checked.close()


def _drop_table(connect: Any, table: str) -> None:
    """Through a fresh connection (the run's may be what broke)."""
    conn: psycopg.Connection = connect()
    with conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def _table_exists(connect: Any, table: str) -> bool:
    conn: psycopg.Connection = connect()
    with conn:
        return bool(conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0])


def _fresh_redis(checked: redis.Redis, action: Any) -> Any:
    client = bytes_client(checked, 2)
    try:
        return action(client)
    finally:
        client.close()


AREA = Area(
    name="cache_coherence",
    description="PostgreSQL fronted by Redis under concurrent readers/writers: generated keys, values, TTLs and "
    "operation mixes; hit ratio, latency, stale reads, values intact, expiry honoured.",
    config=CacheConfig,
    run=run,
    invariants=scenario.INVARIANTS,
    resources=("postgres", "redis"),
    kinds=("postgres", "redis"),
)
