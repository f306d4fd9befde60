"""Which checks fail, and on which shapes, over N seeded runs of citus_sharding on the lab's Citus (one version).

Run once per Citus version (the lab runs REGRESS_LAB_CITUS_VERSION; `make citus` builds it):
    .venv/bin/python -m benchmarks.citus_sharding.reach --profile quick --seeds 1-10
It prints one line per run (seconds, failed checks, mismatching shapes, the statement a misplacement was traced
to) and a summary: runs with each check failed, and the shapes that mismatched. On a version with no known bug in
the area's scope every check must pass (the false-alarm count); on one with a bug, the summary says which check
caught it and how often. Exits 2 when no Citus answers.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from assets.citus_sharding import AREA
from regression_pipelines.kit import AreaSkipped, RunContext, run_area
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.results import ScenarioResult
from resources.citus import CitusResource
from resources.postgres import PostgresResource


def seeds(text: str) -> list[int]:
    low, _, high = text.partition("-")
    return list(range(int(low), int(high or low) + 1))


def run_once(profile: str, seed: int, out: Path) -> tuple[ScenarioResult, float]:
    lab = LabSettings.from_env()
    citus = CitusResource(
        port=lab.citus_ports[0], user=lab.postgres_user, password=lab.postgres_password, dbname=lab.postgres_db,
        superuser_password=lab.citus_superuser_password,
    )  # fmt: skip
    postgres = PostgresResource(
        port=lab.postgres_port, user=lab.postgres_user, password=lab.postgres_password, dbname=lab.postgres_db
    )
    ctx = RunContext(f"reach{time.time_ns()}", {"citus": citus, "postgres": postgres}, out / f"{profile}-{seed}")
    started = time.perf_counter()
    result = run_area(AREA, AREA.config(profile=profile, seed=seed, calibrate=False), ctx)
    return result, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("quick", "deep"))
    parser.add_argument("--seeds", default="1-10", help="a seed or a range, e.g. 1-10")
    args = parser.parse_args()
    failed: Counter[str] = Counter()
    shapes: Counter[str] = Counter()
    culprits: Counter[str] = Counter()
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds(args.seeds):
            try:
                result, took = run_once(args.profile, seed, Path(tmp))
            except AreaSkipped as skipped:
                print(f"skipped: {skipped.reason}")
                return 2
            seconds.append(took)
            bad = sorted(inv.name for inv in result.invariants if not inv.passed)
            failed.update(bad)
            mismatching = str(result.environment.get("mismatch_kinds", "none"))
            shapes.update(part.split(" x")[0] for part in mismatching.split(", ") if part != "none")
            rows = next(inv for inv in result.invariants if inv.name == "rows_in_right_shard")
            culprit = str(rows.facts.get("culprit", ""))
            if culprit:
                culprits[culprit] += 1
            print(
                f"{result.environment.get('citus_version')} {args.profile} seed {seed}: {took:.0f} s; failed "
                f"{bad or 'none'}; mismatching shapes: {mismatching}; misplaced by: {culprit or '-'}",
                flush=True,
            )
            for shape, example in json.loads(str(result.environment.get("mismatch_examples", "{}"))).items():
                print(f"    {shape}: {example}")
    runs = len(seconds)
    print(f"\n{runs} runs, median {sorted(seconds)[runs // 2]:.0f} s, max {max(seconds):.0f} s")
    print("runs with each check failed:", dict(failed) or "none")
    print("runs with each shape mismatching:", dict(shapes) or "none")
    print("runs with rows misplaced, by the statement's shape:", dict(culprits) or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
