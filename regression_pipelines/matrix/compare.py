"""The matrix's statistics: ratio of medians with a bootstrap interval, the A/A control and its resolution. Pure.

How performance is compared across versions on a shared machine (Bulej et al., "Duet Benchmarking", ICPE 2020,
and their earlier interleaving results): A and B run alternately in short rounds, so a slow minute of the host
hits both; round i of A is paired with round i of B. The figure is median(B) / median(A) over the rounds, and
its confidence interval comes from a paired bootstrap over rounds (resample round indices with replacement,
recompute the ratio). An A/A control (the first variant run twice per round, at different positions) goes
through the same computation: its interval must contain 1 (else the setup itself shows a difference and no
ratio is trusted), and its half-width is the smallest change this host can resolve with this many rounds.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95
ITERATIONS = 2000
SAME, WORSE, BETTER, UNKNOWN = "same", "worse", "better", "n/a"
# Below this many rounds a bootstrap over rounds has too few distinct resamples to bound anything (with 2 pairs
# there are 3 distinct medians): ratios are shown, never judged. 5 or more is what the README recommends.
MIN_ROUNDS = 3


@dataclass(frozen=True)
class Ratio:
    """median(b) / median(a) with a bootstrap interval [low, high]; `rounds` pairs went in."""

    ratio: float
    low: float
    high: float
    rounds: int
    confidence: float = CONFIDENCE

    @property
    def contains_one(self) -> bool:
        return self.low <= 1.0 <= self.high

    @property
    def half_width(self) -> float:
        """The larger distance from 1 to an end of the interval: the change this interval cannot tell from none."""
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return math.nan
        return max(self.high - 1.0, 1.0 - self.low)

    def describe(self) -> str:
        if not math.isfinite(self.ratio):
            return "n/a"
        return f"{self.ratio:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _finite_pairs(a: Sequence[float], b: Sequence[float]) -> list[tuple[float, float]]:
    return [(x, y) for x, y in zip(a, b, strict=False) if math.isfinite(x) and math.isfinite(y)]


def _ratio(pairs: Sequence[tuple[float, float]]) -> float:
    base = statistics.median(x for x, _ in pairs)
    other = statistics.median(y for _, y in pairs)
    if base == 0:
        return math.nan if other != 0 else 1.0
    return other / base


def ratio_of_medians(
    a: Sequence[float],
    b: Sequence[float],
    confidence: float = CONFIDENCE,
    iterations: int = ITERATIONS,
    seed: int = 0,
) -> Ratio:
    """median(b)/median(a) over paired rounds (a[i], b[i]) with a percentile bootstrap interval.

    Pairs with a missing (NaN) value are left out; fewer than one pair gives NaN. One pair gives the ratio with
    a zero-width interval (no spread to resample): the caller reports it as unresolved.
    """
    pairs = _finite_pairs(a, b)
    if not pairs:
        return Ratio(math.nan, math.nan, math.nan, 0, confidence)
    point = _ratio(pairs)
    if len(pairs) == 1:
        return Ratio(point, point, point, 1, confidence)
    rng = random.Random(seed)
    n = len(pairs)
    samples = []
    for _ in range(iterations):
        value = _ratio([pairs[rng.randrange(n)] for _ in range(n)])
        if math.isfinite(value):
            samples.append(value)
    if not samples:
        return Ratio(point, math.nan, math.nan, n, confidence)
    samples.sort()
    tail = (1.0 - confidence) / 2.0
    low = samples[int(math.floor(tail * (len(samples) - 1)))]
    high = samples[int(math.ceil((1.0 - tail) * (len(samples) - 1)))]
    return Ratio(point, min(low, point), max(high, point), n, confidence)


def resolution(aa: Ratio) -> float:
    """The smallest relative change the comparison can resolve on this host: the A/A interval's half-width.

    NaN when the control has fewer than two rounds (no spread measured: nothing can be claimed).
    """
    if aa.rounds < 2:
        return math.nan
    return aa.half_width


def judge(ratio: Ratio, lower_is_better: bool, resolvable: float) -> str:
    """`worse`, `better` or `same` for a later variant against the first.

    `same` when the interval contains 1 or the change is within what the A/A control resolves; `n/a` when
    there is no ratio, no usable control or fewer than MIN_ROUNDS rounds.
    """
    if not math.isfinite(ratio.ratio) or ratio.rounds < MIN_ROUNDS or not math.isfinite(resolvable):
        return UNKNOWN
    if ratio.contains_one or abs(ratio.ratio - 1.0) <= resolvable:
        return SAME
    slower = ratio.low > 1.0 if lower_is_better else ratio.high < 1.0
    return WORSE if slower else BETTER
