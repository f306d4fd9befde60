"""Citus area figures as medians (and spread) of N runs of the real workload against the lab's Citus cluster.

Run: .venv/bin/python -m benchmarks.citus_sharding.medians [--runs 3] [--scale 1]
`--scale` multiplies rows, statements and timed queries of the default workload. Every run uses its own
schemas (removed afterwards) on the lab's Citus and the lab's standalone PostgreSQL; REGRESS_LAB_* respected.
Exits 2, saying why, when no Citus answers (Debian has no Citus package).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from assets.citus_sharding import AREA
from assets.citus_sharding.config import CitusShardingConfig
from benchmarks.medians_table import print_medians
from regression_pipelines.kit import AreaSkipped, RunContext, run_area
from regression_pipelines.lab.settings import LabSettings
from resources.citus import CitusResource
from resources.postgres import PostgresResource

SHOWN = (
    "router.latency_p50_ms",
    "router.latency_p99_ms",
    "multi_shard.latency_p50_ms",
    "multi_shard.latency_p99_ms",
    "colocated_join.latency_p50_ms",
    "colocated_join.vanilla_latency_p50_ms",
    "colocated_join.ratio_to_vanilla",
    "copy.rows_per_s",
    "copy.vanilla_rows_per_s",
    "shards.skew",
    "differential.statements_compared",
    "differential.mismatches",
    "differential.unsupported",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=int, default=1)
    args = parser.parse_args()
    lab = LabSettings.from_env()
    citus = CitusResource(
        port=lab.citus_ports[0], user=lab.postgres_user, password=lab.postgres_password, dbname=lab.postgres_db
    )
    postgres = PostgresResource(
        port=lab.postgres_port, user=lab.postgres_user, password=lab.postgres_password, dbname=lab.postgres_db
    )
    base = CitusShardingConfig()
    config = CitusShardingConfig(
        accounts=base.accounts * args.scale,
        statements=base.statements * args.scale,
        copy_rows=base.copy_rows * args.scale,
        router_queries=base.router_queries * args.scale,
        multi_shard_queries=base.multi_shard_queries * args.scale,
        join_queries=base.join_queries * args.scale,
        max_seconds=1800,
    )
    samples: dict[str, list[float]] = defaultdict(list)
    seconds, failed = [], []
    with tempfile.TemporaryDirectory(prefix="citus_bench_") as out:
        for run in range(args.runs):
            ctx = RunContext(f"bench{run}{time.time_ns()}", {"citus": citus, "postgres": postgres}, Path(out))
            started = time.perf_counter()
            try:
                result = run_area(AREA, config, ctx)
            except AreaSkipped as skipped:
                print(f"citus_sharding skipped: {skipped.reason}", file=sys.stderr)
                return 2
            seconds.append(time.perf_counter() - started)
            failed += [f"run {run + 1}: {i.name}: {i.detail}" for i in result.invariants if not i.passed]
            for metric in result.metrics:
                samples[metric.name].append(metric.value)
    print(f"citus_sharding, {args.runs} runs at scale {args.scale} ({config.accounts} accounts, "
          f"{config.statements} statements, {config.copy_rows} COPY rows); run time median "
          f"{statistics.median(seconds):.1f}s")  # fmt: skip
    print_medians(samples, SHOWN)
    for line in failed:
        print(f"FAILED {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
