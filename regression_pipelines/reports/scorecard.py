"""`regression_scorecard`: every discovered area judged from the Dagster instance, and the warehouse synced.

Downstream of every area asset (built from the discovered list, no central one), so the lineage reads
areas -> scorecard -> report and exports. Per area it reads the newest materialization, the check results
recorded for it, and the verdict of `evaluation.evaluate_asset` (the function the sensor and the in-run
performance check use); a failed run after the newest materialization makes the area `error` (its figures
would be stale). Only performance metrics can be regressions. No `from __future__ import annotations`:
Dagster inspects the context and config annotations.
"""

import inspect
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import duckdb
from pydantic import Field

from regression_pipelines.errors import mask_secrets
from regression_pipelines.evaluation import evaluate_asset
from regression_pipelines.kit import Area
from regression_pipelines.kit.supervisor import RUN_COMPLETED
from regression_pipelines.reports import tables
from regression_pipelines.reports.health import area_status, health_score
from regression_pipelines.reports.history import COMPLETED, newest_materialization, newest_skip, read_area, utc
from regression_pipelines.reports.markdown import scorecard_markdown
from regression_pipelines.reports.model import AreaCard, RegressedMetric, Scorecard
from regression_pipelines.reports.names import REPORT_GROUP, SCORECARD, WAREHOUSE
from regression_pipelines.reports.window import parse_since, window_start
from regression_pipelines.results import (
    MetricKind,
    Verdict,
    invariants_from_metadata,
    overall_verdict,
    skip_reason_from_metadata,
)

SCORECARD_METADATA_KEY = "scorecard_json"
VERDICT_TAG = "regress/verdict"
FAILED_RUNS_LOOKED_AT = 20


class ScorecardConfig(dg.Config):
    since: str = Field(default="7d", description="Window for runs counted and flakiness: 90m, 24h, 7d, 2w or all")
    rebuild_warehouse: bool = Field(default=False, description="Drop the warehouse and copy everything again")


def checked_since(since: str) -> str:
    """A bad window fails the step with one line naming the field, before any work."""
    try:
        parse_since(since)
    except ValueError as exc:
        raise dg.Failure(description=str(exc)) from None
    return since


def sync_warehouse(
    instance: dg.DagsterInstance, areas: Sequence[Area], conn: duckdb.DuckDBPyConnection, rebuild: bool = False
) -> dict[str, int]:
    """Copy what the instance has and the warehouse lacks; rows added per table."""
    tables.ensure_schema(conn, rebuild=rebuild)
    known = tables.synced_check_ids(conn)
    added = dict.fromkeys(tables.TABLES, 0)
    for area in areas:
        batch = read_area(instance, area, tables.last_storage_id(conn, area.name), known)
        for table, n in tables.insert(conn, batch).items():
            added[table] += n
    return added


def failed_attempt(instance: dg.DagsterInstance, area: str, after: float | None) -> tuple[str, str] | None:
    """(run id, first line of the error) of the newest failed run, after `after`, whose step for the area failed."""
    filters = dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.FAILURE], created_after=utc(after) if after is not None else None
    )
    for record in instance.get_run_records(filters, limit=FAILED_RUNS_LOOKED_AT):
        run_id = record.dagster_run.run_id
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
            if entry.step_key != area:
                continue
            data = entry.dagster_event.step_failure_data if entry.dagster_event else None
            message = data.error.message.strip() if data and data.error else "step failed"
            return run_id, mask_secrets(message.splitlines()[0] if message else "step failed")
    return None


def newest_invariants(
    instance: dg.DagsterInstance, area: Area, record: dg.EventLogRecord
) -> dict[str, tuple[bool, str]]:
    """name -> (passed, detail) for the newest materialization: its recorded check results first, then the
    invariants its metadata carries (e.g. when a run deselected a check)."""
    found: dict[str, tuple[bool, str]] = {}
    for check in area.checks:
        key = dg.AssetKey(area.check_asset(check))
        on_stage = key != dg.AssetKey(area.name)  # it judged the stage's materialization of the same run
        history = instance.event_log_storage.get_asset_check_execution_history(dg.AssetCheckKey(key, check), limit=5)
        for execution in history:
            evaluation = execution.evaluation if execution.status in COMPLETED else None
            if evaluation is None:
                continue
            target = evaluation.target_materialization_data
            if (not on_stage and (target.storage_id if target else None) == record.storage_id) or (
                (target is None or on_stage) and execution.run_id and execution.run_id == record.run_id
            ):
                detail = evaluation.metadata.get("detail")
                found[check] = (
                    evaluation.passed,
                    str(getattr(detail, "value", detail) or evaluation.description or ""),
                )
                break
    metadata = record.asset_materialization.metadata if record.asset_materialization else {}
    for invariant in invariants_from_metadata(metadata):
        found.setdefault(invariant.name, (invariant.passed, invariant.detail))
    return found


