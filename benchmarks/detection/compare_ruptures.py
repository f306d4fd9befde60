"""Offline change-point methods side by side on the same seeded suite: ours vs ruptures PELT / BinSeg.

ruptures is not a project dependency (this comparison is why); run it from any environment that has it:
    uv venv /tmp/rpt && uv pip install --python /tmp/rpt/bin/python ruptures==1.1.10 numpy scipy
    PYTHONPATH=. /tmp/rpt/bin/python -m benchmarks.detection.compare_ruptures --series 400
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from benchmarks.detection.suite import make_suite
from regression_pipelines.detection import MetricPolicy, find_change_points
from regression_pipelines.detection.robust import diff_scale, suppress_spikes
from regression_pipelines.detection.tcpd import covering, f_measure

Method = Callable[[np.ndarray, MetricPolicy], list[int]]


def ours(x: np.ndarray, policy: MetricPolicy) -> list[int]:
    return [cp.index for cp in find_change_points(x, policy)]


def _ruptures(algo_name: str, clean: bool, beta: float) -> Method:
    import ruptures as rpt

    def detect(x: np.ndarray, policy: MetricPolicy) -> list[int]:
        signal = suppress_spikes(x, half=policy.min_segment - 1) if clean else x
        sigma = max(diff_scale(signal), 1e-12)
        algo = getattr(rpt, algo_name)(model="l2", min_size=policy.min_segment, jump=1).fit(signal)
        return algo.predict(pen=beta * sigma * sigma * np.log(len(x)))[:-1]

    return detect


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=400)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    suite = make_suite(args.seed, args.series, args.runs)
    methods: dict[str, Method] = {"ours (hampel+binseg+merge)": ours}
    try:
        for beta in (3.0, 6.0):
            methods[f"ruptures Pelt l2 pen={beta:g}s2logn"] = _ruptures("Pelt", False, beta)
            methods[f"ruptures Pelt l2 pen={beta:g}s2logn +hampel"] = _ruptures("Pelt", True, beta)
        methods["ruptures Binseg l2 pen=6s2logn +hampel"] = _ruptures("Binseg", True, 6.0)
    except ImportError:
        print("ruptures is not installed; comparing nothing but ours", file=sys.stderr)
    print(f"{'method':<40} {'exact>=2sig':>11} {'false CP/1k':>11} {'F1':>6} {'cover':>6} {'ms/series':>9}")
    for name, method in methods.items():
        exact = big = false_cps = flat_runs = 0
        f1s, covers = [], []
        started = time.perf_counter()
        for s in suite:
            policy = MetricPolicy(direction=s.direction)
            found = method(s.values, policy)
            truth = [st.index for st in s.steps]
            f1s.append(f_measure({"t": truth}, found)[0])
            covers.append(covering({"t": truth}, found, len(s.values)))
            if not s.steps:
                false_cps += len(found)
                flat_runs += len(s.values)
            for st in s.steps:
                if st.sigmas >= 2.0 - 1e-9:
                    big += 1
                    exact += st.index in found
        ms = 1000 * (time.perf_counter() - started) / len(suite)
        print(
            f"{name:<40} {100 * exact / max(big, 1):>10.1f}% {1000 * false_cps / max(flat_runs, 1):>11.2f} "
            f"{np.mean(f1s):>6.3f} {np.mean(covers):>6.3f} {ms:>9.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
