"""The online verdict for the newest run: is it (with the last few runs) off the baseline?

Baseline = the runs since the last *accepted* change point (improvements, and regressions older than
`accept_after_runs`), ending before the first unaccepted one, so an unfixed regression keeps being
compared with the level before it. The runs under test are the last w runs (w = 2..MAX_WINDOW):

* fast rule (w = 2): both runs beyond FAST_Z sigmas: a big step is caught on its second run while a lone
  spike (of any size) never is;
* slow rule (w >= 3): the winsorised mean shift over the window, widened for lag-1 autocorrelation, beyond
  a threshold that falls with w (short windows only for large steps, long ones for ~2 sigma steps), with
  the newest run itself on the bad side of the baseline and the newest half of the window averaging
  >= RECENT_MIN_Z sigmas there (a 3-run excursion that has reverted must not keep a long window flagged).

Thresholds are Student-t quantiles of the nominal z, so a short baseline (uncertain scale) needs more.
Both rules also need the window's median to differ from the baseline median by `min_change_pct`.
The step's first run is located by least squares inside the tail (same estimator as the offline detector).
With per-run sample counts, a percentile run below its sample floor (`samples.py`) is no evidence: the
newest is then not judged, and older ones are left out of the history before anything else happens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr, stdtrit

from regression_pipelines.detection.changepoints import change_pct, find_change_points
from regression_pipelines.detection.model import ChangePoint, MetricPolicy, Verdict
from regression_pipelines.detection.robust import (
    clean_location_scale,
    lag1_autocorr,
    median,
    suppress_spikes,
)
from regression_pipelines.detection.samples import min_samples, quantile_label, sample_counts
from regression_pipelines.detection.severity import recommend, severity_for

LOOKBACK = 160  # older runs cannot change the verdict; keeps one evaluation O(1) in the history length
MAX_BASELINE = 100
MIN_BASELINE = 8
FAST_Z = 3.5
# Slow-rule threshold by window length w (index w - 3); tuned on benchmarks/detection (see NOTES.md).
SLOW_Z = (5.0, 4.6, 4.3, 4.0, 3.8, 3.7, 3.7, 3.7)
MAX_WINDOW = 2 + len(SLOW_Z)
LATEST_MIN_Z = 0.0
Z_CLIP = 3.5
RECENT_MIN_Z = 1.0  # the newest half of a slow-rule window must average this many sigmas on the bad side
MAX_AUTOCORR = 0.7


@dataclass(frozen=True)
class _Hit:
    direction: float  # +1: values went up, -1: down
    window: int
    stat: float
    base_start: int
    base_end: int


def _baseline_bounds(cps: list[ChangePoint], n: int, policy: MetricPolicy) -> tuple[int, int]:
    """[start, end) of the baseline candidates: after the last accepted change, before the first pending one."""
    start, end = 0, n
    for cp in cps:
        if n - cp.index < MAX_WINDOW:
            continue  # too few runs after it to be placed reliably; the window test judges the tail
        accepted = cp.kind == "improvement" or n - cp.index > policy.accept_after_runs
        if accepted:
            start, end = cp.index, n
        elif end == n:
            end = cp.index
    return start, end


def _widen_for_window(r: float, w: int) -> float:
    """How much lag-1 autocorrelation r inflates the sd of a w-run mean.

    Under AR(1), var(sum of w runs) / w = 1 + 2 sum_{k<w} (1 - k/w) r^k. The asymptotic (1+r)/(1-r) used
    before is reached only for long windows and over-widened the 3..10-run windows (r = 0.3, w = 8: 1.36
    instead of 1.31), i.e. cost detection on autocorrelated series (benchmarks/detection/NOTES.md).
    """
    return float(np.sqrt(1.0 + 2.0 * sum((1.0 - k / w) * r**k for k in range(1, w))))


def _autocorr(x: NDArray[np.float64], cps: list[ChangePoint], min_segment: int) -> float:
    """The lag-1 autocorrelation r used to widen the window tests (clipped to [0, MAX_AUTOCORR]).

    r is the lag-1 autocorrelation of the spike-suppressed residuals around the segment means of the
    lookback minus the runs under test (a fresh, not yet segmented step there would look like
    autocorrelation), bias-corrected for its known downward bias (1 + 3r)/n.
    """
    x = x[: max(len(x) - MAX_WINDOW, MIN_BASELINE)]
    clean = suppress_spikes(x, half=min_segment - 1)
    bounds = [0, *(cp.index for cp in cps if min_segment <= cp.index <= len(x) - min_segment), len(x)]
    resid = np.concatenate([clean[a:b] - clean[a:b].mean() for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    r = lag1_autocorr(resid)
    return min(max(r + (1.0 + 3.0 * r) / len(x), 0.0), MAX_AUTOCORR)


def _t_quantile(z: float, nb: int) -> float:
    """The Student-t (nb - 1 df) value with the same tail probability as z."""
    return float(stdtrit(nb - 1, ndtr(z)))


def _window_test(
    base: NDArray[np.float64], tail: NDArray[np.float64], r: float, policy: MetricPolicy
) -> tuple[float, float] | None:
    """(direction, statistic) when the tail is off the baseline, else None."""
    w, nb = len(tail), len(base)
    med = median(base)
    if abs(median(tail) - med) < policy.min_change_pct / 100.0 * abs(med):
        return None
    center, scale = clean_location_scale(base)
    widen = _widen_for_window(r, w)
    for direction in (1.0, -1.0):
        z = direction * (tail - center) / scale
        if w == 2:
            if bool(np.all(z >= _t_quantile(FAST_Z, nb))):
                return direction, FAST_Z
            continue
        zc = np.clip(z, -Z_CLIP, Z_CLIP)  # one spike in the window cannot carry it
        stat = float(zc.sum() / np.sqrt(w) / widen / np.sqrt(1.0 + w / nb))
        recent = float(zc[w // 2 :].mean())  # a reverted excursion leaves its weight in the older half
        if stat >= _t_quantile(SLOW_Z[w - 3], nb) and zc[-1] >= LATEST_MIN_Z and recent >= RECENT_MIN_Z:
            return direction, stat
    return None


def _scan_windows(x: NDArray[np.float64], start: int, end: int, r: float, policy: MetricPolicy) -> _Hit | None:
    """The shortest window of newest runs that is off its baseline."""
    n = len(x)
    for w in range(2, MAX_WINDOW + 1):
        b_end = min(end, n - w)
        b_start = max(start, b_end - MAX_BASELINE)
        if b_end - b_start < MIN_BASELINE:
            return None
        found = _window_test(x[b_start:b_end], x[n - w :], r, policy)
        if found is not None:
            return _Hit(found[0], w, found[1], b_start, b_end)
    return None


def _locate_step(x: NDArray[np.float64], start: int, lo: int) -> int:
    """Least-squares first run of a step in x[start:], constrained to positions >= lo."""
    seg = x[start:]
    c1 = np.concatenate(([0.0], np.cumsum(seg)))
    n = len(seg)
    t = np.arange(min(max(lo - start, 1), n - 1), n)
    nl = t.astype(float)
    nr = (n - t).astype(float)
    diff = (c1[n] - c1[t]) / nr - c1[t] / nl
    return start + int(t[int(np.argmax(diff * diff * nl * nr))])


def _slo_breach(latest: float, policy: MetricPolicy) -> float | None:
    if policy.upper_bound is not None and latest > policy.upper_bound:
        return policy.upper_bound
    if policy.lower_bound is not None and latest < policy.lower_bound:
        return policy.lower_bound
    return None


def _pct(value: float, reference: float) -> float:
    return change_pct(reference, value)


def evaluate_latest(
    history: Sequence[float] | NDArray[np.float64],
    policy: MetricPolicy,
    samples: Sequence[int | None] | None = None,
) -> Verdict:
    """Verdict for history[-1] (the newest run) given everything before it.

    `samples`: per-run sample counts (None where unknown). For a percentile (`policy.quantile`) a run with
    fewer than `min_samples` is not evidence: the newest is then not judged, older ones leave the baseline.
    """
    full = np.asarray(history, dtype=float)
    if full.ndim != 1 or len(full) == 0:
        raise ValueError("history must be a non-empty 1-D sequence ending with the newest run")
    if not np.all(np.isfinite(full)):
        raise ValueError("history contains NaN or infinite values")
    latest = float(full[-1])
    bound = _slo_breach(latest, policy)
    if bound is not None:
        pct = _pct(latest, bound)
        return Verdict(
            status="slo_breach",
            severity="critical" if abs(pct) >= 20.0 else "high",
            change_pct=pct,
            baseline=None,
            baseline_n=0,
            latest=latest,
            p_value=None,
            first_bad_index=len(full) - 1,
            recommendation=recommend("slo_breach", pct, None, None, bound=bound),
        )
    if samples is None or policy.quantile is None:
        return _judge(full, None, policy)
    counts = sample_counts(samples, len(full))
    needed = min_samples(policy.quantile)
    if counts[-1] < needed:
        return _undersampled(latest, int(counts[-1]), needed, policy.quantile)
    positions = np.flatnonzero(~(counts < needed))  # runs without a count are kept (older histories)
    return _judge(full[positions], positions, policy)


def _undersampled(latest: float, count: int, needed: float, quantile: float) -> Verdict:
    label = quantile_label(quantile)
    floor = "is never judged from samples" if math.isinf(needed) else f"needs >= {needed:.0f}"
    return Verdict(
        status="insufficient_data",
        severity="none",
        change_pct=0.0,
        baseline=None,
        baseline_n=0,
        latest=latest,
        p_value=None,
        first_bad_index=None,
        recommendation=recommend("undersampled", 0.0, None, None),
        reason=f"{label} of {count} samples; a {label} {floor}",
    )


def _judge(kept: NDArray[np.float64], positions: NDArray[np.int64] | None, policy: MetricPolicy) -> Verdict:
    """The verdict on the runs that are evidence; `positions` maps them back to the full history (None: all)."""
    offset = max(len(kept) - LOOKBACK, 0)
    x = kept[offset:]
    n = len(x)
    latest = float(x[-1])
    if n < MIN_BASELINE + 2:
        return Verdict(
            status="insufficient_data",
            severity="none",
            change_pct=0.0,
            baseline=None,
            baseline_n=0,
            latest=latest,
            p_value=None,
            first_bad_index=None,
            recommendation=recommend("insufficient_data", 0.0, None, None, needed=MIN_BASELINE + 2 - n),
            reason=f"{n} judgeable run(s) of history; {MIN_BASELINE + 2} needed",
        )

    cps = find_change_points(x, policy)
    start, end = _baseline_bounds(cps, n, policy)
    hit = _scan_windows(x, start, end, _autocorr(x, cps, policy.min_segment), policy)
    if hit is None:
        b_end = min(end, n - 1)
        base = x[max(start, b_end - MAX_BASELINE) : b_end]
        if len(base) < MIN_BASELINE:
            base = x[max(0, n - 1 - MAX_BASELINE) : n - 1]
        med = median(base)
        center, scale = clean_location_scale(base)
        outlier = policy.sign * (latest - center) / scale >= FAST_Z
        pct = _pct(latest, med)
        return Verdict(
            status="ok",
            severity="none",
            change_pct=pct,
            baseline=med,
            baseline_n=len(base),
            latest=latest,
            p_value=None,
            first_bad_index=None,
            recommendation=recommend("ok", pct, None, None, outlier=outlier),
            outlier=outlier,
        )

    if end < n - MAX_WINDOW:
        first_bad = end  # a pending change point with enough runs after it to be placed reliably
    else:
        first_bad = _locate_step(x, hit.base_start, max(hit.base_start + MIN_BASELINE, n - 2 * MAX_WINDOW))
    med = median(x[hit.base_start : hit.base_end])
    pct = _pct(median(x[first_bad:]), med)
    p_value = float(ndtr(-hit.stat))
    status = "regression" if hit.direction * policy.sign > 0 else "improvement"
    index = offset + first_bad if positions is None else int(positions[offset + first_bad])
    return Verdict(
        status=status,
        severity=severity_for(pct, p_value, policy.min_change_pct),
        change_pct=pct,
        baseline=med,
        baseline_n=hit.base_end - hit.base_start,
        latest=latest,
        p_value=p_value,
        first_bad_index=index,
        recommendation=recommend(status, pct, index, p_value),
    )
