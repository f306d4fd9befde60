"""Read what the Dagster instance holds about an area into warehouse rows: the instance is the source of truth.

Materializations are append-only, so they are read after the newest one already copied. Check executions
are read newest first, page by page, until a page reaches one already copied (a check that completes after
newer ones were copied is picked up as long as it is on that page; `--rebuild-warehouse` copies everything).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

from regression_pipelines.kit import Area
from regression_pipelines.matrix.run import MATRIX_TAG
from regression_pipelines.perf_check import PERF_CHECK_NAME
from regression_pipelines.reports.tables import Batch
from regression_pipelines.results import (
    baseline_key_from_metadata,
    metrics_from_metadata,
    skip_reason_from_metadata,
)

PAGE = 500
FIRST_CHECK_PAGE = 16
COMPLETED = (AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED)


def utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


def materializations(
    instance: dg.DagsterInstance, key: dg.AssetKey, after: int | None = None
) -> Iterator[dg.EventLogRecord]:
    """Every materialization of `key` after storage id `after`, oldest first."""
    yield from _all_records(instance.fetch_materializations, key, after)


def check_executions(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, known: set[int]
) -> list[AssetCheckExecutionRecord]:
    """Completed executions of a check not yet in `known`, newest first. Pages start small and double, so
    the usual sync (a few new runs) deserializes a few records, not a whole page of old ones."""
    found: list[AssetCheckExecutionRecord] = []
    cursor, size = None, FIRST_CHECK_PAGE
    while True:
        page = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=size, cursor=cursor)
        new = [r for r in page if r.status in COMPLETED and r.id not in known and r.evaluation is not None]
        found.extend(new)
        if len(page) < size or any(r.id in known for r in page):  # reached what an earlier sync copied
            return found
        cursor, size = page[-1].id, min(2 * size, PAGE)


def skip_observations(
    instance: dg.DagsterInstance, key: dg.AssetKey, after: int | None = None
) -> Iterator[dg.EventLogRecord]:
    """Every skip of `key` (an observation carrying the skip reason) after storage id `after`, oldest first."""
    yield from (r for r in _all_records(instance.fetch_observations, key, after) if _skip_reason(r) is not None)


def _all_records(fetch: Any, key: dg.AssetKey, after: int | None) -> Iterator[dg.EventLogRecord]:
    """Every record `fetch` (an instance's fetch_materializations or fetch_observations) has for `key` after
    storage id `after`, oldest first, a page at a time."""
    records_filter = dg.AssetRecordsFilter(asset_key=key, after_storage_id=after)
    cursor = None
    while True:
        page = fetch(records_filter, limit=PAGE, cursor=cursor, ascending=True)
        yield from page.records
        if not page.has_more:
            return
        cursor = page.cursor


def newest_skip(instance: dg.DagsterInstance, key: dg.AssetKey, look_at: int = 20) -> dg.EventLogRecord | None:
    """The newest skip observation of `key` among its newest `look_at` observations (matrix runs' excluded)."""
    page = instance.fetch_observations(key, limit=look_at, ascending=False)
    return next((r for r in page.records if _skip_reason(r) is not None and not _from_matrix(instance, r)), None)


def newest_materialization(
    instance: dg.DagsterInstance, key: dg.AssetKey, look_at: int = 20
) -> dg.EventLogRecord | None:
    """The newest materialization of `key` by a regular run, among its newest `look_at`. A run `regress matrix`
    recorded for one version (another library release, a setting set) is an experiment, not the area's state:
    after a downgrade matrix the scorecard would otherwise show the area failing on the version it left."""
    page = instance.fetch_materializations(key, limit=look_at, ascending=False)
    return next((r for r in page.records if not _from_matrix(instance, r)), None)


def _from_matrix(instance: dg.DagsterInstance, record: dg.EventLogRecord) -> bool:
    run = instance.get_run_by_id(record.run_id) if record.run_id else None
    return run is not None and MATRIX_TAG in run.tags


def _skip_reason(record: dg.EventLogRecord) -> str | None:
    observation = record.event_log_entry.asset_observation
    return skip_reason_from_metadata(observation.metadata) if observation is not None else None


def add_skip(batch: Batch, area: str, record: dg.EventLogRecord) -> None:
    """A skipped run: a `runs` row with the reason, no metrics."""
    batch.add(
        "runs",
        {
            "storage_id": record.storage_id,
            "area": area,
            "run_id": record.run_id or "",
            "recorded_at": utc(record.timestamp),
            "status": "skipped",
            "skip_reason": _skip_reason(record) or "skipped",
            "baseline_key": "{}",
        },
    )


def add_materialization(batch: Batch, area: str, record: dg.EventLogRecord) -> None:
    materialization = record.asset_materialization
    if materialization is None:
        return
    metadata = materialization.metadata
    skip = skip_reason_from_metadata(metadata)
    common = {
        "storage_id": record.storage_id,
        "area": area,
        "run_id": record.run_id or "",
        "recorded_at": utc(record.timestamp),
    }
    key = baseline_key_from_metadata(metadata)
    batch.add(
        "runs", {**common, "status": "skipped" if skip else "measured", "skip_reason": skip or "", "baseline_key": key}
    )
    for metric in metrics_from_metadata(metadata):
        batch.add(
            "metrics",
            {
                **common,
                "metric": metric.name,
                "value": None if math.isnan(metric.value) else metric.value,
                "unit": metric.unit,
                "direction": metric.direction.value,
                "kind": metric.kind.value,
                "samples": metric.samples,
                "baseline_key": key,
            },
        )


def add_check(
    batch: Batch, area: str, record: AssetCheckExecutionRecord, on_stage: dict[str, int] | None = None
) -> None:
    """`on_stage`: for a check on a stage's asset, the area's materialization per run id; the check is filed
    under the area's materialization of its run (unknown: NULL, the report then matches it by run id)."""
    evaluation = record.evaluation
    assert evaluation is not None  # check_executions keeps completed ones only
    target = evaluation.target_materialization_data
    stage_run = on_stage.get(record.run_id or "") if on_stage is not None else None
    judged = stage_run if on_stage is not None else (target.storage_id if target else None)
    common = {
        "check_id": record.id,
        "area": area,
        "run_id": record.run_id or "",
        "materialization_id": judged,
        "recorded_at": utc(record.event.timestamp if record.event else record.create_timestamp),
    }
    batch.checks.append(record.id)
    if evaluation.check_name != PERF_CHECK_NAME:
        detail = _plain(evaluation.metadata.get("detail")) or evaluation.description or ""
        batch.add(
            "invariants",
            {
                **common,
                "invariant": evaluation.check_name,
                "passed": evaluation.passed,
                "severity": evaluation.severity.value,
                "detail": str(detail),
            },
        )
        return
    verdicts = _plain(evaluation.metadata.get("verdicts")) or {}
    if isinstance(verdicts, str):
        verdicts = json.loads(verdicts)
    for metric, v in sorted(verdicts.items()):
        batch.add(
            "verdicts",
            {
                **common,
                "metric": metric,
                "status": v.get("status"),
                "severity": v.get("severity"),
                "change_pct": v.get("change_pct"),
                "latest": v.get("latest"),
                "baseline": v.get("baseline"),
                "unit": v.get("unit") or "",
                "first_bad_run": v.get("first_bad_run") or "",
                "summary": v.get("summary") or "",
            },
        )


def read_area(instance: dg.DagsterInstance, area: Area, after: int | None, known_checks: set[int]) -> Batch:
    """The area's materializations after `after` and its check executions not in `known_checks`."""
    batch = Batch()
    by_run: dict[str, int] = {}
    for record in materializations(instance, dg.AssetKey(area.name), after):
        add_materialization(batch, area.name, record)
        by_run[record.run_id or ""] = record.storage_id
    for record in skip_observations(instance, dg.AssetKey(area.name), after):
        add_skip(batch, area.name, record)
    for check in (*area.checks, PERF_CHECK_NAME):
        name = area.check_asset(check)
        for record in check_executions(instance, dg.AssetCheckKey(dg.AssetKey(name), check), known_checks):
            add_check(batch, area.name, record, by_run if name != area.name else None)
    return batch
