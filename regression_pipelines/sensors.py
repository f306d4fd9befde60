"""Sensors that turn what the areas recorded into verdicts on the asset and alerts for people.

`regression_sensor` keeps one cursor per area asset (the last materialization storage id it handled), so a
restarted daemon resumes where it stopped; alert firing is idempotent, so a tick that dies half-way and is
repeated does not page twice. Failed invariants alert too: a failed check does not fail a Dagster run, so
nothing else would tell anyone. Failed runs alert through the run-failure sensor.
"""

import dataclasses
import json

import dagster as dg

from regression_pipelines.alerts.dispatch import AlertDispatcher
from regression_pipelines.alerts.rules import (
    invariant_alert,
    invariant_labels,
    metric_labels,
    regression_alert,
    run_failure_alert,
    run_labels,
)
from regression_pipelines.errors import mask_secrets
from regression_pipelines.evaluation import AssetEvaluation, evaluate_asset
from regression_pipelines.kit.declaration import STAGE_TAG
from regression_pipelines.matrix.run import MATRIX_TAG
from regression_pipelines.perf_check import PERF_CHECK_NAME, policies_for, to_check_evaluation
from regression_pipelines.results import Invariant
from resources.alerting import AlertingResource

ALERTING_RESOURCE_KEY = "alerting"
AREA_GROUP = "areas"
MAX_EVENTS_PER_ASSET_PER_TICK = 50  # keeps a tick well inside the sensor timeout after a long outage
_CURSOR_VERSION = 1


def load_cursor(raw: str | None) -> dict[str, int]:
    """Per-asset last handled storage id; an unreadable cursor starts fresh (newest event only)."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
        return {str(k): int(v) for k, v in data.get("assets", {}).items()}
    except (ValueError, AttributeError, TypeError):
        return {}


def dump_cursor(cursor: dict[str, int]) -> str:
    return json.dumps({"v": _CURSOR_VERSION, "assets": cursor}, sort_keys=True)


def _area_keys(context: dg.SensorEvaluationContext) -> list[dg.AssetKey]:
    """Every asset in the areas group, external ones too (results may be reported from outside Dagster), but
    not an area's stages: the area carries the figures and every invariant."""
    graph = context.repository_def.asset_graph
    keys = [
        key
        for key in graph.get_all_asset_keys()
        if graph.get(key).group_name == AREA_GROUP and STAGE_TAG not in graph.get(key).tags
    ]
    return sorted(keys, key=lambda k: k.to_user_string())


def _new_materializations(instance: dg.DagsterInstance, key: dg.AssetKey, after: int | None) -> list[dg.EventLogRecord]:
    """Materializations after the cursor, oldest first; on first sight of an asset only its newest one
    (a sensor switched on late must not replay months of history as fresh alerts)."""
    if after is None:
        return list(instance.fetch_materializations(key, limit=1, ascending=False).records)
    records_filter = dg.AssetRecordsFilter(asset_key=key, after_storage_id=after)
    return list(
        instance.fetch_materializations(records_filter, limit=MAX_EVENTS_PER_ASSET_PER_TICK, ascending=True).records
    )


def _checked_in_run(instance: dg.DagsterInstance, key: dg.AssetKey, run_id: str) -> bool:
    """True when the run that materialized also ran the performance check (it records its own verdict)."""
    if not run_id:
        return False
    check_key = dg.AssetCheckKey(key, PERF_CHECK_NAME)
    history = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=50)
    return any(record.run_id == run_id for record in history)


def _failed_checks_not_in_metadata(instance: dg.DagsterInstance, evaluation: AssetEvaluation) -> list[Invariant]:
    """Failed checks of the materializing run that the metadata does not carry (e.g. an invariant the scenario
    never evaluated), so they alert like any other broken invariant."""
    run_id = evaluation.materialization.run_id
    if not run_id:
        return []
    known = {inv.name for inv in evaluation.invariants} | {PERF_CHECK_NAME}
    failed = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        check = entry.dagster_event.event_specific_data if entry.dagster_event else None
        if not isinstance(check, dg.AssetCheckEvaluation) or check.asset_key != evaluation.asset_key:
            continue
        if check.passed or check.check_name in known:
            continue
        detail = check.metadata.get("detail")
        text = str(getattr(detail, "value", detail) or check.description or "check failed")
        failed.append(Invariant(check.check_name, False, text))
    return failed


def _from_matrix(instance: dg.DagsterInstance, run_id: str) -> bool:
    """A run `regress matrix` recorded for one version: the matrix's grid and exit code are its verdict. Its
    failed checks (an old release's known bug, on purpose) and figures (its own baseline) never alert."""
    run = instance.get_run_by_id(run_id) if run_id else None
    return run is not None and MATRIX_TAG in run.tags


