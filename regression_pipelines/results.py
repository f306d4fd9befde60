"""The one result shape every scenario returns, and its round trip through asset metadata.

Pure Python on purpose: scenarios import this and must not import Dagster. Dagster renders the plain
floats and strings returned by `to_metadata` as numeric (plottable) and text metadata; `metrics_from_metadata`
accepts either plain values or Dagster `MetadataValue` objects (anything with a `.value`).

Metric keys carry what Dagster's metadata has no field for (Dagster 1.13's FloatMetadataValue is a bare
number, and its plots are titled by the key): the unit, and the run's settings when they differ from the
area's defaults, `metric/cache_aside.read_p50_ms (ms) [fault=skip_invalidation]`. So a plot has a unit, and a
faulted or differently configured run draws its own plot instead of joining the clean line. Keys written
before (`metric/<name>`) still read back.

The outcome words are here too (`Verdict`), so the CLI, JSON, UI tags and report say the same thing.
"""

from __future__ import annotations

import json
import math
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
SETTINGS_KEY = "regress/settings"  # the settings that differ from the area's defaults ("" for a default run)
SIGNIFICANT_DIGITS = 5  # figures are stored rounded: noise-free text, far finer than run-to-run variation


class Verdict(StrEnum):
    """What a run of an area concluded: one vocabulary for the CLI, JSON, the UI's run tags and the report.

    The run's own status (did Dagster finish it: SUCCESS, FAILURE) is a separate word, Dagster's.
    """

    PASSED = "passed"  # every invariant held and no performance metric regressed
    FAILED = "failed"  # an invariant failed (a crashed scenario fails its run_completed invariant)
    REGRESSED = "regressed"  # a performance metric regressed or breached its SLO
    SKIPPED = "skipped"  # measured nothing: its system was not there, or destructive and not opted in
    ERROR = "error"  # the step failed before measuring (an unusable environment): nothing to judge
    NOT_RUN = "not_run"  # never run


# Worst first: an overall verdict is the worst of its areas' (skipped and not_run never make a run pass).
VERDICT_ORDER = (Verdict.ERROR, Verdict.FAILED, Verdict.REGRESSED, Verdict.PASSED, Verdict.SKIPPED, Verdict.NOT_RUN)


def overall_verdict(verdicts: list[Verdict]) -> Verdict:
    """The worst verdict of a run's areas; `skipped` only when every area was skipped."""
    present = set(verdicts)
    return next((v for v in VERDICT_ORDER if v in present), Verdict.NOT_RUN)


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
        if not self.name or "/" in self.name or any(ch.isspace() for ch in self.name):
            raise ValueError(f"metric name {self.name!r} must be non-empty and contain no '/' or whitespace")
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


def rounded(value: float) -> float:
    """SIGNIFICANT_DIGITS significant digits (0.062018500000000004 -> 0.062019); whole numbers stay exact."""
    if not math.isfinite(value) or float(value).is_integer():
        return value
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def metric_key(metric: Metric, settings: str = "") -> str:
    """`metric/<name> (<unit>) [<settings>]`: the unit and the run's non-default settings in the plot's title."""
    key = METRIC_PREFIX + metric.name
    if metric.unit:
        key += f" ({metric.unit})"
    return key + (f" [{settings}]" if settings else "")


def metric_name_from_key(key: str) -> str | None:
    """The metric a metadata key holds, for new keys and for `metric/<name>` ones written before; else None."""
    if not key.startswith(METRIC_PREFIX):
        return None
    return key[len(METRIC_PREFIX) :].split(" ", 1)[0]


def metric_values(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """name -> stored value (plain or MetadataValue), whatever the key's unit and settings."""
    return {name: raw for key, raw in metadata.items() if (name := metric_name_from_key(key))}


def settings_label(comparable_on: Mapping[str, Any], defaults: Mapping[str, Any]) -> str:
    """The settings that make a run not comparable with a default run: `fault=no_ttl, readers=8` ('' if none).

    A setting (a key in `defaults`) counts when its value differs from the default; a fact the scenario
    observed on the system (not a setting) counts when it is a boolean that is on (synchronous replication).
    """
    parts = []
    for name in sorted(comparable_on):
        value = comparable_on[name]
        if name in defaults:
            if _same_setting(value, defaults[name]):
                continue
        elif value is not True:
            continue
        parts.append(f"{name}={_setting_text(value)}")
    return ", ".join(parts)


def _setting_text(value: Any) -> str:
    value = getattr(value, "value", value)
    if isinstance(value, (list, tuple)):
        return ",".join(str(getattr(v, "value", v)) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _same_setting(value: Any, default: Any) -> bool:
    return value == default or _setting_text(value) == _setting_text(default)


def to_metadata(result: ScenarioResult, settings: str = "") -> dict[str, Any]:
    """Flatten a result into metadata: one rounded float per metric (Dagster plots these over time).

    `settings`: the run's non-default settings (`settings_label`); they go into every metric key, so runs
    with other settings are plotted apart.
    """
    metadata: dict[str, Any] = {AREA_KEY: result.area, STATUS_KEY: "measured"}
    for metric in result.metrics:
        metadata[metric_key(metric, settings)] = rounded(metric.value)
    metadata[SCHEMA_KEY] = json.dumps({m.name: _schema_entry(m) for m in result.metrics}, sort_keys=True)
    metadata[INVARIANTS_KEY] = json.dumps(
        {inv.name: {"passed": inv.passed, "detail": inv.detail} for inv in result.invariants}, sort_keys=True
    )
    metadata[BASELINE_KEY] = baseline_key(result.comparable_on)
    metadata[SETTINGS_KEY] = settings or "defaults"
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
    for name, raw in metric_values(metadata).items():
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
    """What a skipped area records (on an observation, never a materialization): the reason in words."""
    return {AREA_KEY: area, STATUS_KEY: "skipped", SKIP_REASON_KEY: reason}


def skip_reason_from_metadata(metadata: Mapping[str, Any]) -> str | None:
    """The reason an area was skipped, or None when it measured something.

    Reads a skip observation and also a materialization written before skips stopped materializing (then a
    skip was a materialization with `regress/status: skipped`), so old histories keep their skips.
    """
    if _plain(metadata.get(STATUS_KEY)) != "skipped":
        return None
    return str(_plain(metadata.get(SKIP_REASON_KEY)) or "skipped")
