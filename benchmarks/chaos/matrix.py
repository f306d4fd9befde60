"""The whole chaos matrix on the lab: every non-destructive area x every nemesis touching a service it uses.

Each cell runs through the area's real Dagster asset (the kit's factory) with the nemesis at 0.5 s into the
workload for 1 s (small area settings: tests/chaos.py MATRIX_SETTINGS), and is judged as the test judges it:
passed, failed with the nemesis named, not started (the area has no `workload` phase yet), skipped (its system
is not there), or a finding (crashed, failed without naming the nemesis, left things behind, checks missing,
no figures, step failure). After each cell the touched service must answer a fresh client again. The table
(cell, outcome, failed checks, time to recover, lost/duplicated, run time) goes to benchmarks/chaos/RESULTS.md.

Run: .venv/bin/python -m benchmarks.chaos.matrix [--areas a,b] [--nemeses x,y] [--out FILE] [--seed N]
Needs the lab (`regress lab up`; Patroni for ha_health, Citus for citus_sharding, else those cells are skipped).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path

import dagster as dg

from regression_pipelines.kit import chaos
from regression_pipelines.lab import lifecycle
from regression_pipelines.lab.services import get as lab_service
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.measure import describe_error
from tests.chaos import MATRIX_SETTINGS, lab_services_for, matrix_areas, run_cell, service_healthy
from tests.chaos_areas import lab_resources

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--areas", default="", help="comma-separated areas (default: every non-destructive one)")
    parser.add_argument("--nemeses", default="", help="comma-separated nemeses (default: all)")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--seed", type=int, default=0, help="nemesis_seed of every cell")
    parser.add_argument("--merge", action="store_true", help="keep the other cells of the previous run's JSON")
    args = parser.parse_args()
    areas = matrix_areas()
    chosen = [areas[a] for a in args.areas.split(",")] if args.areas else list(areas.values())
    cells = [c for c in chaos.cells(chosen) if not args.nemeses or c.nemesis in args.nemeses.split(",")]
    settings = LabSettings.from_env()
    outcomes = []
    with tempfile.TemporaryDirectory() as home, dg.DagsterInstance.ephemeral(tempdir=home) as instance:
        json_path = Path(args.out).with_suffix(".json")
        previous = json.loads(json_path.read_text()) if args.merge and json_path.exists() else []
        kept = [_from_row(row) for row in previous]
        for index, cell in enumerate(cells, 1):
            try:
                outcome = _run(cell, areas, settings, Path(home), instance, args.seed)
            except Exception as exc:  # e.g. the lab could not bring a service up for the cell: a finding, go on
                outcome = chaos.CellOutcome(cell, "lab unusable", describe_error(exc))
            outcomes.append(outcome)
            print(f"[{index}/{len(cells)}] {cell.name}: {outcome.outcome} ({outcome.seconds or 0:.1f} s) "
                  f"{outcome.detail[:160]}", flush=True)  # fmt: skip
            rerun = {o.cell.name for o in outcomes}
            merged = sorted([*(o for o in kept if o.cell.name not in rerun), *outcomes], key=lambda o: o.cell.name)
            Path(args.out).write_text(_report(merged, settings))  # after every cell: a crash keeps what ran
            json_path.write_text(json.dumps([o.row() for o in merged], indent=1, default=str))
    print(f"wrote {args.out}")


def _run(
    cell: chaos.Cell, areas: dict, settings: LabSettings, home: Path, instance: dg.DagsterInstance, seed: int
) -> chaos.CellOutcome:
    area = areas[cell.area]
    services = lab_services_for(area)
    if "citus" in services and not (available := lab_service("citus").available())[0]:
        return chaos.CellOutcome(cell, chaos.SKIPPED, f"citus {available[1]}"[:200])
    lifecycle.up(settings, services, out=lambda _line: None)
    resources = {key: value for key, value in lab_resources(settings).items() if key in area.resources}
    config = {**MATRIX_SETTINGS.get(cell.area, {}), "nemesis_seed": seed}
    outcome = run_cell(area, cell.nemesis, resources, home, config, instance)
    unhealthy = service_healthy(area, cell.nemesis, resources)
    if unhealthy:
        outcome.outcome, outcome.detail = "service unhealthy afterwards", f"{unhealthy}; {outcome.detail}"
    return outcome


def _from_row(row: dict) -> chaos.CellOutcome:
    area, nemesis = row["cell"].split(" x ")
    failed = [name for name in row.get("failed_checks", "").split(", ") if name]
    return chaos.CellOutcome(
        chaos.Cell(area, nemesis), row["outcome"], row.get("detail", ""), row.get("seconds"),
        row.get("recovered_after_s"), row.get("lost"), row.get("duplicated"), failed, row.get("named", False),
        row.get("adopted", False),
    )  # fmt: skip


def _report(outcomes: list[chaos.CellOutcome], settings: LabSettings) -> str:
    counts = Counter(o.outcome for o in outcomes)
    findings = [o for o in outcomes if not o.good]
    started = [o for o in outcomes if o.recovered_after_s is not None]
    lines = [
        "# Chaos matrix: every non-destructive area x every nemesis on a service it uses",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()} (lab dir {settings.lab_dir}), "
        "`python -m benchmarks.chaos.matrix`. Each cell: the area's Dagster asset with small settings "
        "(tests/chaos.py), the nemesis at 0.5 s into the workload for 1 s.",
        "",
        "Outcomes: " + ", ".join(f"{n} {c}" for n, c in counts.most_common()) + f" ({len(outcomes)} cells).",
        f"Findings (not a verdict the matrix accepts): {len(findings)}. Cells where the nemesis acted: {len(started)}.",
        "",
        chaos.markdown_table(outcomes),
        "",
    ]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
