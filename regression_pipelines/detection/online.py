"""The online verdict for the newest run: is it (with the last few runs) off the baseline?

Baseline = the runs since the last *accepted* change point (improvements, and regressions older than
`accept_after_runs`), ending before the first unaccepted one, so an unfixed regression keeps being
compared with the level before it. The runs under test are the last w runs (w = 2..MAX_WINDOW):

* fast rule (w = 2): both runs beyond FAST_Z robust sigmas: a big step is caught on its second run while a
  lone spike (any size) is not;
* slow rule (w >= 3): the winsorised mean shift over the window, widened for autocorrelation, beyond
  SLOW_Z, with the newest run itself still on the bad side: catches ~2 sigma steps within a few runs.

Both also need the window's median to differ from the baseline median by `min_change_pct`. The step's
first run is located by least squares inside the tested tail (same estimator as the offline detector).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

from regression_pipelines.detection.changepoints import find_change_points
from regression_pipelines.detection.model import MetricPolicy, Verdict
from regression_pipelines.detection.robust import floor_scale, lag1_autocorr, mad_scale
from regression_pipelines.detection.severity import recommend, severity_for

LOOKBACK = 120  # older runs cannot change the verdict; keeps one evaluation O(1) in the history length
MAX_BASELINE = 60
MIN_BASELINE = 8
MAX_WINDOW = 8
FAST_Z = 3.5
SLOW_Z = 4.0
LATEST_MIN_Z = 0.5
Z_CLIP = 4.0
MAX_AUTOCORR = 0.7


@dataclass(frozen=True)
class _Hit:
    direction: float  # +1: values went up, -1: down
    window: int
    stat: float


def _baseline_bounds(x: NDArray[np.float64], policy: MetricPolicy) -> tuple[int, int]:
    """[start, end) of the baseline candidates: after the last accepted change, before the first pending one."""
    n = len(x)
    start, end = 0, n
    for cp in find_change_points(x, policy):
        accepted = cp.kind == "improvement" or n - cp.index > policy.accept_after_runs
        if accepted:
            start, end = cp.index, n
        elif end == n:
            end = cp.index
    return start, end


def _window_test(base: NDArray[np.float64], tail: NDArray[np.float64], policy: MetricPolicy) -> _Hit | None:
    """Test the tail against the baseline in both directions; None when it is consistent with it."""
    med = float(np.median(base))
    scale = floor_scale(mad_scale(base, med), med)
    w, nb = len(tail), len(base)
    tail_med = float(np.median(tail))
    if abs(tail_med - med) < policy.min_change_pct / 100.0 * abs(med):
        return None
    zb = np.clip((base - med) / scale, -Z_CLIP, Z_CLIP)
    r = min(max(lag1_autocorr(zb), 0.0), MAX_AUTOCORR)
    widen = np.sqrt((1.0 + r) / (1.0 - r))
    for direction in (1.0, -1.0):
        z = direction * (tail - med) / scale
        zc = np.clip(z, -Z_CLIP, Z_CLIP)
        stat = float(zc.sum() / np.sqrt(w) / widen / np.sqrt(1.0 + w / nb))
        if w == 2 and bool(np.all(z >= FAST_Z)):
            return _Hit(direction, w, max(stat, FAST_Z))
        if w >= 3 and stat >= SLOW_Z and zc[-1] >= LATEST_MIN_Z:
            return _Hit(direction, w, stat)
    return None


def _locate_step(x: NDArray[np.float64], start: int, lo: int) -> int:
    """Least-squares first run of a step in x[start:], constrained to positions >= lo."""
    seg = x[start:]
    c1 = np.concatenate(([0.0], np.cumsum(seg)))
    n = len(seg)
    t = np.arange(max(lo - start, 1), n)
    nl = t.astype(float)
    nr = (n - t).astype(float)
    diff = (c1[n] - c1[t]) / nr - c1[t] / nl
    gain = diff * diff * nl * nr
    return start + int(t[int(np.argmax(gain))])


def _slo_breach(latest: float, policy: MetricPolicy) -> float | None:
    if policy.upper_bound is not None and latest > policy.upper_bound:
        return policy.upper_bound
    if policy.lower_bound is not None and latest < policy.lower_bound:
        return policy.lower_bound
    return None


def evaluate_latest(history: Sequence[float] | NDArray[np.float64], policy: MetricPolicy) -> Verdict:
    """Verdict for history[-1] (the newest run) given everything before it."""
    full = np.asarray(history, dtype=float)
    if len(full) == 0:
        raise ValueError("history is empty: it must end with the newest run")
    if not np.all(np.isfinite(full)):
        raise ValueError("history contains NaN or infinite values")
    offset = max(len(full) - LOOKBACK, 0)
    x = full[offset:]
    n = len(x)
    latest = float(x[-1])
    bound = _slo_breach(latest, policy)
    if bound is not None:
        pct = (latest - bound) / max(abs(bound), 1e-12) * 100.0
        sev = "critical" if abs(pct) >= 20.0 else "high"
        return Verdict(
            "slo_breach",
            sev,
            pct,
            None,
            0,
            latest,
            None,
            len(full) - 1,
            recommend("slo_breach", pct, None, None, bound=bound),
        )
    if n < MIN_BASELINE + 2:
        needed = MIN_BASELINE + 2 - n
        return Verdict(
            "insufficient_data",
            "none",
            0.0,
            None,
            0,
            latest,
            None,
            None,
            recommend("insufficient_data", 0.0, None, None, needed=needed),
        )

    start, end = _baseline_bounds(x, policy)
    hit: _Hit | None = None
    base = x[max(start, n - 2 - MAX_BASELINE) : n - 2]
    for w in range(2, MAX_WINDOW + 1):
        b_end = min(end, n - w)
        base_w = x[max(start, b_end - MAX_BASELINE) : b_end]
        if len(base_w) < MIN_BASELINE:
            break
        found = _window_test(base_w, x[n - w :], policy)
        if found is not None:
            hit, base = found, base_w
            break
    if len(base) < MIN_BASELINE:
        base = x[max(0, n - 1 - MAX_BASELINE) : n - 1]
    med = float(np.median(base))
    if hit is None:
        scale = floor_scale(mad_scale(base, med), med)
        z = (latest - med) / scale
        pct = (latest - med) / max(abs(med), 1e-12) * 100.0
        outlier = policy.sign * z >= FAST_Z
        return Verdict(
            "ok",
            "none",
            pct,
            med,
            len(base),
            latest,
            None,
            None,
            recommend("ok", pct, None, None, outlier=outlier),
            outlier=outlier,
        )

    if end < n - MAX_WINDOW:
        first_bad = end  # a pending change point with enough runs after it to be placed reliably
    else:
        seg_start = max(start, n - 2 - MAX_BASELINE)
        first_bad = _locate_step(x, seg_start, max(seg_start + MIN_BASELINE, n - 2 * MAX_WINDOW))
    after_med = float(np.median(x[first_bad:]))
    pct = (after_med - med) / max(abs(med), 1e-12) * 100.0
    p_value = float(ndtr(-hit.stat))
    status = "regression" if hit.direction * policy.sign > 0 else "improvement"
    sev = severity_for(pct, p_value, policy.min_change_pct)
    return Verdict(
        status,
        sev,
        pct,
        med,
        len(base),
        latest,
        p_value,
        offset + first_bad,
        recommend(status, pct, offset + first_bad, p_value),
    )
