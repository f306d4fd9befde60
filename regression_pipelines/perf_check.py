"""The `performance_regression` asset check: an `AssetEvaluation` shown on the asset in the Dagster UI.

The area asset yields it right after its materialization is stored (see kit.factory), judged by the same
`evaluate_asset` as the sensor; the sensor records it for materializations that had no in-run check
(runless events, runs that deselected it).
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from regression_pipelines.evaluation import (
    POLICIES_METADATA_KEY,
    AssetEvaluation,
    MetricVerdict,
    evaluate_asset,
    policies_from_metadata,
    policies_to_json,
)

PERF_CHECK_NAME = "performance_regression"
_ERROR_SEVERITIES = {"high", "critical"}
_SEVERITY_ORDER = ("none", "low", "medium", "high", "critical")
_UNJUDGED = ("insufficient_data", "not_judged")


def worst(evaluation: AssetEvaluation) -> MetricVerdict | None:
    """The regression to headline (most severe, then largest change), or None when nothing regressed."""
    regressions = evaluation.regressions
    if not regressions:
        return None
    return max(regressions, key=lambda mv: (_SEVERITY_ORDER.index(mv.verdict.severity), abs(mv.verdict.change_pct)))


def check_severity(evaluation: AssetEvaluation) -> dg.AssetCheckSeverity:
    top = worst(evaluation)
    if top is not None and top.verdict.severity in _ERROR_SEVERITIES:
        return dg.AssetCheckSeverity.ERROR
    return dg.AssetCheckSeverity.WARN


def check_metadata(evaluation: AssetEvaluation) -> dict[str, Any]:
    """Headline figures of the worst regression, and every metric's verdict as JSON."""
    top = worst(evaluation)
    metadata: dict[str, Any] = {
        "regressed_metrics": ", ".join(mv.metric.name for mv in evaluation.regressions) or "none",
        "verdicts": dg.MetadataValue.json(
            {
                mv.metric.name: {
                    "status": mv.verdict.status,
                    "reason": mv.verdict.reason,
                    "kind": mv.metric.kind.value,
                    "samples": mv.metric.samples,
                    "severity": mv.verdict.severity,
                    "latest": mv.verdict.latest,
                    "baseline": mv.verdict.baseline,
                    "baseline_n": mv.verdict.baseline_n,
                    "change_pct": round(mv.verdict.change_pct, 3),
                    "p_value": mv.verdict.p_value,
                    "unit": mv.metric.unit,
                    "first_bad_run": mv.first_bad.label if mv.first_bad else None,
                    "summary": mv.describe(),
                }
                for mv in evaluation.metrics
            }
        ),
    }
    if top is not None:
        v = top.verdict
        metadata.update(
            {
                "metric": top.metric.name,
                "latest": v.latest,
                "change_pct": round(v.change_pct, 3),
                "severity": v.severity,
                "recommendation": v.recommendation,
                "first_bad_run": top.first_bad.label if top.first_bad else "unknown",
            }
        )
        if v.baseline is not None:
            metadata["baseline"] = v.baseline
        if top.first_bad is not None and top.first_bad.run_id:
            metadata["first_bad_run_link"] = dg.MetadataValue.dagster_run(top.first_bad.run_id)
    return metadata


def description(evaluation: AssetEvaluation) -> str:
    if evaluation.regressed:
        return "; ".join(mv.describe() for mv in evaluation.regressions)
    judged = [mv for mv in evaluation.metrics if mv.verdict.status not in _UNJUDGED]
    if not evaluation.metrics:
        return "no metrics recorded"
    if not judged:
        return "no metric could be judged yet (short history, too few samples, or only volume/info metrics)"
    unjudged = len(evaluation.metrics) - len(judged)
    return f"{len(judged)} metric(s) within baseline" + (f", {unjudged} not judged" if unjudged else "")


def to_check_evaluation(evaluation: AssetEvaluation) -> dg.AssetCheckEvaluation:
    """What the sensor reports: the verdict, pinned to the materialization it judged."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,
    )

    ref = evaluation.materialization
    return dg.AssetCheckEvaluation(
        asset_key=evaluation.asset_key,
        check_name=PERF_CHECK_NAME,
        passed=not evaluation.regressed,
        severity=check_severity(evaluation),
        metadata=check_metadata(evaluation),
        description=description(evaluation),
        target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
            storage_id=ref.storage_id, run_id=ref.run_id, timestamp=ref.timestamp
        ),
    )


def policies_for(asset_graph: Any, asset_key: dg.AssetKey | str) -> dict[str, dict[str, Any]]:
    """Policy overrides the area declared on its performance check (empty when it declared none or no check).

    `asset_graph`: `defs.resolve_asset_graph()` or a sensor's `context.repository_def.asset_graph`.
    """
    key = dg.AssetKey.from_user_string(asset_key) if isinstance(asset_key, str) else asset_key
    check_key = dg.AssetCheckKey(key, PERF_CHECK_NAME)
    if check_key not in asset_graph.asset_check_keys:
        return {}
    return policies_from_metadata(asset_graph.get_check_spec(check_key).metadata or {})


def perf_check_spec(
    asset_key: dg.AssetKey, policies: Mapping[str, Mapping[str, Any]] | None = None
) -> dg.AssetCheckSpec:
    """The area's non-blocking `performance_regression` check (a regression is news, not a reason to stop
    downstream reports). `policies`: per metric overrides, e.g. `{"outage_s": {"upper_bound": 30.0}}`; stored
    on the check so the sensor and `regress run` judge with the same ones."""
    declared = dict(policies or {})
    return dg.AssetCheckSpec(
        PERF_CHECK_NAME,
        asset=asset_key,
        blocking=False,
        description="Each metric of the newest materialization vs the baseline learned from its history.",
        metadata={POLICIES_METADATA_KEY: policies_to_json(declared)} if declared else None,
    )


def perf_check_result(
    context: dg.AssetExecutionContext, asset_key: dg.AssetKey, policies: Mapping[str, Mapping[str, Any]]
) -> dg.AssetCheckResult:
    """The verdict on the newest stored materialization (this run's, when it materialized)."""
    evaluation = evaluate_asset(context.instance, asset_key, policies=dict(policies))
    if evaluation is None:
        return dg.AssetCheckResult(
            asset_key=asset_key,
            check_name=PERF_CHECK_NAME,
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            description="no materialization to judge yet",
        )
    name = asset_key.to_user_string()
    if evaluation.materialization.run_id != context.run.run_id:
        context.log.info(f"{name}: judging the newest materialization, from run {evaluation.materialization.label}")
    context.log.info(f"{name}: {description(evaluation)}")
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=PERF_CHECK_NAME,
        passed=not evaluation.regressed,
        severity=check_severity(evaluation),
        metadata=check_metadata(evaluation),
        description=description(evaluation),
    )
