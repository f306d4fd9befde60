"""Full-history change-point detection: spike suppression, binary segmentation, then Otava-style merging.

Why this shape (see benchmarks/detection/NOTES.md for the measurements):
1. a Hampel filter first removes short excursions that revert (spikes), so they never become change points;
2. binary segmentation on the mean (the least-squares split is the maximum-likelihood location of a single
   step, which is what names the first bad run exactly) proposes candidates cheaply (cumulative sums);
   where no single split is significant it tries the best *epidemic* pair (a stretch that changed and came
   back, as in circular binary segmentation), which one split in the middle of a long series cannot see;
3. a merge pass re-tests every candidate against its *neighbouring* segments with a t-test widened for
   lag-1 autocorrelation, and drops the weakest until all survivors are significant and at least
   `min_change_pct` large; survivors are re-located between their neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.special import stdtr

from regression_pipelines.detection.model import ChangePoint, MetricPolicy
from regression_pipelines.detection.robust import lag1_autocorr, suppress_spikes
from regression_pipelines.detection.severity import severity_for

SPLIT_ALPHA = 0.01  # Bonferroni-corrected, for proposing candidates
EPIDEMIC_ALPHA = 0.001  # stricter for stretches: an AR(1) wander otherwise passes for one (false alarms)
MERGE_ALPHA = 1e-4  # per change point, after the autocorrelation widening
MAX_AUTOCORR = 0.8


def _cumsums(x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    c1 = np.concatenate(([0.0], np.cumsum(x)))
    c2 = np.concatenate(([0.0], np.cumsum(x * x)))
    return c1, c2


def best_split(c1: NDArray[np.float64], c2: NDArray[np.float64], a: int, b: int, m: int) -> tuple[int, float, int]:
    """Least-squares single split of x[a:b] with >= m points each side: (index, t statistic, candidates)."""
    t = np.arange(a + m, b - m + 1)
    if len(t) == 0:
        return -1, 0.0, 0
    nl = (t - a).astype(float)
    nr = (b - t).astype(float)
    diff = (c1[b] - c1[t]) / nr - (c1[t] - c1[a]) / nl
    gain = diff * diff * nl * nr / (b - a)
    i = int(np.argmax(gain))
    total = (c2[b] - c2[a]) - (c1[b] - c1[a]) ** 2 / (b - a)
    resid = max(total - gain[i], 0.0)
    df = b - a - 2
    s2 = resid / df if df > 0 else 0.0
    if s2 <= 0:
        return int(t[i]), (np.inf if gain[i] > 0 else 0.0), len(t)
    return int(t[i]), float(np.sqrt(gain[i] / s2)), len(t)


def best_epidemic(
    c1: NDArray[np.float64], c2: NDArray[np.float64], a: int, b: int, m: int
) -> tuple[int, int, float, int]:
    """Least-squares stretch x[s:e] against the rest of x[a:b], every piece >= m: (s, e, t statistic, candidates)."""
    starts = np.arange(a + m, b - 2 * m + 1)
    ends = np.arange(a + 2 * m, b - m + 1)
    if len(starts) == 0 or len(ends) == 0:
        return -1, -1, 0.0, 0
    s, e = starts[:, None], ends[None, :]
    valid = e - s >= m
    n = b - a
    n_in = np.where(valid, e - s, 1).astype(float)
    sum_in = c1[e] - c1[s]
    diff = sum_in / n_in - ((c1[b] - c1[a]) - sum_in) / (n - n_in)
    gain = np.where(valid, diff * diff * n_in * (n - n_in) / n, -1.0)
    i, j = np.unravel_index(int(np.argmax(gain)), gain.shape)
    total = (c2[b] - c2[a]) - (c1[b] - c1[a]) ** 2 / n
    resid = max(total - gain[i, j], 0.0)
    df = n - 2
    s2 = resid / df
    ncand = int(valid.sum())
    if s2 <= 0:
        return int(starts[i]), int(ends[j]), (np.inf if gain[i, j] > 0 else 0.0), ncand
    return int(starts[i]), int(ends[j]), float(np.sqrt(gain[i, j] / s2)), ncand


def _two_sided_p(t_stat: float, df: int) -> float:
    if not np.isfinite(t_stat):
        return 0.0
    return float(2.0 * stdtr(max(df, 1), -abs(t_stat)))


def _binseg(c1: NDArray[np.float64], c2: NDArray[np.float64], n: int, m: int) -> list[int]:
    found: list[int] = []
    stack = [(0, n)]
    while stack:
        a, b = stack.pop()
        if b - a < 2 * m:
            continue
        t, stat, ncand = best_split(c1, c2, a, b, m)
        if t >= 0 and _two_sided_p(stat, b - a - 2) * ncand < SPLIT_ALPHA:
            found.append(t)
            stack.extend(((t, b), (a, t)))
            continue
        s, e, stat, ncand = best_epidemic(c1, c2, a, b, m)
        if s >= 0 and _two_sided_p(stat, b - a - 2) * ncand < EPIDEMIC_ALPHA:
            found.extend((s, e))
            stack.extend(((e, b), (s, e), (a, s)))
    return sorted(found)


def _segment_test(c1: NDArray[np.float64], c2: NDArray[np.float64], a: int, t: int, b: int, widen: float) -> float:
    """Pooled two-sample t-test of x[a:t] against x[t:b], widened by the autocorrelation factor."""
    nl, nr = t - a, b - t
    ml = (c1[t] - c1[a]) / nl
    mr = (c1[b] - c1[t]) / nr
    ss = (c2[t] - c2[a]) - nl * ml * ml + (c2[b] - c2[t]) - nr * mr * mr
    df = nl + nr - 2
    s2 = max(ss, 0.0) / df
    if s2 <= 0:
        return 0.0 if mr != ml else 1.0
    stat = abs(mr - ml) / np.sqrt(s2 * (1.0 / nl + 1.0 / nr)) / widen
    return _two_sided_p(stat, df)


def change_pct(before: float, after: float) -> float:
    """Relative change in percent; from a zero level (e.g. an error count) any rise reads as +100 %."""
    if before == after:
        return 0.0
    if abs(before) < 1e-12:
        return 100.0 if after > before else -100.0
    return (after - before) / abs(before) * 100.0


def _widening(x: NDArray[np.float64], cps: list[int]) -> float:
    """sqrt((1+r)/(1-r)) for the residuals' lag-1 autocorrelation r: the variance inflation of a mean."""
    bounds = [0, *cps, len(x)]
    resid = np.concatenate([x[a:b] - x[a:b].mean() for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    r = min(max(lag1_autocorr(resid), 0.0), MAX_AUTOCORR)
    return float(np.sqrt((1.0 + r) / (1.0 - r)))


def _merge(
    x: NDArray[np.float64], c1: NDArray[np.float64], c2: NDArray[np.float64], cps: list[int], min_change_pct: float
) -> tuple[list[int], list[float]]:
    """Drop the weakest candidate until every survivor is significant and relevant; return cps and p-values."""
    cps = list(cps)
    n = len(x)
    while True:
        if not cps:
            return [], []
        widen = _widening(x, cps)
        bounds = [0, *cps, n]
        pvals: list[float] = []
        weakest, weakest_score = -1, -1.0
        for i, t in enumerate(cps):
            a, b = bounds[i], bounds[i + 2]
            p = _segment_test(c1, c2, a, t, b, widen)
            pvals.append(p)
            before = (c1[t] - c1[a]) / (t - a)
            after = (c1[b] - c1[t]) / (b - t)
            irrelevant = abs(change_pct(before, after)) < min_change_pct
            score = 2.0 + p if irrelevant else p  # irrelevant changes go first, then the least significant
            if (p >= MERGE_ALPHA or irrelevant) and score > weakest_score:
                weakest, weakest_score = i, score
        if weakest < 0:
            return cps, pvals
        del cps[weakest]


def _relocate(c1: NDArray[np.float64], c2: NDArray[np.float64], cps: list[int], n: int, m: int) -> list[int]:
    """Re-place each change point by the best split between its neighbours (binseg placed it globally)."""
    out = list(cps)
    for i in range(len(out)):
        a = out[i - 1] if i > 0 else 0
        b = out[i + 1] if i + 1 < len(out) else n
        t, _, _ = best_split(c1, c2, a, b, m)
        if t >= 0:
            out[i] = t
    return out


def find_change_points(values: Sequence[float] | NDArray[np.float64], policy: MetricPolicy) -> list[ChangePoint]:
    """Every significant, relevant level shift in the series, oldest first; improvements included, marked."""
    x_raw = np.asarray(values, dtype=float)
    n = len(x_raw)
    m = policy.min_segment
    if n < 2 * m:
        return []
    x = suppress_spikes(x_raw, half=m - 1)
    c1, c2 = _cumsums(x)
    cps = _binseg(c1, c2, n, m)
    cps, _ = _merge(x, c1, c2, cps, policy.min_change_pct)
    cps = sorted(set(_relocate(c1, c2, cps, n, m)))
    cps, pvals = _merge(x, c1, c2, cps, policy.min_change_pct)
    bounds = [0, *cps, n]
    result = []
    for i, t in enumerate(cps):
        before = float(x[bounds[i] : t].mean())
        after = float(x[t : bounds[i + 2]].mean())
        pct = change_pct(before, after)
        kind = "regression" if policy.sign * (after - before) > 0 else "improvement"
        result.append(
            ChangePoint(
                index=t,
                mean_before=before,
                mean_after=after,
                change_pct=pct,
                kind=kind,
                severity=severity_for(pct, pvals[i], policy.min_change_pct),
                p_value=pvals[i],
            )
        )
    return result
