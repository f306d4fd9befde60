"""Report at scale: 50 metrics x 1,000 runs in a Dagster instance -> warehouse sync, scorecard, report, exports.

Run: .venv/bin/python -m benchmarks.report.render [--areas 5] [--metrics-per-area 10] [--runs 1000] [--repeat 3]

The history is written straight into a fresh in-memory instance (one materialization per area and run, with run
ids and timestamps 10 minutes apart, plus each run's invariant check results), with a few seeded steps and
failures. Each repeat then materializes the reporting assets from scratch (warehouse rebuilt) and loads the
report in Debian's Chromium. Prints medians (min-max) of: warehouse sync + scorecard, report render (Python),
exports, browser load until the first screen is drawn and until every chart is (scrolling through); and the
file's size, gzipped size and the plotly.js floor.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from plotly.offline import get_plotlyjs

from regression_pipelines.kit import Area, AreaConfig, RunContext
from regression_pipelines.measure import NO_OPERATION_ERRORS
from regression_pipelines.results import Metric, MetricKind, ScenarioResult, to_metadata
from tests.e2e.browser import chromium, scroll_through
from tests.report_history import materialize_reports

INVARIANTS = ("consistent", "no_lost_writes")
STEP_AT = 0.85  # every third metric steps up 20 % at this share of the history (a regression to find)


class BenchConfig(AreaConfig):
    pass


def _area(name: str) -> Area:
    def run(config: BenchConfig, ctx: RunContext) -> ScenarioResult:
        raise NotImplementedError("history is written directly")

    return Area(name=name, description=f"benchmark {name}", config=BenchConfig, run=run, invariants=INVARIANTS)


def _values(runs: int, metrics: int, rng: np.random.Generator) -> np.ndarray:
    level = rng.uniform(1, 100, metrics)
    values = level * (1 + rng.normal(0, 0.02, (runs, metrics)))
    step = int(runs * STEP_AT)
    values[step:, ::3] *= 1.2
    return values


def seed(instance: dg.DagsterInstance, areas: list[Area], runs: int, metrics: int, later: int = 0) -> Any:
    """Write `runs` runs now; returns a function that writes the next of `later` runs (one per call)."""
    rng = np.random.default_rng(11)
    start = time.time() - runs * 600
    series = {area.name: _values(runs + later, metrics, rng) for area in areas}
    for i in range(runs):
        _write_run(instance, areas, series, i, start + i * 600, metrics, rng)
    following = iter(range(runs, runs + later))

    def next_run() -> None:
        i = next(following)
        _write_run(instance, areas, series, i, start + i * 600, metrics, rng)

    return next_run


def _write_run(
    instance: dg.DagsterInstance,
    areas: list[Area],
    series: dict[str, np.ndarray],
    i: int,
    at: float,
    metrics: int,
    rng: np.random.Generator,
) -> None:
    run_id = str(uuid.uuid4())
    for area in areas:
        result = ScenarioResult(
            area.name,
            [
                Metric(f"m{j:02d}_ms", float(series[area.name][i, j]), "ms", samples=1000)
                if j < metrics - 1
                else Metric("operations", 1000.0 + i, "ops", kind=MetricKind.VOLUME)
                for j in range(metrics)
            ],
        )
        materialization = dg.AssetMaterialization(area.name, metadata=to_metadata(result))
        _store(instance, run_id, at, StepMaterializationData(materialization), DagsterEventType.ASSET_MATERIALIZATION)
        record = instance.fetch_materializations(dg.AssetKey(area.name), limit=1).records[0]
        target = AssetCheckEvaluationTargetMaterializationData(
            storage_id=record.storage_id, run_id=run_id, timestamp=at
        )
        for name in (*INVARIANTS, NO_OPERATION_ERRORS):
            passed = not (name == "no_lost_writes" and rng.random() < 0.02)
            evaluation = dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey(area.name),
                check_name=name,
                passed=passed,
                metadata={"detail": "ok" if passed else "2 acknowledged writes lost"},
                target_materialization_data=target,
            )
            _store(instance, run_id, at, evaluation, DagsterEventType.ASSET_CHECK_EVALUATION)


def _store(instance: dg.DagsterInstance, run_id: str, at: float, data: object, kind: DagsterEventType) -> None:
    event = DagsterEvent(event_type_value=kind.value, event_specific_data=data, job_name="full_regression")
    instance.report_dagster_event(event, run_id=run_id, timestamp=at)


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--areas", type=int, default=5)
    parser.add_argument("--metrics-per-area", type=int, default=10)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    areas = [_area(f"area_{k}") for k in range(args.areas)]
    timings: dict[str, list[float]] = {
        "scorecard, warehouse rebuilt": [],
        "scorecard after a new run": [],
        "report": [],
        "exports": [],
        "browser: first screen": [],
        "browser: scrolled, all drawn": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "dagster.yaml").write_text("")
        with dg.DagsterInstance.ephemeral(tempdir=str(home)) as instance:
            began = time.perf_counter()
            next_run = seed(instance, areas, args.runs, args.metrics_per_area, later=args.repeat)
            seconds = time.perf_counter() - began
            print(f"seeded {args.areas * args.metrics_per_area} metrics x {args.runs} runs in {seconds:.0f} s")
            for _ in range(args.repeat):
                result = materialize_reports(areas, instance, home, since="all", rebuild_warehouse=True)
                timings["scorecard, warehouse rebuilt"].append(_step_seconds(instance, result.run_id, SCORECARD_STEP))
            for _ in range(args.repeat):
                next_run()  # the usual case: one regression run since the last scorecard
                result = materialize_reports(areas, instance, home, since="all")
                for step, key in (
                    ("scorecard after a new run", SCORECARD_STEP),
                    ("report", "regression_report"),
                    ("exports", "regression_exports"),
                ):
                    timings[step].append(_step_seconds(instance, result.run_id, key))
                html = home / "reports" / "regression_report.html"
                with chromium() as browser:
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
                    began = time.perf_counter()
                    page.goto(html.as_uri())
                    page.wait_for_function("+document.body.dataset.rendered > 0", timeout=120_000)
                    timings["browser: first screen"].append(time.perf_counter() - began)
                    charts = scroll_through(page)
                    timings["browser: scrolled, all drawn"].append(time.perf_counter() - began)
            raw = html.read_bytes()
            meta = result.asset_materializations_for_node("regression_report")[0].metadata
    floor = len(get_plotlyjs().encode())
    print(f"charts {charts}, points drawn {meta['points_drawn'].value}")
    for step, values in timings.items():
        print(f"{step:<30} {_median(values)}")
    print(
        f"report {len(raw) / 1e6:.2f} MB ({len(gzip.compress(raw)) / 1e6:.2f} MB gzipped); "
        f"plotly.js alone {floor / 1e6:.2f} MB ({len(gzip.compress(get_plotlyjs().encode())) / 1e6:.2f} MB gzipped); "
        f"data and page {(len(raw) - floor) / 1e6:.2f} MB"
    )


SCORECARD_STEP = "regression_scorecard.judge_areas"  # the graph-backed scorecard's op


def _step_seconds(instance: dg.DagsterInstance, run_id: str, step: str) -> float:
    """Wall time of a step, from its start and success events."""
    times = {
        entry.dagster_event.event_type_value: entry.timestamp
        for entry in instance.all_logs(run_id)
        if entry.dagster_event and entry.step_key == step
    }
    return times["STEP_SUCCESS"] - times["STEP_START"]


if __name__ == "__main__":
    main()
