"""Measured detection quality on the seeded synthetic suite, printed next to the issue's goals.

.venv/bin/python -m benchmarks.detection.run_benchmark [--series 1000] [--runs 300] [--seed 7]
    [--pct-series 420]    # percentile series with per-run sample counts (0: skip)
    [--write-suite DIR]   # also writes DIR/suite.csv (series,run,value,direction) and DIR/truth.json
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.detection.evaluate import (
    COUNT_RULES,
    PercentileOutcome,
    Scores,
    StepOutcome,
    score_percentile_series,
    score_suite,
    time_evaluation,
)
from benchmarks.detection.suite import FEATURES, PCT_SAMPLES, Series, make_percentile_suite, make_suite
from regression_pipelines.detection.samples import min_samples


def write_suite(suite: list[Series], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "suite.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["series", "run", "value", "direction"])
        for s in suite:
            for run, value in enumerate(s.values):
                writer.writerow([s.name, run, repr(float(value)), s.direction.value])
    truth = {
        s.name: {
            "cv": s.cv,
            "family": s.family,
            "feature": s.feature,
            "direction": s.direction.value,
            "steps": [{"index": st.index, "pct": st.pct, "sigmas": st.sigmas, "kind": st.kind} for st in s.steps],
        }
        for s in suite
    }
    (directory / "truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True))


def _rate(hits: int, total: int) -> str:
    return f"{100.0 * hits / total:.1f}% ({hits}/{total})" if total else "n/a (0 cases)"


def _step_rows(steps: list[StepOutcome], cv: float, within: int | None) -> tuple[str, str]:
    bucket = [s for s in steps if s.kind == "regression" and abs(s.pct) == 10.0 and s.cv == cv]
    detected = [s.runs_to_detect for s in bucket if s.runs_to_detect is not None]
    in_time = [d for d in detected if within is None or d <= within]
    median = f"{np.median(detected):.0f}" if detected else "n/a"
    return _rate(len(in_time), len(bucket)), median


def _cv5_by_feature(steps: list[StepOutcome]) -> str:
    parts = []
    for feature in FEATURES:
        bucket = [s for s in steps if s.kind == "regression" and abs(s.pct) == 10.0 and s.cv == 0.05]
        bucket = [s for s in bucket if s.feature == feature]
        hits = sum(s.runs_to_detect is not None and s.runs_to_detect <= 8 for s in bucket)
        parts.append(f"{feature} {100.0 * hits / max(len(bucket), 1):.0f}%")
    return ", ".join(parts)


def report(scores: Scores, eval_seconds: float, runs: int) -> list[tuple[str, str, str]]:
    fa = 1000.0 * scores.false_alarms / max(scores.flat_runs, 1)
    fa_by = scores.false_alarms_by_feature
    onsets = 1000.0 * scores.false_alarm_onsets / max(scores.flat_runs, 1)
    cv2_rate, cv2_median = _step_rows(scores.steps, 0.02, None)
    cv5_rate, cv5_median = _step_rows(scores.steps, 0.05, 8)
    big = [s for s in scores.steps if s.sigmas >= 2.0 - 1e-9]
    small = [s for s in scores.steps if s.sigmas < 2.0 - 1e-9]
    regressions = [s for s in scores.steps if s.kind == "regression"]
    improvements = [s for s in scores.steps if s.kind == "improvement"]
    return [
        ("false alarms / 1000 runs (change-free, flagged runs)", f"{fa:.3f}", "<= 1"),
        ("  false-alarm onsets / 1000 runs", f"{onsets:.3f}", ""),
        ("  flagged runs by noise feature", ", ".join(f"{k} {v}" for k, v in sorted(fa_by.items())), ""),
        ("10% step @ CV 2%: detection rate", cv2_rate, ">= 99%"),
        ("10% step @ CV 2%: median runs to detect", cv2_median, "<= 2"),
        ("10% step @ CV 5%: detected within 8 runs", cv5_rate, ">= 95%"),
        ("10% step @ CV 5%: median runs to detect", cv5_median, ""),
        ("  within 8 runs by noise feature", _cv5_by_feature(scores.steps), ""),
        (
            "exact first bad run, shifts >= 2 sigma (offline)",
            _rate(sum(s.offline_exact for s in big), len(big)),
            ">= 80%",
        ),
        (
            "  same, online at detection time",
            _rate(sum(s.online_exact for s in big if s.runs_to_detect), sum(1 for s in big if s.runs_to_detect)),
            "",
        ),
        (
            "  exact first bad run, shifts < 2 sigma (offline)",
            _rate(sum(s.offline_exact for s in small), len(small)),
            "",
        ),
        (
            "all regressions detected online (any size)",
            _rate(sum(s.runs_to_detect is not None for s in regressions), len(regressions)),
            "",
        ),
        (
            "all improvements reported online (any size)",
            _rate(sum(s.runs_to_detect is not None for s in improvements), len(improvements)),
            "",
        ),
        (
            "offline change points / 1000 runs on change-free series",
            f"{1000.0 * scores.flat_false_cps / max(scores.flat_total_runs, 1):.3f}",
            "",
        ),
        ("TCPD F1 (margin 5), mean over series", f"{np.mean(scores.f1):.3f}", ""),
        ("TCPD covering, mean over series", f"{np.mean(scores.cover):.3f}", ""),
        ("evaluate 1000 metrics x 500-run histories", f"{eval_seconds:.3f} s", "< 1 s"),
    ]


def _fa(outcomes: list[PercentileOutcome]) -> str:
    runs = max(sum(o.judged_runs for o in outcomes if o.flagged), 1)
    return " -> ".join(f"{1000.0 * sum(o.flagged.get(r, 0) for o in outcomes) / runs:.2f}" for r in COUNT_RULES)


def _within(outcomes: list[PercentileOutcome], pcts: tuple[float, ...] | None = None, runs: int = 8) -> str:
    rates = []
    for rule in COUNT_RULES:
        found = [d for o in outcomes for pct, d in o.detected.get(rule, []) if pcts is None or pct in pcts]
        rates.append(f"{100.0 * sum(d is not None and d <= runs for d in found) / max(len(found), 1):.1f}%")
    return " -> ".join(rates) + f" (of {len(found)})"


def percentile_report(outcomes: list[PercentileOutcome]) -> list[tuple[str, str, str]]:
    """Counts ignored -> counts used, for the same percentile series."""
    tails = [o for o in outcomes if o.quantile != 0.5]
    below = [o for o in tails if o.n_nominal < min_samples(o.quantile)]
    above = [o for o in outcomes if o not in below]
    big = [o for o in outcomes if o.n_nominal >= 1000]
    rows = [
        ("percentile series: false alarms / 1000 runs", _fa(outcomes), "not worse"),
        ("  p95/p99 from fewer samples than their floor", _fa(below), ""),
        ("  every other percentile series", _fa(above), ""),
        ("percentile regressions within 8 runs, n >= 1000", _within(big), "not worse"),
        ("  same, all n", _within(outcomes), ""),
        ("  x5 jumps within 8 runs, p95/p99 below their floor", _within(below, (400.0,)), ""),
    ]
    for n in PCT_SAMPLES:
        cell = [o for o in outcomes if o.n_nominal == n]
        rows.append((f"  n ~ {n}: false alarms / 1000; regressions within 8 runs", f"{_fa(cell)}; {_within(cell)}", ""))
    return rows


def _print_rows(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'measured':>24}  goal")
    for name, value, goal in rows:
        print(f"{name:<{width}}  {value:>24}  {goal}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pct-series", type=int, default=420, help="percentile series with sample counts")
    parser.add_argument("--write-suite", type=Path, default=None, help="directory for suite.csv + truth.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    suite = make_suite(args.seed, args.series, args.runs)
    if args.write_suite:
        write_suite(suite, args.write_suite)
    scores = score_suite(suite, progress=True)
    eval_seconds = time_evaluation(args.seed)
    rows = report(scores, eval_seconds, args.runs)
    print(
        f"\nsuite: {args.series} series x {args.runs} runs, seed {args.seed}, "
        f"{len(scores.steps)} injected steps; wall time {time.perf_counter() - started:.0f} s\n"
    )
    _print_rows(rows)
    if args.pct_series:
        started = time.perf_counter()
        outcomes = [score_percentile_series(s) for s in make_percentile_suite(args.seed, args.pct_series, args.runs)]
        print(
            f"\npercentile suite: {args.pct_series} series x {args.runs} runs (p50/p95/p99 of Poisson(n) draws), "
            f"counts ignored -> counts used; wall time {time.perf_counter() - started:.0f} s\n"
        )
        _print_rows(percentile_report(outcomes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
