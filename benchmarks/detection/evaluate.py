"""Scoring: replay every series run by run through the product's own `evaluate_latest`, then score the
offline `find_change_points` on the full series. No re-implementation, so the figures are the product's."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from benchmarks.detection.suite import PercentileSeries, Series, make_series
from regression_pipelines.detection import MetricPolicy, evaluate_latest, find_change_points
from regression_pipelines.detection.tcpd import covering, f_measure


@dataclass
class StepOutcome:
    sigmas: float
    pct: float
    cv: float
    kind: str
    feature: str
    runs_to_detect: int | None  # 1 = flagged on the step's first run
    online_exact: bool  # first_bad_index at detection equals the true index
    offline_exact: bool  # find_change_points on the full series names the exact first bad run


@dataclass
class Scores:
    flat_runs: int = 0
    false_alarms: int = 0
    false_alarm_onsets: int = 0
    flat_false_cps: int = 0
    flat_total_runs: int = 0
    false_alarms_by_feature: dict[str, int] = field(default_factory=dict)
    steps: list[StepOutcome] = field(default_factory=list)
    f1: list[float] = field(default_factory=list)
    cover: list[float] = field(default_factory=list)


def replay(values: np.ndarray, policy: MetricPolicy) -> list[tuple[str, int | None]]:
    """(status, first_bad_index) for every prefix, exactly as the sensor would see them."""
    out = []
    for k in range(1, len(values) + 1):
        v = evaluate_latest(values[:k], policy)
        out.append((v.status, v.first_bad_index))
    return out


def score_series(series: Series, scores: Scores) -> None:
    policy = MetricPolicy(direction=series.direction)
    verdicts = replay(series.values, policy)
    cps = find_change_points(series.values, policy)
    found = {cp.index for cp in cps}
    truth = [s.index for s in series.steps]
    scores.f1.append(f_measure({"truth": truth}, sorted(found))[0])
    scores.cover.append(covering({"truth": truth}, sorted(found), len(series.values)))
    if not series.steps:
        evaluated = [s for s, _ in verdicts if s != "insufficient_data"]
        scores.flat_runs += len(evaluated)
        flags = [s == "regression" for s in evaluated]
        scores.false_alarms += sum(flags)
        by_feature = scores.false_alarms_by_feature
        by_feature[series.feature] = by_feature.get(series.feature, 0) + sum(flags)
        scores.false_alarm_onsets += sum(f and not p for p, f in zip([False, *flags[:-1]], flags, strict=True))
        scores.flat_false_cps += len(cps)
        scores.flat_total_runs += len(series.values)
        return
    bounds = [*truth, len(series.values)]
    for i, step in enumerate(series.steps):
        detected, exact = None, False
        for k in range(step.index, bounds[i + 1]):
            status, first_bad = verdicts[k]
            if status == step.kind:
                detected, exact = k - step.index + 1, first_bad == step.index
                break
        scores.steps.append(
            StepOutcome(
                step.sigmas, step.pct, series.cv, step.kind, series.feature, detected, exact, step.index in found
            )
        )


def score_suite(suite: Iterable[Series], progress: bool = False) -> Scores:
    scores = Scores()
    for j, series in enumerate(suite):
        score_series(series, scores)
        if progress and j % 100 == 99:
            print(f"  scored {j + 1} series", flush=True)
    return scores


def time_evaluation(seed: int, metrics: int = 1000, runs: int = 500) -> float:
    """Seconds to evaluate the newest run of `metrics` series with `runs`-run histories (generation excluded)."""
    histories = [make_series(seed + 1, i, runs, with_steps=True) for i in range(metrics)]
    policies = [MetricPolicy(direction=s.direction) for s in histories]
    start = time.perf_counter()
    for s, p in zip(histories, policies, strict=True):
        evaluate_latest(s.values, p)
    return time.perf_counter() - start


# Percentile series are replayed twice: as before (counts ignored) and with the per-run counts, so the
# sample-size rule's effect is measured on the same values.
COUNT_RULES = ("counts ignored", "counts used")


@dataclass
class PercentileOutcome:
    quantile: float
    n_nominal: int
    judged_runs: int = 0  # runs the counts-ignored replay judged (the common denominator)
    flagged: dict[str, int] = field(default_factory=dict)  # change-free series: rule -> regression verdicts
    detected: dict[str, list[tuple[float, int | None]]] = field(default_factory=dict)  # rule -> (pct, runs)


def score_percentile_series(series: PercentileSeries) -> PercentileOutcome:
    policy = MetricPolicy(direction=series.direction, quantile=series.quantile)
    outcome = PercentileOutcome(series.quantile, series.n_nominal)
    for rule in COUNT_RULES:
        samples = [int(n) for n in series.samples] if rule == "counts used" else None
        statuses = [
            evaluate_latest(series.values[:k], policy, samples[:k] if samples else None).status
            for k in range(1, len(series.values) + 1)
        ]
        if rule == "counts ignored":
            outcome.judged_runs = sum(s != "insufficient_data" for s in statuses)
        if not series.steps:
            outcome.flagged[rule] = sum(s == "regression" for s in statuses)
            continue
        bounds = [*(s.index for s in series.steps), len(statuses)]
        found = []
        for i, step in enumerate(series.steps):
            hits = [k for k in range(step.index, bounds[i + 1]) if statuses[k] == "regression"]
            found.append((step.pct, hits[0] - step.index + 1 if hits else None))
        outcome.detected[rule] = found
    return outcome
