"""One metric's history prepared for its chart: comparable runs, change points, baseline bands, downsampling.

Pure (numpy + detection). Only runs with the newest run's settings (`baseline_key`) are judged, exactly as
the verdicts do; runs with other settings (a faulted run, another failover mode) are shown apart, never
mixed in. Change points and bands come from the whole comparable history; the chart shows the window.

Downsampling keeps a long history light: when a window holds more than MAX_POINTS runs, the newest RECENT
runs are kept as they are, older runs are represented by the median run of each bucket, and every change
point (with the run before it) and the first bad run are always kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from regression_pipelines.detection import MetricPolicy, find_change_points
from regression_pipelines.detection.online import FAST_Z, MIN_BASELINE
from regression_pipelines.detection.robust import clean_location_scale, floor_scale
from regression_pipelines.results import MetricKind

MAX_POINTS = 400
RECENT = 200
MAX_OTHER_POINTS = 150
BAND_Z = FAST_Z  # two runs in a row beyond this many robust sigmas is the detector's fast rule
MIN_BAND_RUNS = 3  # fewer runs say nothing about a spread
JUDGED_FROM_RUNS = MIN_BASELINE + 2  # the online verdict's minimum history (detection/online.py)


@dataclass(frozen=True)
class MetricHistory:
    """A metric's recorded values, oldest first (None: nothing measured in that run)."""

    area: str
    metric: str
    unit: str
    kind: str
    direction: str
    at_ms: Sequence[int]
    values: Sequence[float | None]
    run_ids: Sequence[str]
    storage_ids: Sequence[int]  # the materializations (a run id is "" for results reported outside a run)
    baseline_keys: Sequence[str]


@dataclass(frozen=True)
class Trace:
    label: str
    at_ms: list[int]
    values: list[float]
    run_ids: list[str]


@dataclass(frozen=True)
class Band:
    """A stable segment's baseline: its mean +- BAND_Z robust sigmas, from start_ms to end_ms."""

    start_ms: int
    end_ms: int
    center: float
    low: float
    high: float


@dataclass(frozen=True)
class Change:
    """A change point: the first run after a level shift."""

    at_ms: int
    value: float
    run_id: str
    change_pct: float
    kind: str  # regression | improvement
    severity: str


@dataclass(frozen=True)
class SeriesView:
    history: MetricHistory
    main: Trace
    others: list[Trace]
    bands: list[Band]
    changes: list[Change]
    first_bad: Change | None
    upper_bound: float | None
    lower_bound: float | None
    points_in_window: int

    @property
    def judged(self) -> bool:
        return self.history.kind == MetricKind.PERFORMANCE.value

    @property
    def points_shown(self) -> int:
        return len(self.main.at_ms) + sum(len(t.at_ms) for t in self.others)


