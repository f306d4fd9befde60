"""Sample-size rules compared on the percentile suite (how the rule in detection/samples.py was chosen).

.venv/bin/python -m benchmarks.detection.compare_sample_rules [--series 420] [--runs 300] [--seed 7] [--varying-n]
    [--rules none,gate,product]   # a subset of RULES (default: all)

Rules: "none" (counts ignored), "log" (judged on log values, no counts), "gate" (newest run judged only if
n >= floor, every run kept as baseline), "product" (evaluate_latest with counts: gate, and runs below the
floor leave the history), "product+log", and the product rule with the floor's alpha at 0.20 / 0.001.
--varying-n draws each run's n log-uniformly between n/10 and 10 n (counts of events, e.g. stale reads),
where a baseline of small-n tail estimates (biased low) is most misleading. Flat series only with --varying-n.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Sequence
from multiprocessing import Pool

import numpy as np

from benchmarks.detection import suite
from regression_pipelines.detection import MetricPolicy, evaluate_latest
from regression_pipelines.detection import samples as sample_rule

RULES = ("none", "log", "gate", "product", "product+log", "alpha 0.20", "alpha 0.001")
WARMUP = 10


def _statuses(values: np.ndarray, counts: np.ndarray, quantile: float, rule: str) -> list[str]:
    sample_rule.SAMPLE_ALPHA = {"alpha 0.20": 0.20, "alpha 0.001": 0.001}.get(rule, 0.05)
    x = np.log(values) if rule.endswith("log") else values
    policy = MetricPolicy(quantile=quantile)
    floor = sample_rule.min_samples(quantile)
    out = []
    for k in range(1, len(x) + 1):
        if rule in ("none", "log"):
            out.append(evaluate_latest(x[:k], policy).status)
        elif rule == "gate":
            out.append(evaluate_latest(x[:k], policy).status if counts[k - 1] >= floor else "insufficient_data")
        else:
            out.append(evaluate_latest(x[:k], policy, samples=[int(c) for c in counts[:k]]).status)
    return out


def _series(seed: int, index: int, runs: int, varying: bool) -> suite.PercentileSeries:
    series = suite.make_percentile_series(seed, index, runs)
    if not varying:
        return series
    rng = np.random.default_rng([seed, 2_000_000 + index])
    counts = np.maximum((series.n_nominal * 10 ** rng.uniform(-1, 1, runs)).astype(int), 1)
    scale = np.exp(suite.PCT_RUN_CV * rng.standard_normal(runs))
    draws = [suite._latency_draws(rng, series.family, int(n)) for n in counts]
    values = np.array([s * np.percentile(d, 100 * series.quantile) for s, d in zip(scale, draws, strict=True)])
    return suite.PercentileSeries(series.name, values, counts, series.quantile, series.n_nominal, series.family)


def _score(args: tuple[int, int, int, bool, tuple[str, ...]]) -> tuple[float, int, bool, dict[str, tuple]]:
    seed, index, runs, varying, rules = args
    s = _series(seed, index, runs, varying)
    flat = varying or not s.steps
    scores: dict[str, tuple] = {}
    for rule in rules:
        st = _statuses(s.values, s.samples, s.quantile, rule)
        if flat:
            scores[rule] = (sum(x == "regression" for x in st[WARMUP:]), len(st) - WARMUP)
            continue
        bounds = [*(step.index for step in s.steps), len(st)]
        hits = []
        for i, step in enumerate(s.steps):
            found = [k for k in range(step.index, bounds[i + 1]) if st[k] == "regression"]
            hits.append(bool(found) and found[0] - step.index < 8)
        scores[rule] = (sum(hits), len(hits))
    return s.quantile, s.n_nominal, flat, scores


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=420)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--varying-n", action="store_true")
    parser.add_argument("--rules", default=",".join(RULES))
    args = parser.parse_args(argv)
    rules = tuple(r for r in RULES if r in args.rules.split(","))
    jobs = [(args.seed, i, args.runs, args.varying_n, rules) for i in range(args.series)]
    with Pool(2) as pool:
        results = pool.map(_score, jobs, chunksize=4)
    for flat, title in ((True, "false alarms / 1000 runs (change-free)"), (False, "regressions within 8 runs")):
        table: dict[tuple, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        for q, n, is_flat, scores in results:
            if is_flat != flat:
                continue
            for rule, (a, b) in scores.items():
                for key in ((q, n), ("all", "")):
                    table[key][rule][0] += a
                    table[key][rule][1] += b
        if not table:
            continue
        print(f"\n{title}\n{'quantile, n':<14}" + "".join(f"{r:>13}" for r in rules))
        for key in sorted(table, key=lambda k: (k[0] == "all", str(k[0]), k[1] if k[1] != "" else 0)):
            cells = [table[key][r] for r in rules]
            shown = [f"{1000 * a / b:.2f}" if flat else f"{100 * a / b:.1f}%" for a, b in cells]
            print(f"{str(key[0]) + ', ' + str(key[1]):<14}" + "".join(f"{c:>13}" for c in shown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
