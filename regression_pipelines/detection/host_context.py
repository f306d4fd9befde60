"""Host context for a verdict: did the server (or the host under it) get slower, or only the harness's path?

A harness figure moving says nothing about where the time went. The field's instrument (redis-benchmark,
pgbench) run against the same server in the same runs does: when it moved by about the same factor as the
figure, the server or the host it runs on got slower ("server/host slower: instrument +x %"); when it did
not move, the extra time is on the client's path ("client path"). The host's load average and CPU steal over
the same runs tell a busier machine from a slower server. Pure functions over aligned per-run series.

The comparison is of medians: the runs of the step under judgement (from its first bad run; the newest run
alone when there is no step yet) against the runs before it, and of log-factors (a metric that doubled and an
instrument that doubled agree, whatever their units).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from regression_pipelines.results import Direction

SERVER_HOST = "server/host slower"
PARTLY = "partly server/host"
CLIENT_PATH = "client path"
HOST_BUSIER = "host busier"
SERVER_SLOWER = "server slower"  # an instrument's own figure moved while the host was not busier
INSTRUMENT_FAILED = "instrument unavailable"  # it measured before the step and could not during it
NO_CONTEXT = "no instrument"
# Share of the metric's change (in log-factor) the instrument must explain for each label.
EXPLAINS_MOST = 0.5
EXPLAINS_LITTLE = 0.25
BUSIER_LOAD_FACTOR = 1.5  # load1 up by half or more: the host was busier
BUSIER_STEAL_PTS = 5.0  # CPU steal up by 5 points or more
BASELINE_RUNS = 20  # runs before the step the context compares with, at most


@dataclass(frozen=True)
class HostContext:
    """Where a metric's change came from, as far as the instruments and the host's figures can tell."""

    label: str
    metric_change_pct: float
    instrument: str = ""
    instrument_before: float | None = None
    instrument_after: float | None = None
    load_before: float | None = None
    load_after: float | None = None
    steal_before: float | None = None
    steal_after: float | None = None

    @property
    def instrument_change_pct(self) -> float | None:
        if self.instrument_before and self.instrument_after is not None:
            return 100.0 * (self.instrument_after / self.instrument_before - 1.0)
        return None

    def describe(self) -> str:
        """E.g. 'server/host slower: instrument +98 % (redis_get p50 0.023 -> 0.047 ms; load 1.0 -> 2.1)'."""
        head = self._head()
        facts = []
        if self.instrument and self.instrument_before is not None and self.instrument_after is not None:
            facts.append(f"{self.instrument} {self.instrument_before:.3g} -> {self.instrument_after:.3g}")
        if self.load_before is not None and self.load_after is not None:
            facts.append(f"load {self.load_before:.1f} -> {self.load_after:.1f}")
        if self.steal_before is not None and self.steal_after is not None and max(self.steal_before, self.steal_after):
            facts.append(f"steal {self.steal_before:.1f} -> {self.steal_after:.1f} %")
        return f"{head} ({'; '.join(facts)})" if facts else head

    def _head(self) -> str:
        change, metric = self.instrument_change_pct, self.metric_change_pct
        if change is None:
            if self.label == INSTRUMENT_FAILED and self.instrument_before is not None:
                return (
                    f"{INSTRUMENT_FAILED} during the change ({self.instrument} measured "
                    f"{self.instrument_before:.3g} before): the server or host did not answer it"
                )
            return self.label
        if self.label == SERVER_HOST:
            return f"{SERVER_HOST}: instrument {change:+.0f} %"
        if self.label == PARTLY:
            return f"{PARTLY}: instrument {change:+.0f} % of the metric's {metric:+.0f} %"
        if self.label == CLIENT_PATH:
            return f"{CLIENT_PATH}: instrument {change:+.0f} %, metric {metric:+.0f} %"
        return self.label

    def as_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "summary": self.describe(),
            "metric_change_pct": self.metric_change_pct,
            "instrument": self.instrument,
            "instrument_change_pct": self.instrument_change_pct,
            "load_before": self.load_before,
            "load_after": self.load_after,
            "steal_before": self.steal_before,
            "steal_after": self.steal_after,
        }


Series = Sequence[float | None]


def host_context(
    metric: Series,
    direction: Direction,
    first_bad_index: int | None,
    instruments: Mapping[str, Series],
    paired: str = "",
    load: Series = (),
    steal: Series = (),
    is_instrument: bool = False,
) -> HostContext:
    """The context of the change of `metric` (one value per run, oldest first; None where absent).

    `instruments`: calibration latency series (lower is better) aligned with `metric`; `paired` names the one
    measuring what this metric measures (e.g. redis_get for a cache read p50), judged against the metric's
    change; without one, any instrument or the load moving marks the host busier. `first_bad_index` starts the
    step under judgement (None: the newest run alone). `is_instrument`: the metric is itself an instrument.
    """
    start = first_bad_index if first_bad_index is not None and 0 < first_bad_index < len(metric) else len(metric) - 1
    before, after = _split(metric, start)
    metric_factor = _factor(before, after)
    worse = metric_factor if direction is Direction.LOWER_IS_BETTER else (1 / metric_factor if metric_factor else None)
    change_pct = 100.0 * (metric_factor - 1.0) if metric_factor else math.nan
    load_b, load_a = _medians(load, start)
    steal_b, steal_a = _medians(steal, start)
    host = {"load_before": load_b, "load_after": load_a, "steal_before": steal_b, "steal_after": steal_a}
    if paired and paired in instruments:
        inst_b, inst_a = _medians(instruments[paired], start)
        label = _label(worse, _factor(*_split(instruments[paired], start)))
        if inst_b is not None and inst_a is None:  # e.g. redis-benchmark could not finish against a stalled server
            label = INSTRUMENT_FAILED
        return HostContext(label, change_pct, paired, inst_b, inst_a, **host)
    moved = {name: _factor(*_split(series, start)) for name, series in instruments.items()}
    slower = [name for name, factor in moved.items() if factor and factor >= 1.2]
    busier = (load_b and load_a and load_a / load_b >= BUSIER_LOAD_FACTOR) or (
        steal_b is not None and steal_a is not None and steal_a - steal_b >= BUSIER_STEAL_PTS
    )
    if slower:
        name = max(slower, key=lambda n: moved[n] or 0)
        inst_b, inst_a = _medians(instruments[name], start)
        return HostContext(HOST_BUSIER, change_pct, name, inst_b, inst_a, **host)
    if busier:
        return HostContext(HOST_BUSIER, change_pct, **host)
    if is_instrument:  # the field's instrument itself moved on a host that was not busier: the server did
        return HostContext(SERVER_SLOWER, change_pct, **host)
    label = CLIENT_PATH if instruments and any(moved.values()) else NO_CONTEXT
    return HostContext(label, change_pct, **host)


def _label(metric_worse: float | None, instrument_factor: float | None) -> str:
    """Compare log-factors: how much of the metric's worsening the instrument's slowdown explains."""
    if metric_worse is None or instrument_factor is None or metric_worse <= 0 or instrument_factor <= 0:
        return NO_CONTEXT
    if abs(math.log(metric_worse)) < 1e-9:
        return CLIENT_PATH
    share = math.log(instrument_factor) / math.log(metric_worse)
    if share >= EXPLAINS_MOST:
        return SERVER_HOST
    return PARTLY if share >= EXPLAINS_LITTLE else CLIENT_PATH


def _split(series: Series, start: int) -> tuple[list[float], list[float]]:
    values = list(series)
    before = [v for v in values[max(0, start - BASELINE_RUNS) : start] if _usable(v)]
    after = [v for v in values[start:] if _usable(v)]
    return before, after  # type: ignore[return-value]


def _medians(series: Series, start: int) -> tuple[float | None, float | None]:
    before, after = _split(series, start)
    return (statistics.median(before) if before else None, statistics.median(after) if after else None)


def _factor(before: list[float], after: list[float]) -> float | None:
    if not before or not after:
        return None
    base = statistics.median(before)
    return statistics.median(after) / base if base > 0 else None


def _usable(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def pair_instrument(metric: Series, ratio: Series, instruments: Mapping[str, Series]) -> str:
    """The instrument this metric was calibrated against: the one whose values are metric / ratio in the runs
    that recorded the ratio (`calibration.<figure>_ratio` = harness p50 / instrument p50); '' when none is."""
    for name, series in instruments.items():
        matches = [  # 1e-3: metadata stores 5 significant digits (results.SIGNIFICANT_DIGITS) of each of the three
            abs(m / r - i) <= 1e-3 * max(abs(i), 1e-12)
            for m, r, i in zip(metric, ratio, series, strict=False)
            if _usable(m) and _usable(r) and _usable(i) and r
        ]
        if matches and sum(matches) >= 0.8 * len(matches):
            return name
    return ""


def ratio_name(metric: str) -> str:
    """`calibration.<figure>_ratio` for a harness figure `<figure>_ms` (what calibration.py records)."""
    return f"calibration.{metric.removesuffix('_ms')}_ratio"
