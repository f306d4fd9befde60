"""Replay a stored lab history through the old and the new judgement, metric by metric and run by run.

.venv/bin/python -m benchmarks.detection.lab_replay [CSV] [--area cache_coherence]
(CSV defaults to benchmarks/detection/lab_cache_history.csv, written by `lab_export`)

Every run is judged against the runs before it, as the sensor saw them. "new" is the product's own
`evaluate_asset` (kinds, per-metric policies, sample counts) on an ephemeral Dagster instance fed from the
CSV; "old" is what it did before metrics had a kind and a sample count: every metric judged, counts
ignored (`evaluate_latest` with the same policy, no samples). Labels: a regression verdict on a "clean"
run is a false alarm; on a run with an injected change (any other label, e.g. "cpu_burn") a detection;
runs labelled "after_..." (the change removed again) are shown on their own: the window still holds
the changed runs, so verdicts there are neither.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from regression_pipelines.detection import evaluate_latest
from regression_pipelines.evaluation import evaluate_asset, policy_for
from regression_pipelines.results import Direction, Metric, MetricKind, ScenarioResult, to_metadata

DEFAULT_CSV = Path(__file__).with_name("lab_cache_history.csv")
GROUPS = ("clean", "changed", "after")
RULES = ("old", "new")
ALERTING = ("regression", "slo_breach")

Runs = list[tuple[str, list[Metric]]]
Verdicts = list[dict[str, str]]


def read_runs(path: Path) -> Runs:
    """(label, metrics) per run, oldest first."""
    runs: dict[int, tuple[str, list[Metric]]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            label, metrics = runs.setdefault(int(row["run"]), (row["label"], []))
            samples = int(row["samples"]) if row["samples"] else None
            direction, kind = Direction(row["direction"]), MetricKind(row["kind"])
            metrics.append(Metric(row["metric"], float(row["value"]), row["unit"], direction, kind, samples))
    return [runs[k] for k in sorted(runs)]


def group_of(label: str) -> str:
    return "clean" if label == "clean" else "after" if label.startswith("after") else "changed"


def new_verdicts(runs: Runs, area: str) -> Verdicts:
    """Per run, metric -> status from the product's evaluate_asset."""
    out = []
    with dg.DagsterInstance.ephemeral() as instance:
        for _, metrics in runs:
            metadata = to_metadata(ScenarioResult(area=area, metrics=metrics))
            instance.report_runless_asset_event(dg.AssetMaterialization(area, metadata=metadata))
            evaluation = evaluate_asset(instance, area)
            assert evaluation is not None
            out.append({mv.metric.name: mv.verdict.status for mv in evaluation.metrics})
    return out


def old_verdicts(runs: Runs) -> Verdicts:
    """Per run, metric -> status with every metric judged and sample counts ignored."""
    history: dict[str, list[float]] = defaultdict(list)
    out = []
    for _, metrics in runs:
        statuses = {}
        for m in metrics:
            if m.value != m.value:  # NaN: nothing measured, no verdict (as evaluate_asset does)
                continue
            history[m.name].append(m.value)
            statuses[m.name] = evaluate_latest(history[m.name], policy_for(m)).status
        out.append(statuses)
    return out


def per_metric(runs: Runs, verdicts: dict[str, Verdicts]) -> None:
    """judged/flagged per metric, group and rule."""
    table: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for i, (label, _) in enumerate(runs):
        for rule in RULES:
            for name, status in verdicts[rule][i].items():
                cell = table[name][f"{group_of(label)} {rule}"]
                cell[0] += status not in ("insufficient_data", "not_judged")
                cell[1] += status in ALERTING
    kinds = {m.name: m.kind.value for _, metrics in runs for m in metrics}
    width = max(len(name) for name in table)
    heads = [f"{g} {r}" for g in GROUPS for r in RULES]
    print("\njudged/flagged runs per metric (flagged: a regression verdict)")
    print(f"{'metric':<{width}}  {'kind':<11}  " + "  ".join(f"{h:>11}" for h in heads))
    for name in sorted(table):
        cells = [f"{table[name][h][0]}/{table[name][h][1]}" for h in heads]
        print(f"{name:<{width}}  {kinds[name]:<11}  " + "  ".join(f"{c:>11}" for c in cells))


def summary(runs: Runs, verdicts: dict[str, Verdicts]) -> None:
    """False alarms over a common denominator (metric-runs the old rule judged), and runs that alerted."""
    old_judged = defaultdict(int)
    for (label, _), statuses in zip(runs, verdicts["old"], strict=True):
        old_judged[group_of(label)] += sum(s != "insufficient_data" for s in statuses.values())
    print()
    for rule in RULES:
        flagged, alerted = defaultdict(int), defaultdict(int)
        for (label, _), statuses in zip(runs, verdicts[rule], strict=True):
            hits = sum(s in ALERTING for s in statuses.values())
            flagged[group_of(label)] += hits
            alerted[group_of(label)] += hits > 0
        parts = []
        for group in GROUPS:
            runs_in = sum(
                group_of(label) == group and any(s != "insufficient_data" for s in old.values())
                for (label, _), old in zip(runs, verdicts["old"], strict=True)
            )
            per_k = 1000.0 * flagged[group] / max(old_judged[group], 1)
            parts.append(
                f"{group}: {flagged[group]} regression verdicts ({per_k:.1f} per 1000 metric-runs), "
                f"{alerted[group]} of {runs_in} judged runs alerted"
            )
        print(f"{rule}: " + "; ".join(parts))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", type=Path, nargs="?", default=DEFAULT_CSV)
    parser.add_argument("--area", default="cache_coherence")
    args = parser.parse_args(argv)
    runs = read_runs(args.csv)
    labels = [label for label, _ in runs]
    print(f"{len(runs)} runs in order: " + ", ".join(f"{labels.count(lb)} {lb}" for lb in dict.fromkeys(labels)))
    verdicts = {"old": old_verdicts(runs), "new": new_verdicts(runs, args.area)}
    per_metric(runs, verdicts)
    summary(runs, verdicts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