def keep_indices(
    values: NDArray[np.float64], must_keep: Iterable[int] = (), max_points: int = MAX_POINTS, recent: int = RECENT
) -> NDArray[np.int64]:
    """Indices to plot: all when few; else the newest `recent`, one median run per bucket of older ones,
    and every index in `must_keep`."""
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    old = n - recent
    edges = np.linspace(0, old, max_points - recent + 1).astype(int)
    keep = set(range(old, n))
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b > a:
            order = np.argsort(values[a:b], kind="stable")
            keep.add(a + int(order[(b - a) // 2]))
    keep.update(i for i in must_keep if 0 <= i < n)
    return np.array(sorted(keep), dtype=np.int64)


def _bands(at: NDArray[np.int64], x: NDArray[np.float64], cuts: list[int]) -> list[Band]:
    bounds = [0, *cuts, len(x)]
    bands = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        if b - a < MIN_BAND_RUNS:
            continue
        center, scale = clean_location_scale(x[a:b])
        scale = floor_scale(scale, center)
        end = at[b] if b < len(x) else at[-1]
        bands.append(Band(int(at[a]), int(end), center, center - BAND_Z * scale, center + BAND_Z * scale))
    return bands


def settings_difference(key: str, reference: str) -> str:
    """What a run's settings (`baseline_key`) change against the reference ones: `fault=no_ttl, readers=8`.

    A legend shows this instead of the whole settings JSON: short, and it says why the runs are apart.
    """
    try:
        mine, ref = json.loads(key or "{}"), json.loads(reference or "{}")
    except ValueError:
        return key
    changed = [f"{name}={_text(mine[name])}" for name in sorted(mine) if mine[name] != ref.get(name)]
    changed += [f"no {name}" for name in sorted(ref) if name not in mine]
    return ", ".join(changed) or "same settings"


def _text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _settings_label(key: str, latest_key: str) -> str:
    return f"other settings: {settings_difference(key, latest_key)}"


def build_view(
    history: MetricHistory, policy: MetricPolicy, window_start_ms: int, first_bad: int | None = None
) -> SeriesView | None:
    """The chart's content, or None when the window holds no measured value of this metric.
    `first_bad`: the storage id of the first bad run of the newest verdict, marked when in the window."""
    measured = [i for i, v in enumerate(history.values) if v is not None and np.isfinite(v)]
    if not measured:
        return None
    at_all = np.asarray(history.at_ms, dtype=np.int64)
    latest_key = history.baseline_keys[measured[-1]]
    comparable = np.array([i for i in measured if history.baseline_keys[i] == latest_key], dtype=np.int64)
    at = at_all[comparable]
    x = np.array([history.values[i] for i in comparable], dtype=float)
    runs = [history.run_ids[i] for i in comparable]
    storage = [history.storage_ids[i] for i in comparable]
    in_window = np.flatnonzero(at >= window_start_ms)
    others = _other_traces(history, measured, latest_key, window_start_ms)
    if len(in_window) == 0 and not others:
        return None

    judged = history.kind == MetricKind.PERFORMANCE.value
    points = find_change_points(x, policy) if judged else []
    cuts = [cp.index for cp in points]
    first_bad_index = storage.index(first_bad) if judged and first_bad in storage else None
    must_keep = {c for cp in cuts for c in (cp - 1, cp)} | ({first_bad_index} if first_bad_index is not None else set())
    offset = int(in_window[0]) if len(in_window) else len(x)
    shown = offset + keep_indices(x[offset:], [i - offset for i in must_keep if i >= offset])

    def change(i: int, pct: float = 0.0, kind: str = "regression", severity: str = "") -> Change:
        return Change(int(at[i]), float(x[i]), runs[i], pct, kind, severity)

    window_ms = int(at[offset]) if offset < len(x) else window_start_ms
    return SeriesView(
        history=history,
        main=Trace(
            label="runs" if not others else "runs with the newest settings",
            at_ms=[int(at[i]) for i in shown],
            values=[float(x[i]) for i in shown],
            run_ids=[runs[i] for i in shown],
        ),
        others=others,
        bands=[
            Band(max(b.start_ms, window_ms), b.end_ms, b.center, b.low, b.high)
            for b in (_bands(at, x, cuts) if judged else [])
            if b.end_ms >= window_ms
        ],
        changes=[change(cp.index, cp.change_pct, cp.kind, cp.severity) for cp in points if cp.index >= offset],
        first_bad=change(first_bad_index) if first_bad_index is not None and first_bad_index >= offset else None,
        upper_bound=policy.upper_bound if judged else None,
        lower_bound=policy.lower_bound if judged else None,
        points_in_window=len(x) - offset + sum(len(t.at_ms) for t in others),
    )


def _other_traces(history: MetricHistory, measured: list[int], latest_key: str, window_start_ms: int) -> list[Trace]:
    """Runs with other settings in the window, one faint trace per setting, thinned by stride if long."""
    by_key: dict[str, list[int]] = {}
    for i in measured:
        if history.baseline_keys[i] != latest_key and history.at_ms[i] >= window_start_ms:
            by_key.setdefault(history.baseline_keys[i], []).append(i)
    traces = []
    for key, idx in sorted(by_key.items()):
        step = max(1, -(-len(idx) // MAX_OTHER_POINTS))
        kept = idx[::step]
        traces.append(
            Trace(
                label=_settings_label(key, latest_key),
                at_ms=[int(history.at_ms[i]) for i in kept],
                values=[float(history.values[i]) for i in kept],  # type: ignore[arg-type]
                run_ids=[history.run_ids[i] for i in kept],
            )
        )
    return traces
