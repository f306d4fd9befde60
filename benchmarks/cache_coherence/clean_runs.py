"""False alarms: N clean runs of a profile, each with a seed of its own; every check must pass in every run.

Run: .venv/bin/python -m benchmarks.cache_coherence.clean_runs --profile quick --runs 10 [--out FILE.jsonl]
Prints one line per run (seed, seconds, failed checks, errors, reads checked, coverage) and the count of runs
with any failed check; appends the same as JSON lines to --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.cache_coherence.lab_run import run_once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    overrides = {"profile": args.profile, **dict(item.split("=", 1) for item in args.settings)}
    alarms = 0
    for index in range(args.runs):
        started = time.monotonic()
        result = run_once(overrides)
        seconds = time.monotonic() - started
        failed = {inv.name: inv.detail[:300] for inv in result.invariants if not inv.passed}
        alarms += bool(failed)
        metrics = {m.name: m.value for m in result.metrics}
        line = {
            "run": index + 1,
            "profile": args.profile,
            "seed": result.environment.get("seed"),
            "seconds": round(seconds, 1),
            "failed": failed,
            "error_rate": metrics.get("error_rate"),
            "reads_checked": sum(v for k, v in metrics.items() if k.endswith(".reads_checked")),
            "hits": sum(v for k, v in metrics.items() if k.endswith(".hits")),
            "coverage": result.environment.get("coverage_summary"),
            "plan": json.loads(str(result.environment.get("plan", "{}"))),
        }
        print(json.dumps(line), flush=True)
        if args.out:
            with args.out.open("a") as out:
                out.write(json.dumps(line) + "\n")
    print(f"{args.runs} clean runs of profile {args.profile}: {alarms} with a failed check")


if __name__ == "__main__":
    main()
