"""The one verdict function: an area asset's materialization judged against its own metric history.

The sensor, the in-run performance check and `regress run` all call `evaluate_asset`, so the daemon, the UI
and a CI job without a daemon give the same answer. History comes from the Dagster instance (the metadata
each area wrote through `results.to_metadata`); the judgement comes from `detection.evaluate_latest`.
Only performance metrics are judged by default: volume counts (reads, writes) and info figures still get a
verdict with status "not_judged" and the reason, so the UI and the CLI show them without alerting.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg

from regression_pipelines.detection import MetricPolicy, Verdict, evaluate_latest
from regression_pipelines.detection.host_context import HostContext, host_context, pair_instrument, ratio_name
from regression_pipelines.results import (
    Invariant,
    Metric,
    MetricKind,
    baseline_key_from_metadata,
    invariants_from_metadata,
    metrics_from_metadata,
)

# A change smaller than this share of the baseline is noise for every area unless a policy says otherwise.
DEFAULT_MIN_CHANGE_PCT = 5.0
# Detection never looks further back than ~120 runs; a little more keeps sparse metrics judgeable.
DEFAULT_HISTORY_LIMIT = 300
# Per-metric policy overrides (min_change_pct, upper_bound, lower_bound, ...) as JSON in check metadata.
# `judge` (true/false) overrides the kind's default: true opts a volume metric in; info is never judged.
# `quantile` names the percentile a metric is when its name does not (p99_ms -> 0.99, max_ms -> 1.0).
POLICIES_METADATA_KEY = "regress/policies"
_DETECTION_FIELDS = ("min_change_pct", "upper_bound", "lower_bound", "min_segment", "accept_after_runs", "quantile")
_POLICY_FIELDS = (*_DETECTION_FIELDS, "judge")
_QUANTILE_IN_NAME = re.compile(r"(?:^|[._])(?:p(\d+(?:\.\d+)?)|(max))(?:[._]|$)")

PolicyOverrides = Mapping[str, MetricPolicy | Mapping[str, Any]]


@dataclass(frozen=True)
class RunRef:
    """One materialization in the history: which event, which run (empty for runless events), when."""

    storage_id: int
    run_id: str
    timestamp: float

    @property
    def label(self) -> str:
        return self.run_id or f"event {self.storage_id} (no run)"


@dataclass(frozen=True)
class MetricVerdict:
    metric: Metric
    verdict: Verdict
    history_n: int
    first_bad: RunRef | None
    host: HostContext | None = None  # for a change (regression, breach, improvement): server/host or client path

    @property
    def regressed(self) -> bool:
        return self.verdict.is_alert

    def describe(self) -> str:
        """One line a person can act on: what, how much, since when."""
        v, m = self.verdict, self.metric
        unit = f" {m.unit}" if m.unit else ""
        if v.status == "insufficient_data":
            return f"{m.name}: {v.latest:g}{unit}, not judged yet ({v.reason})"
        if v.status == "not_judged":
            versus = f", {v.change_pct:+.1f} % vs baseline {v.baseline:g}{unit}" if v.baseline is not None else ""
            return f"{m.name}: {v.latest:g}{unit}, not judged ({v.reason}){versus}"
        baseline = f"{v.baseline:g}{unit}" if v.baseline is not None else "its bound"
        text = f"{m.name}: {v.status.replace('_', ' ').upper()} {v.latest:g}{unit} vs baseline {baseline}"
        text += f" ({v.change_pct:+.1f} %, {v.severity})"
        if self.first_bad is not None and v.status != "ok":
            text += f", first bad run {self.first_bad.label}"
        if self.host is not None:
            text += f"; {self.host.describe()}"
        return text


@dataclass(frozen=True)
class AssetEvaluation:
    """Verdicts for every metric of one materialization, plus the invariants it recorded."""

    asset_key: dg.AssetKey
    materialization: RunRef
    metrics: tuple[MetricVerdict, ...]
    invariants: tuple[Invariant, ...]

    @property
    def regressions(self) -> list[MetricVerdict]:
        return [mv for mv in self.metrics if mv.regressed]

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    @property
    def failed_invariants(self) -> list[Invariant]:
        return [inv for inv in self.invariants if not inv.passed]


def policy_for(metric: Metric, override: MetricPolicy | Mapping[str, Any] | None = None) -> MetricPolicy:
    """The metric's own direction plus the area's overrides (a full MetricPolicy is taken as is)."""
    if isinstance(override, MetricPolicy):
        return override
    fields = {"min_change_pct": DEFAULT_MIN_CHANGE_PCT, "quantile": quantile_from_name(metric.name), **(override or {})}
    _check_fields(metric.name, fields)
    return MetricPolicy(direction=metric.direction, **{k: v for k, v in fields.items() if k in _DETECTION_FIELDS})


def quantile_from_name(name: str) -> float | None:
    """The quantile a metric name announces: p99 -> 0.99, p99.9 -> 0.999, max -> 1.0; None for other names."""
    found = _QUANTILE_IN_NAME.search(name)
    if found is None:
        return None
    quantile = 1.0 if found.group(2) else float(found.group(1)) / 100.0
    return quantile if quantile <= 1.0 else None  # p999-style names are ambiguous: say so in the policy


def not_judged_reason(metric: Metric, override: MetricPolicy | Mapping[str, Any] | None = None) -> str:
    """Why a metric is recorded but not judged, or "" when it is judged (performance, or opted in)."""
    judge = None if isinstance(override, MetricPolicy) else (override or {}).get("judge")
    if metric.kind is MetricKind.INFO:
        return "info metric"
    if judge is False:
        return "judge: false in its policy"
    if metric.kind is MetricKind.VOLUME and judge is not True:
        return "volume metric"
    return ""


def _check_fields(name: str, fields: Mapping[str, Any]) -> None:
    unknown = sorted(set(fields) - set(_POLICY_FIELDS))
    if unknown:
        raise ValueError(f"policy for {name}: unknown field(s) {unknown}; allowed: {list(_POLICY_FIELDS)}")
    if not isinstance(fields.get("judge", False), bool):
        raise ValueError(f"policy for {name}: judge must be true or false, got {fields['judge']!r}")


def policies_to_json(policies: Mapping[str, Mapping[str, Any]]) -> str:
    for name, fields in policies.items():
        _check_fields(name, fields)
    return json.dumps({name: dict(fields) for name, fields in policies.items()}, sort_keys=True)


def policies_from_metadata(metadata: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    raw = metadata.get(POLICIES_METADATA_KEY)
    raw = getattr(raw, "value", raw)
    return json.loads(raw) if raw else {}


def _history(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, storage_id: int | None, limit: int
) -> list[tuple[RunRef, list[Metric], list[Invariant], str]]:
    records_filter = dg.AssetRecordsFilter(
        asset_key=asset_key, before_storage_id=storage_id + 1 if storage_id is not None else None
    )
    records = instance.fetch_materializations(records_filter, limit=limit, ascending=False).records
    history = []
    for record in reversed(records):
        materialization = record.asset_materialization
        if materialization is None:
            continue
        metadata = materialization.metadata
        ref = RunRef(record.storage_id, record.run_id, record.timestamp)
        history.append(
            (
                ref,
                metrics_from_metadata(metadata),
                invariants_from_metadata(metadata),
                baseline_key_from_metadata(metadata),
            )
        )
    return history


def _not_judged(verdict: Verdict, reason: str) -> Verdict:
    """Keep the figures people read (latest, baseline, change), drop everything that would alert."""
    hint = "; judge: true in its policy opts it in" if reason == "volume metric" else ""
    return dataclasses.replace(
        verdict,
        status="not_judged",
        severity="none",
        p_value=None,
        first_bad_index=None,
        outlier=False,
        reason=reason,
        recommendation=f"Recorded and plotted, not judged ({reason}{hint}).",
    )


def evaluate_asset(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey | str,
    *,
    storage_id: int | None = None,
    policies: PolicyOverrides | None = None,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
) -> AssetEvaluation | None:
    """Judge the newest materialization of `asset_key` (or the one with `storage_id`) against the ones
    before it. None when there is no such materialization. `policies` overrides the default per metric name
    (see `perf_check.policies_for` for the ones an area declared on its performance check).
    """
    key = dg.AssetKey.from_user_string(asset_key) if isinstance(asset_key, str) else asset_key
    history = _history(instance, key, storage_id, history_limit)
    if not history or (storage_id is not None and history[-1][0].storage_id != storage_id):
        return None
    latest_ref, latest_metrics, latest_invariants, latest_baseline = history[-1]
    comparable = [h for h in history if h[3] == latest_baseline]  # never mix e.g. faulted and clean runs
    by_run = {ref.storage_id: {m.name: m.value for m in metrics} for ref, metrics, _, _ in comparable}
    verdicts = []
    for metric in latest_metrics:
        if math.isnan(metric.value):
            continue  # nothing was measured (e.g. no cache misses): no verdict rather than a fake one
        points = [
            (ref, m.value, m.samples)
            for ref, metrics, _, _ in comparable
            for m in metrics
            if m.name == metric.name and not math.isnan(m.value)
        ]
        override = (policies or {}).get(metric.name)
        policy = policy_for(metric, override)
        verdict = evaluate_latest([p[1] for p in points], policy, samples=[p[2] for p in points])
        reason = not_judged_reason(metric, override)
        if reason:
            verdict = _not_judged(verdict, reason)
        first_bad = points[verdict.first_bad_index][0] if verdict.first_bad_index is not None else None
        host = _host_context(metric, verdict, [p[0] for p in points], by_run) if verdict.status in CHANGES else None
        verdicts.append(MetricVerdict(metric, verdict, len(points), first_bad, host))
    return AssetEvaluation(key, latest_ref, tuple(verdicts), tuple(latest_invariants))


CHANGES = ("regression", "slo_breach", "improvement")
INSTRUMENT = re.compile(r"^calibration\.(?P<name>.+)_p50_ms$")


def _host_context(
    metric: Metric, verdict: Verdict, runs: list[RunRef], by_run: Mapping[int, Mapping[str, float]]
) -> HostContext:
    """What the host and the field's instruments did over the same runs as the metric (see detection.host_context)."""

    def series(name: str) -> list[float | None]:
        return [by_run[ref.storage_id].get(name) for ref in runs]

    names = {name for ref in runs for name in by_run[ref.storage_id]}
    instruments = {
        m["name"]: series(name) for name in sorted(names) if (m := INSTRUMENT.match(name)) and name != metric.name
    }  # an instrument's own verdict is judged against the host and the other instruments
    values = series(metric.name)
    paired = pair_instrument(values, series(ratio_name(metric.name)), instruments)
    return host_context(
        values, metric.direction, verdict.first_bad_index, instruments, paired,
        load=series("host.load1"), steal=series("host.cpu_steal_pct"),
        is_instrument=bool(INSTRUMENT.match(metric.name)),
    )  # fmt: skip
