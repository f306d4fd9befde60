"""False alarms and durations of a series of `regress run --areas etl_pipeline --json FILE` runs.

Run the series first (each run a seed of its own), e.g. for i in 1..10:
  REGRESS_LAB_PORT_OFFSET=... DAGSTER_HOME=... .venv/bin/regress run --areas etl_pipeline --json DIR/run$i.json \\
      [--set etl_pipeline.profile=deep]
then: .venv/bin/python -m benchmarks.etl_pipeline.series DIR[:DAGSTER_HOME] [...]
Prints per directory: runs, runs with a failed check (and which), median phase seconds (setup, workload, settle,
judge) and the median of the run's own phases summed, jobs/s, and the seeds and coverage of each run.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

PHASES = ("setup", "workload", "settle", "judge")


def _one(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    area = next(a for a in data["areas"] if a["area"] == "etl_pipeline")
    metrics = {m["name"]: m["value"] for m in area["metrics"]}
    return {
        "run": path.stem,
        "failed": {i["name"]: i["detail"][:200] for i in area["invariants"] if not i["passed"]},
        "phases": {p: metrics.get(f"phase.{p}_s") for p in PHASES},
        "jobs_per_s": metrics.get("throughput.jobs_per_s"),
        "produced": metrics.get("jobs.produced"),
        "shapes": metrics.get("coverage.shapes_exercised"),
        "value_classes": metrics.get("coverage.value_classes_used"),
        "refused_unexpectedly": metrics.get("coverage.refused_unexpectedly"),
    }


def summarize(folder: Path) -> dict[str, Any]:
    runs = [_one(p) for p in sorted(folder.glob("run*.json"), key=lambda p: int(p.stem.removeprefix("run")))]
    totals = [sum(v or 0 for v in r["phases"].values()) for r in runs]
    return {
        "folder": str(folder),
        "runs": len(runs),
        "failed_runs": [(r["run"], r["failed"]) for r in runs if r["failed"]],
        "median_phase_s": {p: round(statistics.median(r["phases"][p] or 0 for r in runs), 1) for p in PHASES},
        "median_total_s": round(statistics.median(totals), 1) if totals else None,
        "median_jobs_per_s": round(statistics.median(r["jobs_per_s"] or 0 for r in runs), 1) if runs else None,
        "per_run": runs,
    }


def recorded(dagster_home: str, limit: int = 50) -> list[dict[str, Any]]:
    """Seed, profile, pika version and coverage line of each etl_pipeline materialization in a DAGSTER_HOME."""
    import os

    os.environ["DAGSTER_HOME"] = dagster_home
    from dagster import AssetKey, DagsterInstance

    instance = DagsterInstance.get()
    found = instance.fetch_materializations(AssetKey("etl_pipeline"), limit=limit).records
    out = []
    for record in found:
        metadata = record.asset_materialization.metadata if record.asset_materialization else {}

        def value(key: str, md: Any = metadata) -> Any:
            return md[key].value if key in md else None

        out.append({"run_id": record.run_id[:8], "seed": value("env/seed"), "profile": value("env/profile"),
                    "pika": value("env/pika_version"), "coverage": value("env/coverage_summary")})  # fmt: skip
    return out


def main() -> None:
    for arg in sys.argv[1:]:
        folder, _, home = arg.partition(":")
        summary = summarize(Path(folder))
        if home:
            summary["recorded"] = recorded(home)
        print(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
