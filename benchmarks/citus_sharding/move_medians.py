"""Shard-move figures (move duration, write outage on the moved shard, lost/duplicated rows) as medians of N
runs per transfer mode against the lab's Citus cluster.

Run: .venv/bin/python -m benchmarks.citus_sharding.move_medians [--runs 3] [--rows 20000]
Moves only the run's own shards (a colocation group of their own) and removes them afterwards; exits 2,
saying why, when no Citus answers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from assets.citus_shard_move import AREA
from assets.citus_shard_move.config import TRANSFER_MODES, ShardMoveConfig
from benchmarks.medians_table import print_medians
from regression_pipelines.kit import AreaSkipped, RunContext, run_area
from regression_pipelines.lab.settings import LabSettings
from resources.citus import CitusResource

SHOWN = (
    "move.duration_s",
    "move.write_outage_s",
    "write.latency_p50_ms",
    "write.latency_p99_ms",
    "write.moved_shard_max_during_move_ms",
    "ledger.acknowledged",
    "ledger.lost",
    "ledger.duplicates",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20000, help="rows in the table whose shard moves")
    args = parser.parse_args()
    lab = LabSettings.from_env()
    citus = CitusResource(
        port=lab.citus_ports[0], user=lab.postgres_user, password=lab.postgres_password, dbname=lab.postgres_db
    )
    failed = []
    with tempfile.TemporaryDirectory(prefix="citus_move_bench_") as out:
        for mode in TRANSFER_MODES:
            config = ShardMoveConfig(allow_destructive=True, transfer_mode=mode, initial_rows=args.rows)
            samples: dict[str, list[float]] = defaultdict(list)
            for run in range(args.runs):
                ctx = RunContext(f"movebench{run}{time.time_ns()}", {"citus": citus}, Path(out))
                try:
                    result = run_area(AREA, config, ctx)
                except AreaSkipped as skipped:
                    print(f"citus_shard_move skipped: {skipped.reason}", file=sys.stderr)
                    return 2
                failed += [f"{mode} run {run + 1}: {i.name}: {i.detail}" for i in result.invariants if not i.passed]
                for metric in result.metrics:
                    samples[metric.name].append(metric.value)
            print(f"\ntransfer_mode={mode}, {args.runs} runs, {args.rows} rows, {config.write_rate_hz:g} writes/s")
            print_medians(samples, SHOWN, width=10)
    for line in failed:
        print(f"FAILED {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
