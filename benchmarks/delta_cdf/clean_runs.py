"""False alarms of the delta_cdf area: N clean runs of a profile, each with its own seed, through the kit.

`python -m benchmarks.delta_cdf.clean_runs --profile quick --runs 10` prints one line per run (seed, seconds,
failed checks) and the count of runs with any failed check; every failure is a false alarm or a real bug, and
the line names it. Tables live in a temporary folder, removed after each run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from assets.delta_cdf import AREA
from assets.delta_cdf.config import DeltaCdfConfig
from regression_pipelines.kit import RunContext, run_area
from resources.delta import DeltaLakeResource


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("quick", "deep"))
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=1)
    args = parser.parse_args()
    failed_runs, seconds = 0, []
    for seed in range(args.first_seed, args.first_seed + args.runs):
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            ctx = RunContext(f"clean-{seed}", {"delta": DeltaLakeResource(root=str(root / "delta"))}, root / "out")
            started = time.perf_counter()
            result = run_area(AREA, DeltaCdfConfig(profile=args.profile, seed=seed, spark="off"), ctx)
            seconds.append(time.perf_counter() - started)
            failed = {inv.name: inv.detail for inv in result.invariants if not inv.passed}
            failed_runs += bool(failed)
            versions = result.metric("table.versions").value
            print(
                f"seed {seed}: {seconds[-1]:.1f} s, {versions:.0f} versions, failed: "
                + ("; ".join(f"{n}: {d[:300]}" for n, d in failed.items()) or "none"),
                flush=True,
            )
    print(
        f"{args.profile}: {failed_runs} of {args.runs} runs with a failed check; "
        f"median {statistics.median(seconds):.1f} s, max {max(seconds):.1f} s"
    )


if __name__ == "__main__":
    main()
