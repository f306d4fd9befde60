"""Cache-coherence figures as medians (and spread) of N runs against the lab's PostgreSQL and Redis.

Run: .venv/bin/python -m benchmarks.cache_coherence.medians [--runs 5] [--seconds 4] [--profile quick|deep]
A single run on a shared 2-core machine is noisy; quote medians and the min-max spread, not one run. Each run
draws its own seed (so its own operation mix): throughput and hit ratio vary with it by design.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from benchmarks.cache_coherence.lab_run import run_once
from benchmarks.medians_table import print_medians

SHOWN = (
    "ops_per_s",
    "hit_ratio",
    "cache_read_p50_ms",
    "cache_read_p99_ms",
    "db_read_p50_ms",
    "db_read_p99_ms",
    "stale_read_rate",
    "staleness_p99_ms",
    "staleness_max_ms",
    "divergent_keys",
    "value_mismatches",
    "reads_after_expiry",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=None, help="max_seconds per mode (default: the profile's)")
    parser.add_argument("--profile", default="quick")
    args = parser.parse_args()
    samples: dict[str, list[float]] = defaultdict(list)
    failures = 0
    for _ in range(args.runs):
        result = run_once({"profile": args.profile, "max_seconds": args.seconds})
        failures += not result.all_invariants_passed
        for metric in result.metrics:
            samples[metric.name].append(metric.value)
    print(f"{args.runs} runs, profile {args.profile}, invariant failures: {failures}")
    names = [f"{mode}.{name}" for mode in ("cache_aside", "write_through") for name in SHOWN]
    print_medians(samples, [*names, "calibration.redis_get_p50_ms", "calibration.pgbench_select_p50_ms"])


if __name__ == "__main__":
    main()