def crash_cause(invariants: dict[str, tuple[bool, str]]) -> str:
    """The phase and root cause when the newest run crashed (its run_completed invariant failed), else ''."""
    passed, detail = invariants.get(RUN_COMPLETED, (True, ""))
    return "" if passed else detail


def _regressions(instance: dg.DagsterInstance, area: Area) -> list[RegressedMetric]:
    evaluation = evaluate_asset(instance, area.name, policies=dict(area.policies))
    if evaluation is None:
        return []
    regressed = []
    for mv in evaluation.regressions:
        if mv.metric.kind is not MetricKind.PERFORMANCE:
            continue  # volume and info metrics are shown, never judged
        v, bad = mv.verdict, mv.first_bad
        regressed.append(
            RegressedMetric(
                metric=mv.metric.name,
                unit=mv.metric.unit,
                verdict=v.status,
                severity=v.severity,
                change_pct=round(v.change_pct, 3),
                latest=v.latest,
                baseline=v.baseline,
                first_bad_run=bad.run_id if bad else "",
                first_bad_storage_id=bad.storage_id if bad else None,
                first_bad_at=bad.timestamp if bad else None,
                summary=mv.describe(),
            )
        )
    return regressed


def area_card(instance: dg.DagsterInstance, area: Area, conn: duckdb.DuckDBPyConnection, since: datetime) -> AreaCard:
    key = dg.AssetKey(area.name)
    record = newest_materialization(instance, key)
    skip_record = newest_skip(instance, key)
    if skip_record is not None and record is not None and record.storage_id > skip_record.storage_id:
        skip_record = None  # measured since it was last skipped
    metadata = record.asset_materialization.metadata if record and record.asset_materialization else {}
    skip = skip_reason_from_metadata(skip_record.event_log_entry.asset_observation.metadata) if skip_record else None
    skip = skip or (skip_reason_from_metadata(metadata) if record else None)  # a skip stored before 2026-12
    newest = skip_record or record
    failure = failed_attempt(instance, area.name, newest.timestamp if newest else None)
    invariants = newest_invariants(instance, area, record) if record and not skip else {}
    failed = {name: detail for name, (passed, detail) in sorted(invariants.items()) if not passed}
    regressions = _regressions(instance, area) if record and not skip else []
    runs, share = tables.window_failure_share(conn, area.name, since, record.storage_id) if record else (0, 0.0)
    status = area_status(
        materialized=newest is not None,
        errored=failure is not None,
        skipped=skip is not None,
        failed=len(failed),
        regressed=len(regressions),
    )
    return AreaCard(
        area=area.name,
        status=status,
        health=health_score(status, len(failed), [r.severity for r in regressions], share),
        run_id=newest.run_id if newest else "",
        at=newest.timestamp if newest else None,
        regressions=tuple(regressions),
        failed_invariants=failed,
        skip_reason=skip or "",
        error=failure[1] if failure else "",
        error_run_id=failure[0] if failure else "",
        runs_in_window=runs,
        earlier_failure_share=round(share, 4),
        cause=crash_cause(invariants),
    )


def build_scorecard(
    instance: dg.DagsterInstance, areas: Sequence[Area], conn: duckdb.DuckDBPyConnection, since: str
) -> Scorecard:
    now = datetime.now(UTC)
    start = window_start(since, now)
    cards = tuple(area_card(instance, area, conn, start) for area in areas)
    return Scorecard(generated_at=now.timestamp(), since=start.timestamp(), cards=cards)


def latest_scorecard(instance: dg.DagsterInstance) -> Scorecard | None:
    """The scorecard of the newest `regression_scorecard` materialization (what the report shows)."""
    records = instance.fetch_materializations(dg.AssetKey(SCORECARD), limit=1).records
    if not records or records[0].asset_materialization is None:
        return None
    raw = records[0].asset_materialization.metadata.get(SCORECARD_METADATA_KEY)
    return Scorecard.from_json(getattr(raw, "value", raw)) if raw is not None else None