def apply_alerts(dispatcher: AlertDispatcher, evaluation: AssetEvaluation, alerting: AlertingResource) -> None:
    """Fire what regressed or broke, resolve what is back within baseline or passing again.

    A metric that is not judged (volume/info) resolves too: it retires an alert raised before the metric had
    a kind, and is a no-op otherwise. Too short a history or too few samples leave the alert state alone.
    """
    area = evaluation.asset_key.to_user_string()
    ref = evaluation.materialization
    seq = ref.storage_id
    url = alerting.run_url(ref.run_id) if ref.run_id else alerting.asset_url(evaluation.asset_key)
    for mv in evaluation.metrics:
        if mv.regressed:
            dispatcher.fire(regression_alert(evaluation, mv, url), seq=seq)
        elif mv.verdict.status in ("ok", "improvement", "not_judged"):
            dispatcher.resolve(metric_labels(area, mv.metric.name), seq=seq)
    for invariant in evaluation.invariants:
        if invariant.passed:
            dispatcher.resolve(invariant_labels(area, invariant.name), seq=seq)
        else:
            dispatcher.fire(invariant_alert(evaluation, invariant, url), seq=seq)


@dg.sensor(
    name="regression_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Judges each new area materialization against its history; records the performance_regression "
    "check and sends firing/resolved alerts (retrying sinks that are down).",
)
def regression_sensor(context: dg.SensorEvaluationContext, alerting: AlertingResource) -> dg.SensorResult:
    instance = context.instance
    dispatcher = alerting.dispatcher(log=context.log)
    cursor = load_cursor(context.cursor)
    judged: list[str] = []
    for key in _area_keys(context):
        name = key.to_user_string()
        policies = policies_for(context.repository_def.asset_graph, key)
        for record in _new_materializations(instance, key, cursor.get(name)):
            if _from_matrix(instance, record.run_id):
                cursor[name] = record.storage_id
                continue
            try:
                evaluation = evaluate_asset(instance, key, storage_id=record.storage_id, policies=policies)
            except ValueError as exc:  # bad stored data: say so and move on, retrying cannot fix it
                context.log.error(f"{name}: cannot judge materialization {record.storage_id}: {exc}")
                evaluation = None
            if evaluation is not None:
                extra = _failed_checks_not_in_metadata(instance, evaluation)
                evaluation = dataclasses.replace(evaluation, invariants=evaluation.invariants + tuple(extra))
                if not _checked_in_run(instance, key, record.run_id):
                    instance.report_runless_asset_event(to_check_evaluation(evaluation))
                apply_alerts(dispatcher, evaluation, alerting)
                regressed = ",".join(mv.metric.name for mv in evaluation.regressions)
                judged.append(f"{name}@{record.storage_id}" + (f" regressed: {regressed}" if regressed else ""))
            cursor[name] = record.storage_id
    dispatcher.refresh()
    report = dispatcher.flush()
    summary = f"judged {len(judged)} materialization(s)" + (f" ({'; '.join(judged)})" if judged else "")
    summary += f"; alerts sent {report.sent}, pending {report.pending}"
    if judged:
        context.log.info(summary)
    return dg.SensorResult(skip_reason=summary, cursor=dump_cursor(cursor))


@dg.run_failure_sensor(
    name="regression_run_failure_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts when a run of this code location fails (an area that crashed measured nothing).",
)
def regression_run_failure_sensor(context: dg.RunFailureSensorContext, alerting: AlertingResource) -> None:
    run = context.dagster_run
    if MATRIX_TAG in run.tags:
        return  # a matrix variant's run: `regress matrix` reports it (see _from_matrix)
    message = context.failure_event.message or "run failed"
    dispatcher = alerting.dispatcher(log=context.log)
    dispatcher.fire(run_failure_alert(run.job_name, run.run_id, mask_secrets(message), alerting.run_url(run.run_id)))
    dispatcher.flush()


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="regression_run_success_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Resolves a failed-run alert once the same job succeeds again; also retries pending alerts.",
)
def regression_run_success_sensor(context: dg.RunStatusSensorContext, alerting: AlertingResource) -> None:
    dispatcher = alerting.dispatcher(log=context.log)
    if MATRIX_TAG not in context.dagster_run.tags:  # a matrix variant's run says nothing about the job's health
        dispatcher.resolve(run_labels(context.dagster_run.job_name))
    dispatcher.flush()


SENSORS = [regression_sensor, regression_run_failure_sensor, regression_run_success_sensor]
