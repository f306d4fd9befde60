"""Run selected area assets through the `full_regression` job on the DAGSTER_HOME instance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from regression_pipelines.perf_check import PERF_CHECK_NAME
from regression_pipelines.results import Invariant, invariants_from_metadata, metrics_from_metadata
from regression_pipelines.running.summary import AreaOutcome, RunSummary


def destructive_areas(defs: dg.Definitions) -> list[str]:
    """Areas tagged destructive=true: never run unless named explicitly with --areas."""
    return [
        a.key.to_user_string() for a in _area_assets(defs) if a.tags_by_key.get(a.key, {}).get("destructive") == "true"
    ]


def attach_verdicts(defs: dg.Definitions, instance: dg.DagsterInstance, outcomes: list[AreaOutcome]) -> None:
    """The same verdicts the regression sensor gives (one shared function), for each area that materialized."""
    from regression_pipelines.evaluation import evaluate_asset
    from regression_pipelines.perf_check import policies_for

    graph = defs.resolve_asset_graph()
    for outcome in outcomes:
        if not outcome.metrics:
            continue
        evaluation = evaluate_asset(instance, outcome.area, policies=policies_for(graph, outcome.area))
        if evaluation is None:
            continue
        outcome.verdicts = [
            {
                "metric": mv.metric.name,
                "status": "regression" if mv.regressed else mv.verdict.status,
                "verdict": mv.verdict.status,
                "severity": mv.verdict.severity,
                "change_pct": mv.verdict.change_pct,
                "baseline": mv.verdict.baseline,
                "latest": mv.verdict.latest,
                "history_runs": mv.history_n,
                "first_bad_run": mv.first_bad.label if mv.first_bad else None,
                "summary": mv.describe(),
            }
            for mv in evaluation.metrics
        ]


def area_config_fields(defs: dg.Definitions) -> dict[str, list[str]]:
    """Each area asset and the names of its run-config settings (for --set validation)."""
    fields: dict[str, list[str]] = {}
    for assets_def in _area_assets(defs):
        schema = assets_def.op.config_schema
        config_type = schema.config_type if schema is not None else None
        names = list(getattr(config_type, "fields", {}).keys()) if config_type is not None else []
        fields[assets_def.key.to_user_string()] = names
    return fields


def _area_assets(defs: dg.Definitions) -> list[dg.AssetsDefinition]:
    graph = defs.resolve_asset_graph()
    area_keys = dg.AssetSelection.groups("areas").resolve(graph)
    return sorted((graph.get(key).assets_def for key in area_keys), key=lambda a: a.key.to_user_string())


def run_areas(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    areas: list[str],
    run_config: Mapping[str, Any],
    log_level: str = "WARNING",
) -> tuple[dg.ExecuteInProcessResult, list[AreaOutcome]]:
    job = defs.resolve_job_def("full_regression")
    config = {"loggers": {"console": {"config": {"log_level": log_level}}}, **run_config}
    result = job.execute_in_process(
        run_config=config,
        instance=instance,
        asset_selection=[dg.AssetKey.from_user_string(a) for a in areas],
        raise_on_error=False,
        tags={"regress/launched_by": "regress run"},
    )
    return result, _outcomes(result, areas)


def _outcomes(result: dg.ExecuteInProcessResult, areas: list[str]) -> list[AreaOutcome]:
    outcomes = {area: AreaOutcome(area=area) for area in areas}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        outcome = outcomes[materialization.asset_key.to_user_string()]
        outcome.metrics = metrics_from_metadata(materialization.metadata)
        stored = {inv.name: inv for inv in invariants_from_metadata(materialization.metadata)}
        outcome.invariants = list(stored.values())
    for evaluation in result.get_asset_check_evaluations():
        outcome = outcomes.get(evaluation.asset_key.to_user_string())
        if evaluation.check_name == PERF_CHECK_NAME:
            continue  # a verdict, not an invariant: reported with the other verdicts
        if outcome is None or any(i.name == evaluation.check_name for i in outcome.invariants):
            continue
        detail = evaluation.metadata.get("detail")
        outcome.invariants.append(
            Invariant(evaluation.check_name, evaluation.passed, str(getattr(detail, "value", detail or "")))
        )
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            failure = event.step_failure_data
            message = failure.error.message.strip() if failure and failure.error else "step failed"
            for area in areas:
                if event.step_key and event.step_key.endswith(area.replace("/", "__")) and not outcomes[area].metrics:
                    outcomes[area].error = message.splitlines()[0] if message else "step failed"
    return list(outcomes.values())


def summarise(result: dg.ExecuteInProcessResult, outcomes: list[AreaOutcome], dagster_home: str) -> RunSummary:
    success = result.success and all(o.invariants_passed for o in outcomes)
    return RunSummary(run_id=result.run_id, success=success, outcomes=outcomes, dagster_home=dagster_home)
