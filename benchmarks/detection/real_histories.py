"""Precision, recall and F1 (margin 5) of the product's change points on annotated real histories.

.venv/bin/python -m benchmarks.detection.real_histories [--lab CSV] [--tcpd DIR]

The synthetic suite (`run_benchmark`) knows its truth exactly but its noise is ours. Two real sets, scored
with TCPDBench's metrics (`regression_pipelines.detection.tcpd`: 0 counts as a change point for everyone,
precision pooled over annotators, recall averaged per annotator):

- lab: the cache area run many times on the lab with a known injected change (`lab_cache_history.csv`,
  labels clean / cpu_burn / after_burn). Truth: the first burning run and the first run after it. Scored on
  the latency percentiles a CPU-starved client and server must move (`*_read_p50|p95|p99_ms`), each judged
  from enough samples for its quantile.
- tcpd: the Turing Change Point Dataset (alan-turing-institute/TCPD; 5 annotators per series), every
  univariate series stored as JSON in that repository (series needing a download script are absent there).
  Point --tcpd at a checkout; nothing of it is copied here.

Both are scored with the product's `find_change_points` under its default policy, next to the trivial
"no change point" baseline, which TCPDBench shows is hard to beat on F1 for real data. The lab set is also
scored online, as the sensor sees it: every run judged against the runs before it by the product's
`evaluate_asset` (via `lab_replay`), a prediction being the first run of each stretch of regression
verdicts (an alert's onset). Online verdicts only ever flag regressions, so the end of the burn (an
improvement) is not something they can find: their recall is read against the burn's start alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.detection.lab_replay import ALERTING, new_verdicts, read_runs
from regression_pipelines.detection import MetricPolicy, find_change_points
from regression_pipelines.detection.tcpd import covering, f_measure

DEFAULT_LAB = Path(__file__).with_name("lab_cache_history.csv")
LATENCY = re.compile(r"_read_p(50|95|99)_ms$")
MARGIN = 5


@dataclass(frozen=True)
class History:
    name: str
    values: list[float]
    annotations: dict[str, list[int]]


def lab_histories(path: Path) -> list[History]:
    """One history per latency percentile; truth = where the burn started and where it stopped."""
    labels: dict[int, str] = {}
    series: dict[str, dict[int, tuple[float, int | None]]] = defaultdict(dict)
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            run = int(row["run"])
            labels[run] = row["label"]
            if LATENCY.search(row["metric"]):
                series[row["metric"]][run] = (float(row["value"]), int(row["samples"]) if row["samples"] else None)
    order = sorted(labels)
    truth = [i for i, run in enumerate(order) if i > 0 and labels[run] != labels[order[i - 1]]]
    out = []
    for name, points in sorted(series.items()):
        quantile = int(LATENCY.search(name).group(1)) / 100  # type: ignore[union-attr]
        floor = math.ceil(math.log(0.05) / math.log(max(quantile, 1 - quantile)))
        if min(samples or 0 for _, samples in points.values()) < floor:
            continue  # the product does not judge it either (under-sampled percentile)
        out.append(History(f"lab/{name}", [points[run][0] for run in order], {"injected": truth}))
    return out


def tcpd_histories(root: Path) -> list[History]:
    annotations = json.loads((root / "annotations.json").read_text())
    out = []
    for path in sorted(root.glob("datasets/*/*.json")):
        data = json.loads(path.read_text())
        if data.get("n_dim") != 1 or data["name"] not in annotations:
            continue
        raw = data["series"][0]["raw"]
        if any(v is None for v in raw):
            continue  # TCPDBench imputes these; we keep to complete series
        out.append(History(f"tcpd/{data['name']}", [float(v) for v in raw], annotations[data["name"]]))
    return out


def score(histories: list[History], method: str) -> dict[str, float]:
    f1s, precisions, recalls, covers, found_total = [], [], [], [], 0
    for h in histories:
        found = [] if method == "zero" else [cp.index for cp in find_change_points(h.values, MetricPolicy())]
        found_total += len(found)
        f, p, r = f_measure(h.annotations, found, margin=MARGIN)
        f1s.append(f)
        precisions.append(p)
        recalls.append(r)
        covers.append(covering(h.annotations, found, len(h.values)))
    return {
        "series": len(histories),
        "change_points": found_total,
        "precision": float(np.mean(precisions)),
        "recall": float(np.mean(recalls)),
        "f1": float(np.mean(f1s)),
        "covering": float(np.mean(covers)),
    }


def online_onsets(path: Path, area: str = "cache_coherence") -> dict[str, list[int]]:
    """Per metric, the runs where a stretch of regression verdicts begins."""
    verdicts = new_verdicts(read_runs(path), area)
    onsets: dict[str, list[int]] = defaultdict(list)
    for i, statuses in enumerate(verdicts):
        for name, status in statuses.items():
            if status in ALERTING and (i == 0 or verdicts[i - 1].get(name) not in ALERTING):
                onsets[name].append(i)
    return onsets


def online_score(histories: list[History], onsets: dict[str, list[int]]) -> dict[str, float]:
    f1s, precisions, recalls = [], [], []
    for h in histories:
        truth = {"burn_start": h.annotations["injected"][:1]}
        f, p, r = f_measure(truth, onsets.get(h.name.removeprefix("lab/"), []), margin=MARGIN)
        f1s.append(f)
        precisions.append(p)
        recalls.append(r)
    return {"precision": float(np.mean(precisions)), "recall": float(np.mean(recalls)), "f1": float(np.mean(f1s))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", type=Path, default=DEFAULT_LAB)
    parser.add_argument("--tcpd", type=Path, help="checkout of alan-turing-institute/TCPD")
    args = parser.parse_args()
    sets = {"lab (cache area, cpu_burn)": lab_histories(args.lab)}
    if args.tcpd:
        sets["TCPD univariate"] = tcpd_histories(args.tcpd)
    print(f"| set | method | series | change points | precision | recall | F1 (margin {MARGIN}) | covering |")
    print("|---|---|---|---|---|---|---|---|")
    for name, histories in sets.items():
        for method in ("product", "zero"):
            s = score(histories, method)
            print(
                f"| {name} | {method} | {s['series']} | {s['change_points']} | {s['precision']:.3f} "
                f"| {s['recall']:.3f} | {s['f1']:.3f} | {s['covering']:.3f} |"
            )
    lab = sets["lab (cache area, cpu_burn)"]
    onsets = online_onsets(args.lab)
    s = online_score(lab, onsets)
    print(
        f"| lab, online onsets vs burn start | product | {len(lab)} | "
        f"{sum(len(onsets.get(h.name.removeprefix('lab/'), [])) for h in lab)} | {s['precision']:.3f} "
        f"| {s['recall']:.3f} | {s['f1']:.3f} | |"
    )
    for h in lab:
        found = [cp.index for cp in find_change_points(h.values, MetricPolicy())]
        online = onsets.get(h.name.removeprefix("lab/"), [])
        print(f"{h.name}: truth {h.annotations['injected']}, offline {found}, online onsets {online}")


if __name__ == "__main__":
    main()
