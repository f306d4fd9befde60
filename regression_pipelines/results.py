"""The one result shape every scenario returns, and its round trip through asset metadata.

Pure Python on purpose: scenarios import this and must not import Dagster. Dagster renders the plain
floats and strings returned by `to_metadata` as numeric (plottable) and text metadata; `metrics_from_metadata`
accepts either plain values or Dagster `MetadataValue` objects (anything with a `.value`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

METRIC_PREFIX = "metric/"
ENV_PREFIX = "env/"
SCHEMA_KEY = "regress/metric_schema"
AREA_KEY = "regress/area"
INVARIANTS_KEY = "regress/invariants"
BASELINE_KEY = "regress/baseline_key"
STATUS_KEY = "regress/status"  # "measured", or "skipped" when the area's system was not there to test
SKIP_REASON_KEY = "regress/skip_reason"


class Direction(StrEnum):
    LOWER_IS_BETTER = "lower_is_better"
    HIGHER_IS_BETTER = "higher_is_better"


class MetricKind(StrEnum):
    """What a figure is for: only performance figures are judged against baselines by default."""

    PERFORMANCE = "performance"  # judged against baselines
    VOLUME = "volume"  # counts of work done; recorded and plotted, judged only if a policy says so
    INFO = "info"  # context (settings echoed, versions as numbers...), never judged


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    unit: str
    direction: Direction = Direction.LOWER_IS_BETTER
    kind: MetricKind = MetricKind.PERFORMANCE
    samples: int | None = None  # for percentiles/rates: how many observations the figure came from

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"metric name {self.name!r} must be non-empty and contain no '/'")
        object.__setattr__(self, "direction", Direction(self.direction))
        object.__setattr__(self, "kind", MetricKind(self.kind))
        object.__setattr__(self, "value", float(self.value))
        if self.samples is not None:
            if int(self.samples) != self.samples or self.samples < 0:
                raise ValueError(f"metric {self.name!r}: samples must be a count >= 0, got {self.samples!r}")
            object.__setattr__(self, "samples", int(self.samples))


@dataclass(frozen=True)
class Invariant:
    name: str
    passed: bool
    detail: str
    facts: Mapping[str, float | int | str | bool] = field(default_factory=dict)


# A stage's figures: plain values the factory turns into metadata (a Path as a path, a mapping as JSON).
StageValue = str | int | float | bool | Path | Mapping[str, int | float | str]


@dataclass
class ScenarioResult:
    area: str
    metrics: list[Metric] = field(default_factory=list)
    invariants: list[Invariant] = field(default_factory=list)
    environment: dict[str, str | int | float | bool] = field(default_factory=dict)
    # Settings that change what the figures mean (fault injected, failover mode, sync/async replication...):
    # a run is only ever compared with history that has the same values.
    comparable_on: dict[str, str | int | float | bool] = field(default_factory=dict)
    # Per declared stage of the area (kit.Stage): what that stage produced, e.g. the input file and its rows.
    stages: dict[str, dict[str, StageValue]] = field(default_factory=dict)

    def metric(self, name: str) -> Metric:
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(f"{self.area}: no metric named {name!r}")

    def invariant(self, name: str) -> Invariant:
        for invariant in self.invariants:
            if invariant.name == name:
                return invariant
        raise KeyError(f"{self.area}: no invariant named {name!r}")

    @property
    def all_invariants_passed(self) -> bool:
        return all(inv.passed for inv in self.invariants)


def to_metadata(result: ScenarioResult) -> dict[str, Any]:
    """Flatten a result into metadata: one float per metric (Dagster plots these over time)."""
    metadata: dict[str, Any] = {AREA_KEY: result.area, STATUS_KEY: "measured"}
    for metric in result.metrics:
        metadata[METRIC_PREFIX + metric.name] = metric.value
    metadata[SCHEMA_KEY] = json.dumps({m.name: _schema_entry(m) for m in result.metrics}, sort_keys=True)
    metadata[INVARIANTS_KEY] = json.dumps(
        {inv.name: {"passed": inv.passed, "detail": inv.detail} for inv in result.invariants}, sort_keys=True
    )
    metadata[BASELINE_KEY] = baseline_key(result.comparable_on)
    for key, value in result.environment.items():
        metadata[ENV_PREFIX + key] = str(value)
    return metadata


def _schema_entry(metric: Metric) -> dict[str, Any]:
    entry: dict[str, Any] = {"unit": metric.unit, "direction": metric.direction.value, "kind": metric.kind.value}
    if metric.samples is not None:
        entry["samples"] = metric.samples
    return entry


def baseline_key(comparable_on: Mapping[str, Any]) -> str:
    """A stable text for the settings a baseline must share (empty settings: one baseline for all runs)."""
    return json.dumps({k: comparable_on[k] for k in sorted(comparable_on)}, sort_keys=True, default=str)


def baseline_key_from_metadata(metadata: Mapping[str, Any]) -> str:
    return str(_plain(metadata.get(BASELINE_KEY, "{}")) or "{}")


def _plain(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def metrics_from_metadata(metadata: Mapping[str, Any]) -> list[Metric]:
    """Read metrics back from stored metadata, so nobody parses ad-hoc keys.

    Metadata stored before metrics had a kind and a sample count reads back as performance with no count,
    so old histories keep being judged as they were.
    """
    schema = json.loads(_plain(metadata.get(SCHEMA_KEY, "{}")) or "{}")
    metrics = []
    for key, raw in metadata.items():
        if not key.startswith(METRIC_PREFIX):
            continue
        name = key[len(METRIC_PREFIX) :]
        value = _plain(raw)
        if value is None:
            continue
        info = schema.get(name, {})
        metrics.append(
            Metric(
                name=name,
                value=float(value),
                unit=info.get("unit", ""),
                direction=Direction(info.get("direction", Direction.LOWER_IS_BETTER.value)),
                kind=MetricKind(info.get("kind", MetricKind.PERFORMANCE.value)),
                samples=info.get("samples"),
            )
        )
    return sorted(metrics, key=lambda m: m.name)


def invariants_from_metadata(metadata: Mapping[str, Any]) -> list[Invariant]:
    stored = json.loads(_plain(metadata.get(INVARIANTS_KEY, "{}")) or "{}")
    return [Invariant(name=n, passed=bool(v["passed"]), detail=v["detail"]) for n, v in sorted(stored.items())]


def skipped_metadata(area: str, reason: str) -> dict[str, Any]:
    """What a skipped area records instead of figures: no metrics, no invariants, the reason in words."""
    return {AREA_KEY: area, STATUS_KEY: "skipped", SKIP_REASON_KEY: reason}


def skip_reason_from_metadata(metadata: Mapping[str, Any]) -> str | None:
    """The reason an area was skipped, or None when it measured something."""
    if _plain(metadata.get(STATUS_KEY)) != "skipped":
        return None
    return str(_plain(metadata.get(SKIP_REASON_KEY)) or "skipped")
