"""Delta CDF area figures as medians (and spread) of N runs of the real workload, bigger than in `make test`.

Run: .venv/bin/python -m benchmarks.delta_cdf.medians [--runs 3] [--scale 5] [--spark-url sc://127.0.0.1:PORT]
`--scale` multiplies the rows and commits of the default workload. A Spark Connect URL adds Spark's snapshot
reads (pysail: `.venv/bin/python -m pysail spark server --port PORT`; add --checkpoint-interval 1000, as
pysail 0.7.2 cannot time-travel between checkpoints). Tables go under a temporary folder and are removed.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import defaultdict

from assets.delta_cdf import scenario
from assets.delta_cdf.config import DeltaCdfConfig
from assets.delta_cdf.engines import SparkEngine
from benchmarks.medians_table import print_medians
from resources.delta import DeltaLakeResource, SparkUnavailable

SHOWN = (
    "write.append_p50_ms",
    "write.append_p99_ms",
    "write.update_p50_ms",
    "write.update_p99_ms",
    "write.delete_p50_ms",
    "write.delete_p99_ms",
    "write.merge_p50_ms",
    "write.merge_p99_ms",
    "write.overwrite_p50_ms",
    "write.serial_commits_per_s",
    "write.concurrent_commits_per_s",
    "write.conflicts",
    "cdf.read_rows_per_s",
    "cdf.version_read_p50_ms",
    "cdf.version_read_p99_ms",
    "snapshot.delta-rs_rows_per_s",
    "snapshot.duckdb_rows_per_s",
    "snapshot.spark_rows_per_s",
    "table.files_per_version_mean",
    "table.files_before_optimize",
    "table.files_after_optimize",
    "table.bytes_per_commit",
    "optimize_s",
    "vacuum_s",
    "table.versions",
    "table.rows",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=int, default=5, help="multiplies rows and commits of the default workload")
    parser.add_argument("--spark-url", default="", help="sc://host:port of a Spark Connect server")
    parser.add_argument("--checkpoint-interval", type=int, default=10)
    args = parser.parse_args()
    base = DeltaCdfConfig()
    config = DeltaCdfConfig(
        initial_rows=base.initial_rows * args.scale * 10,
        rows_per_commit=base.rows_per_commit * args.scale,
        keys_per_change=base.keys_per_change * args.scale,
        serial_commits=base.serial_commits * args.scale,
        concurrent_commits=base.concurrent_commits * args.scale,
        checkpoint_interval=args.checkpoint_interval,
        replay_pairs=base.replay_pairs * 2,
        split_triples=base.split_triples * 2,
        spark="connect" if args.spark_url else "off",
        max_seconds=1800,
    )
    samples: dict[str, list[float]] = defaultdict(list)
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="delta_cdf_bench_") as root:
        delta = DeltaLakeResource(root=root, spark_connect_url=args.spark_url)
        for run in range(args.runs):
            spark, reason = None, ""
            try:
                spark = SparkEngine(*delta.spark_session(config.spark))
            except SparkUnavailable as exc:
                reason = exc.reason
            try:
                result = scenario.run(
                    config.model_copy(update={"seed": run + 1}),
                    delta.new_table_uri("bench"),
                    delta.remove_table,
                    spark,
                    reason,
                )
            finally:
                if spark is not None:
                    spark.stop()
            failed += [f"run {run + 1}: {i.name}: {i.detail[:200]}" for i in result.invariants if not i.passed]
            for metric in result.metrics:
                samples[metric.name].append(metric.value)
    print(
        f"{args.runs} runs, scale {args.scale} ({config.initial_rows} initial rows, "
        f"{config.serial_commits} serial + {config.writers}x{config.concurrent_commits} concurrent commits)"
    )
    print(
        f"environment: deltalake {result.environment['deltalake_version']}, spark: {result.environment['spark_engine']}"
    )
    print("invariant failures:", failed or "none")
    print_medians(samples, SHOWN)


if __name__ == "__main__":
    main()
