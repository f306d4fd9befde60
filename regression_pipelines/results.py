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
from typing import Any

METRIC_PREFIX = "metric/"
ENV_PREFIX = "env/"
SCHEMA_KEY = "regress/metric_schema"
AREA_KEY = "regress/area"
INVARIANTS_KEY = "regress/invariants"
BASELINE_KEY = "regress/baseline_key"


class Direction(StrEnum):
    LOWER_IS_BETTER = "lower_is_better"
    HIGHER_IS_BETTER = "higher_is_better"


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    unit: str
    direction: Direction = Direction.LOWER_IS_BETTER

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"metric name {self.name!r} must be non-empty and contain no '/'")
        object.__setattr__(self, "direction", Direction(self.direction))
        object.__setattr__(self, "value", float(self.value))


@dataclass(frozen=True)
class Invariant:
    name: str
    passed: bool
    detail: str
    facts: Mapping[str, float | int | str | bool] = field(default_factory=dict)


@dataclass
class ScenarioResult:
    area: str
    metrics: list[Metric] = field(default_factory=list)
    invariants: list[Invariant] = field(default_factory=list)
    environment: dict[str, str | int | float | bool] = field(default_factory=dict)
    # Settings that change what the figures mean (fault injected, failover mode, sync/async replication...):
    # a run is only ever compared with history that has the same values.
    comparable_on: dict[str, str | int | float | bool] = field(default_factory=dict)

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
    metadata: dict[str, Any] = {AREA_KEY: result.area}
    for metric in result.metrics:
        metadata[METRIC_PREFIX + metric.name] = metric.value
    metadata[SCHEMA_KEY] = json.dumps(
        {m.name: {"unit": m.unit, "direction": m.direction.value} for m in result.metrics}, sort_keys=True
    )
    metadata[INVARIANTS_KEY] = json.dumps(
        {inv.name: {"passed": inv.passed, "detail": inv.detail} for inv in result.invariants}, sort_keys=True
    )
    metadata[BASELINE_KEY] = baseline_key(result.comparable_on)
    for key, value in result.environment.items():
        metadata[ENV_PREFIX + key] = str(value)
    return metadata


def baseline_key(comparable_on: Mapping[str, Any]) -> str:
    """A stable text for the settings a baseline must share (empty settings: one baseline for all runs)."""
    return json.dumps({k: comparable_on[k] for k in sorted(comparable_on)}, sort_keys=True, default=str)


def baseline_key_from_metadata(metadata: Mapping[str, Any]) -> str:
    return str(_plain(metadata.get(BASELINE_KEY, "{}")) or "{}")


def _plain(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def metrics_from_metadata(metadata: Mapping[str, Any]) -> list[Metric]:
    """Read metrics back from stored metadata, so nobody parses ad-hoc keys."""
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
            )
        )
    return sorted(metrics, key=lambda m: m.name)


def invariants_from_metadata(metadata: Mapping[str, Any]) -> list[Invariant]:
    stored = json.loads(_plain(metadata.get(INVARIANTS_KEY, "{}")) or "{}")
    return [Invariant(name=n, passed=bool(v["passed"]), detail=v["detail"]) for n, v in sorted(stored.items())]
