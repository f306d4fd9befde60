"""Run selected area assets, then the scorecard, report and exports, through Dagster on the DAGSTER_HOME instance.

The job is the one a person would launch for the same areas: `full_regression` when none is destructive,
`destructive_regression` when all are, else Dagster's implicit asset job (what the UI's "Materialize
selected" uses), so the run shows up in the UI under a job that holds its areas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from regression_pipelines.jobs import DESTRUCTIVE_JOB, FULL_JOB
from regression_pipelines.kit.declaration import STAGE_TAG
from regression_pipelines.perf_check import PERF_CHECK_NAME
from regression_pipelines.reports.launch import REPORTING_KEYS, ReportOutputs, materialize_reports, report_outputs
from regression_pipelines.results import (
    Invariant,
    invariants_from_metadata,
    metrics_from_metadata,
    skip_reason_from_metadata,
)
from regression_pipelines.running.summary import AreaOutcome, RunSummary


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
        outcome.vs_baseline = [
            {
                "metric": mv.metric.name,
                "status": "regression" if mv.regressed else mv.verdict.status,
                "verdict": mv.verdict.status,
                "reason": mv.verdict.reason,
                "kind": mv.metric.kind.value,
                "severity": mv.verdict.severity,
                "change_pct": mv.verdict.change_pct,
                "baseline": mv.verdict.baseline,
                "latest": mv.verdict.latest,
                "history_runs": mv.history_n,
                "first_bad_run": mv.first_bad.label if mv.first_bad else None,
                "summary": mv.describe(),
                "host_context": mv.host.as_dict() if mv.host else None,
            }
            for mv in evaluation.metrics
        ]


def run_areas(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    areas: list[str],
    run_config: Mapping[str, Any],
    log_level: str = "WARNING",
    destructive: Sequence[str] = (),
    tags: Mapping[str, str] | None = None,
) -> tuple[dg.ExecuteInProcessResult, list[AreaOutcome]]:
    job = job_for(defs, areas, destructive)
    config = {"loggers": {"console": {"config": {"log_level": log_level}}}, **run_config}
    stages = stage_owners(defs.resolve_asset_graph())
    area_keys = [dg.AssetKey.from_user_string(a) for a in areas]
    result = job.execute_in_process(
        run_config=config,
        instance=instance,
        asset_selection=[*area_keys, *(key for key, area in stages.items() if area in areas), *REPORTING_KEYS],
        raise_on_error=False,
        tags={"regress/launched_by": "regress run", **(tags or {})},
    )
    return result, _outcomes(result, areas, stages)


def job_for(defs: dg.Definitions, areas: Sequence[str], destructive: Sequence[str]) -> dg.JobDefinition:
    """The job that holds exactly these kinds of areas (see the module docstring)."""
    named = set(areas) & set(destructive)
    if not named:
        return defs.resolve_job_def(FULL_JOB)
    if named == set(areas):
        return defs.resolve_job_def(DESTRUCTIVE_JOB)
    return defs.resolve_implicit_global_asset_job_def()


def stage_owners(graph: Any) -> dict[dg.AssetKey, str]:
    """Each stage asset (kit.Stage) and the area it belongs to, read from the tag the kit puts on it."""
    owners = {}
    for key in graph.get_all_asset_keys():
        area = graph.get(key).tags.get(STAGE_TAG)
        if area:
            owners[key] = area
    return owners


def _outcomes(
    result: dg.ExecuteInProcessResult, areas: list[str], stages: Mapping[dg.AssetKey, str]
) -> list[AreaOutcome]:
    """Per area: its figures and invariants, the checks on its stages' assets included."""
    outcomes = {area: AreaOutcome(area=area) for area in areas}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        outcome = outcomes.get(materialization.asset_key.to_user_string())
        if outcome is None:
            continue  # a stage (its figures are not the area's), the scorecard, report or exports
        outcome.skipped = skip_reason_from_metadata(materialization.metadata) or ""  # a skip stored before 2026-12
        outcome.metrics = metrics_from_metadata(materialization.metadata)
        stored = {inv.name: inv for inv in invariants_from_metadata(materialization.metadata)}
        outcome.invariants = list(stored.values())
    for event in result.get_asset_observation_events():
        observation = event.asset_observation_data.asset_observation
        outcome = outcomes.get(observation.asset_key.to_user_string())
        reason = skip_reason_from_metadata(observation.metadata)
        if outcome is not None and reason:
            outcome.skipped = reason
    for evaluation in result.get_asset_check_evaluations():
        outcome = outcomes.get(stages.get(evaluation.asset_key) or evaluation.asset_key.to_user_string())
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
            message = root_cause_text(failure.error) if failure and failure.error else "step failed"
            for area in areas:
                if event.step_key and event.step_key.endswith(area.replace("/", "__")) and not outcomes[area].metrics:
                    outcomes[area].error = message
    return list(outcomes.values())


def root_cause_text(error: Any) -> str:
    """The innermost error of a Dagster error chain (`cause`, then `context`), never the step wrapper alone.

    `DagsterExecutionStepExecutionError: Error occurred while executing op "x"` says nothing; what it wraps does.
    """
    chain = [error]
    while len(chain) < 20:
        nxt = getattr(chain[-1], "cause", None) or getattr(chain[-1], "context", None)
        if nxt is None:
            break
        chain.append(nxt)
    innermost = chain[-1]
    text = (innermost.message or "").strip().splitlines()
    first = text[0] if text else (innermost.cls_name or "step failed")
    if len(chain) > 1 and chain[0].cls_name and chain[0].cls_name != innermost.cls_name:
        first += f" (raised as {chain[0].cls_name})"
    return first


def current_report(
    defs: dg.Definitions, instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult, log_level: str = "WARNING"
) -> ReportOutputs | None:
    """The report this run wrote; when an area's failure made Dagster skip the reporting steps, they run on
    their own right after, so the report always includes this run."""
    outputs = report_outputs(result)
    if outputs is None:
        report_run = materialize_reports(defs, instance, log_level=log_level, tags={"regress/after_run": result.run_id})
        outputs = report_outputs(report_run)
    return outputs


def summarise(
    instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult, outcomes: list[AreaOutcome], dagster_home: str
) -> RunSummary:
    """The run's status as Dagster stored it (the word the UI shows) and the areas' outcomes."""
    run = instance.get_run_by_id(result.run_id)
    status = run.status.value if run is not None else ("SUCCESS" if result.success else "FAILURE")
    return RunSummary(
        run_id=result.run_id, run_status=status, outcomes=outcomes, dagster_home=dagster_home, job=result.job_def.name
    )
