"""How many samples a percentile needs before a shift in it can be called: a distribution-free floor.

Among n independent draws, every one falls below the true q-quantile with probability q^n. Unless
q^n <= SAMPLE_ALPHA, the sample often never reaches the quantile it names: a "p99" of 10 draws is the
largest of 10 draws, an extreme value that swings run to run whatever the service does (measured in
benchmarks/detection/NOTES.md). So a q-quantile is judged only from n >= log(SAMPLE_ALPHA) / log(q)
samples (p99: 299, p95: 59, p50: 5; a maximum never), and for quantiles below the median the same with
1 - q. Nothing is assumed about the latency distribution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

SAMPLE_ALPHA = 0.05


def min_samples(quantile: float) -> float:
    """Smallest sample count whose q-quantile estimate is judged (math.inf for a maximum or minimum)."""
    tail = max(quantile, 1.0 - quantile)
    if tail >= 1.0:
        return math.inf
    return float(math.ceil(math.log(SAMPLE_ALPHA) / math.log(tail)))


def sample_counts(samples: Sequence[int | None], n: int) -> NDArray[np.float64]:
    """Per-run counts as floats, NaN where a run did not record one (history stored before counts existed)."""
    counts = np.array([math.nan if s is None else float(s) for s in samples], dtype=float)
    if counts.shape != (n,):
        raise ValueError(f"samples must give one count (or None) per run: {len(counts)} counts for {n} runs")
    if np.any(counts < 0):
        raise ValueError("samples must be counts >= 0")
    return counts


def quantile_label(quantile: float) -> str:
    """p99, p99.9, p50, max: how people name the figure."""
    if quantile >= 1.0:
        return "max"
    if quantile <= 0.0:
        return "min"
    return f"p{100 * quantile:g}"
