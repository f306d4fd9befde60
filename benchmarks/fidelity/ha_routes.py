"""ha_health's SELECT 1 latency next to pgbench on the same routes (HAProxy rw port, the leader's own port).

.venv/bin/python -m benchmarks.fidelity.ha_routes [--runs 3]
Each run is one real ha_health observation (calibration, then the harness sample); prints per run and the median
of the runs: harness p50, pgbench p50, their ratio, and what HAProxy adds (rw / leader, instrument and harness).
"""

from __future__ import annotations

import argparse
import statistics

from assets.ha_health.config import HealthConfig
from assets.ha_health.scenario import run_health
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.resources_config import lab_patroni

FIGURES = {
    "harness rw p50 ms": "health.rw_select_p50_ms",
    "pgbench rw p50 ms": "calibration.pgbench_rw_select_p50_ms",
    "rw ratio": "calibration.health.rw_select_p50_ratio",
    "harness leader p50 ms": "health.leader_select_p50_ms",
    "pgbench leader p50 ms": "calibration.pgbench_leader_select_p50_ms",
    "leader ratio": "calibration.health.leader_select_p50_ratio",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    target = lab_patroni(LabSettings.from_env()).checked_target()
    rows: dict[str, list[float]] = {label: [] for label in FIGURES}
    rows["HAProxy adds (pgbench rw/leader)"] = []
    for run in range(args.runs):
        result = run_health(target, HealthConfig())
        values = {m.name: m.value for m in result.metrics}
        for label, name in FIGURES.items():
            rows[label].append(values[name])
        rows["HAProxy adds (pgbench rw/leader)"].append(
            values["calibration.pgbench_rw_select_p50_ms"] / values["calibration.pgbench_leader_select_p50_ms"]
        )
        print(f"run {run + 1}: " + ", ".join(f"{label} {rows[label][-1]:.3f}" for label in rows), flush=True)
    print(f"median of {args.runs}:")
    for label, values in rows.items():
        print(f"  {label:34s} {statistics.median(values):.3f}")


if __name__ == "__main__":
    main()