def _metadata(scorecard: Scorecard, added: dict[str, int], path: str, seconds: float) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "scorecard": dg.MetadataValue.md(scorecard_markdown(scorecard)),
        SCORECARD_METADATA_KEY: dg.MetadataValue.json(scorecard.to_json()),
        "warehouse": dg.MetadataValue.path(path),
        "warehouse_rows_added": dg.MetadataValue.json(added),
        "seconds": round(seconds, 3),
    }
    for status in ("passed", "failed", "regressed", "skipped", "error", "not_run"):
        metadata[f"areas_{status}"] = sum(1 for c in scorecard.cards if c.status.value == status)
    for card in scorecard.cards:
        if card.health is not None:
            metadata[f"health/{card.area}"] = card.health  # numeric: the UI plots each area's health over time
    return metadata


SCORECARD_OP = "judge_areas"  # the op of the graph-backed scorecard (step key regression_scorecard.judge_areas)


def scorecard_asset(areas: Sequence[Area]) -> dg.AssetsDefinition:
    """The scorecard of exactly these areas (the discovered ones in the code location).

    Graph-backed, for one reason: its op takes every area as ONE fan-in input, and Dagster skips a step only
    when all sources of a fan-in input produced nothing. A skipped area materializes nothing (kit/factory.py);
    with one input per area (a plain `@asset(deps=...)`), one skipped area would skip the scorecard, report and
    exports of the whole run. Run config keeps the plain asset's shape through the config mapping:
    `ops: {regression_scorecard: {config: {since: 24h}}}`.
    """
    area_list = list(areas)

    @dg.op(
        name=SCORECARD_OP,
        ins={"areas": dg.In(dg.Nothing)},
        out=dg.Out(dg.Nothing),
        required_resource_keys={WAREHOUSE},
        description="Judges every area from the instance and syncs the warehouse.",
    )
    def judge_areas(context: dg.OpExecutionContext, config: ScorecardConfig) -> Iterator[dg.Output]:
        checked_since(config.since)
        started = time.perf_counter()
        warehouse = getattr(context.resources, WAREHOUSE)
        with warehouse.connect() as conn:
            added = sync_warehouse(context.instance, area_list, conn, rebuild=config.rebuild_warehouse)
            scorecard = build_scorecard(context.instance, area_list, conn, config.since)
        for card in scorecard.cards:
            context.log.info(f"{card.area}: {card.status.value}, health {card.health}")
        tag_run_verdict(context, scorecard)
        metadata = _metadata(scorecard, added, warehouse.path, time.perf_counter() - started)
        yield dg.Output(None, metadata=metadata)

    ins = {_input_name(a.name): dg.AssetIn(key=dg.AssetKey(a.name), dagster_type=dg.Nothing) for a in area_list}

    def compose(**upstream: Any) -> Any:
        return judge_areas(areas=list(upstream.values())) if upstream else judge_areas()

    # Dagster maps `ins` to the compose function's named parameters: give it one per area.
    compose.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in ins]
    )
    return dg.graph_asset(
        compose,
        name=SCORECARD,
        ins=ins,
        config=dg.ConfigMapping(
            config_fn=lambda config: {SCORECARD_OP: {"config": dict(config)}},
            config_schema=ScorecardConfig.to_fields_dict(),
        ),
        group_name=REPORT_GROUP,
        kinds={"duckdb"},
        description="Every area's verdict, regressions (change, first bad run) and 0-100 health, from the "
        "Dagster instance; also copies runs, metrics, invariants and verdicts into the DuckDB warehouse.",
    )


def _input_name(area: str) -> str:
    return f"area_{area}"


def tag_run_verdict(context: dg.OpExecutionContext, scorecard: Scorecard) -> None:
    """Tag the run with the verdict of the areas it ran (`regress/verdict`), so the Runs page shows the verdict
    next to the run's own status (Success means Dagster finished the run, not that every invariant held)."""
    ran = {card.area: card.status for card in scorecard.cards if card.run_id == context.run_id}
    if not ran:
        return
    verdict = overall_verdict([Verdict(status.value) for status in ran.values()])
    context.instance.add_run_tags(context.run_id, {VERDICT_TAG: verdict.value})
