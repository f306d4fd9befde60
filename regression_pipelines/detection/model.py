"""The detection vocabulary: what a metric wants (policy) and what detection says (verdict, change point).

Kept free of Dagster and of any I/O so the sensor, the CLI and the benchmark share one definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from regression_pipelines.results import Direction

Status = Literal["ok", "regression", "improvement", "insufficient_data", "slo_breach", "not_judged"]
Severity = Literal["none", "low", "medium", "high", "critical"]
Kind = Literal["regression", "improvement"]

SEVERITIES: tuple[Severity, ...] = ("none", "low", "medium", "high", "critical")


@dataclass(frozen=True)
class MetricPolicy:
    """How one metric is judged.

    `min_change_pct` is the smallest relative change (in percent of the baseline) worth reporting, so a
    statistically real but irrelevant 0.3 % wobble never pages anyone. `upper_bound`/`lower_bound` are
    static SLOs (e.g. failover outage <= 30 s) checked on the newest run alone, history or not.
    `accept_after_runs`: a regression that has persisted this many runs is taken as the new normal
    (its change point becomes the baseline start), so an old, known step stops alerting.
    `quantile`: the metric is this quantile (0.99 for a p99, 1.0 for a maximum) of the samples each run
    counted; with per-run sample counts it sets how many a run needs to be judged (see `samples.py`).
    """

    direction: Direction = Direction.LOWER_IS_BETTER
    min_change_pct: float = 0.0
    upper_bound: float | None = None
    lower_bound: float | None = None
    min_segment: int = 5
    accept_after_runs: int = 30
    quantile: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "direction", Direction(self.direction))
        if self.min_change_pct < 0:
            raise ValueError(f"min_change_pct must be >= 0, got {self.min_change_pct}")
        if self.min_segment < 2:
            raise ValueError(f"min_segment must be >= 2, got {self.min_segment}")
        if self.upper_bound is not None and self.lower_bound is not None and self.lower_bound > self.upper_bound:
            raise ValueError("lower_bound must not exceed upper_bound")
        if self.quantile is not None and not 0.0 <= self.quantile <= 1.0:
            raise ValueError(f"quantile must be within [0, 1] (0.99 for a p99), got {self.quantile}")

    @property
    def sign(self) -> float:
        """+1 when a larger value is worse (lower is better), -1 otherwise."""
        return 1.0 if self.direction is Direction.LOWER_IS_BETTER else -1.0


@dataclass(frozen=True)
class ChangePoint:
    """A level shift; `index` is the 0-based position of the first run after the change (first bad run)."""

    index: int
    mean_before: float
    mean_after: float
    change_pct: float
    kind: Kind
    severity: Severity
    p_value: float


@dataclass(frozen=True)
class Verdict:
    """The online answer for the newest run.

    status: "ok" | "regression" | "improvement" | "insufficient_data" | "slo_breach" (the newest run
    violates a static bound; takes precedence over everything else) | "not_judged" (given by the caller to
    metrics that are recorded but not judged, e.g. volume counts). `reason` says why a run was not
    judged (too short a history, too few samples, the metric's kind), empty when it was. `baseline` is
    the median of the baseline window (the runs since the last accepted change point, before the runs
    under test) and `baseline_n` its size. `first_bad_index` is the position in the history of the first
    run of the current regressed/improved step, when there is one. `outlier` marks a newest run far
    outside the baseline that is not (yet) confirmed by a second run: a spike is reported, never alerted.
    """

    status: Status
    severity: Severity
    change_pct: float
    baseline: float | None
    baseline_n: int
    latest: float
    p_value: float | None
    first_bad_index: int | None
    recommendation: str
    outlier: bool = False
    reason: str = ""

    @property
    def is_alert(self) -> bool:
        return self.status in ("regression", "slo_breach")
