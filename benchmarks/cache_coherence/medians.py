"""Cache-coherence figures as medians (and spread) of N runs against the lab's PostgreSQL and Redis.

Run: .venv/bin/python -m benchmarks.cache_coherence.medians [--runs 5] [--seconds 4]
A single run on a shared 2-core machine is noisy; quote medians and the min-max spread, not one run.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from assets.cache_coherence import scenario
from assets.cache_coherence.config import CacheConfig
from benchmarks.medians_table import print_medians
from regression_pipelines.lab.settings import LabSettings
from resources.postgres import PostgresResource
from resources.redis import RedisResource

SHOWN = (
    "ops_per_s",
    "hit_ratio",
    "cache_read_p50_ms",
    "cache_read_p99_ms",
    "db_read_p50_ms",
    "db_read_p99_ms",
    "stale_read_rate",
    "stale_read_nines",
    "staleness_p99_ms",
    "staleness_max_ms",
    "divergent_keys",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="max_seconds per mode")
    args = parser.parse_args()
    lab = LabSettings.from_env()
    pg = PostgresResource(
        port=lab.postgres_port, user=lab.postgres_user, password=lab.postgres_password, dbname=lab.postgres_db
    )
    cache = RedisResource(port=lab.redis_port).client()
    samples: dict[str, list[float]] = defaultdict(list)
    failures = 0
    for _ in range(args.runs):
        result = scenario.run(CacheConfig(max_seconds=args.seconds), pg.connect, cache)
        failures += not result.all_invariants_passed
        for metric in result.metrics:
            samples[metric.name].append(metric.value)
    print(f"{args.runs} runs, {args.seconds:g} s per mode, invariant failures: {failures}")
    print_medians(samples, [f"{mode}.{name}" for mode in ("cache_aside", "write_through") for name in SHOWN])


if __name__ == "__main__":
    main()
