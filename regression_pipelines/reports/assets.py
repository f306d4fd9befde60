"""The report and exports assets (downstream of the scorecard), and the sensor that keeps them current
when a regression run fails before reaching them (Dagster skips the steps downstream of a failed one).
No `from __future__ import annotations`: Dagster inspects the context and config annotations.
"""

import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from plotly.offline import get_plotlyjs
from pydantic import Field

from regression_pipelines.detection import MetricPolicy
from regression_pipelines.evaluation import policy_for
from regression_pipelines.kit import Area
from regression_pipelines.reports import tables
from regression_pipelines.reports.content import build_content
from regression_pipelines.reports.exports import write_exports
from regression_pipelines.reports.names import EXPORTS, REPORT, REPORT_GROUP, SCORECARD, WAREHOUSE
from regression_pipelines.reports.page import render
from regression_pipelines.reports.scorecard import checked_since, latest_scorecard, scorecard_asset
from regression_pipelines.reports.window import window_start
from regression_pipelines.results import Direction, Metric

REPORT_FILE = "regression_report.html"
ENV_DAGSTER_URL = "REGRESS_DAGSTER_URL"  # the same variable the alert links use


class ReportConfig(dg.Config):
    since: str = Field(default="7d", description="Window shown: 90m, 24h, 7d, 2w or all")
    out_dir: str = Field(default="", description="Folder for the report and exports (default $DAGSTER_HOME/reports)")
    dagster_url: str = Field(default="", description=f"Dagster UI base for run links (default ${ENV_DAGSTER_URL})")


def output_dir(context: dg.AssetExecutionContext, config: ReportConfig) -> Path:
    return Path(config.out_dir) if config.out_dir else Path(context.instance.root_directory) / "reports"


def _dagster_url(config: ReportConfig) -> str:
    return config.dagster_url or os.environ.get(ENV_DAGSTER_URL, "http://127.0.0.1:3000")


def _scorecard(context: dg.AssetExecutionContext) -> Any:
    scorecard = latest_scorecard(context.instance)
    if scorecard is None:
        raise dg.Failure(description=f"no {SCORECARD} materialization yet: materialize it first (regress report)")
    return scorecard


def _policy_lookup(areas: Sequence[Area]) -> Any:
    policies = {area.name: area.policies for area in areas}

    def policy_of(area: str, metric: str, direction: str) -> MetricPolicy:
        probe = Metric(metric, 0.0, "", Direction(direction))
        return policy_for(probe, policies.get(area, {}).get(metric))

    return policy_of


def report_asset(areas: Sequence[Area]) -> dg.AssetsDefinition:
    area_list = list(areas)

    @dg.asset(
        name=REPORT,
        group_name=REPORT_GROUP,
        deps=[dg.AssetKey(SCORECARD)],
        required_resource_keys={WAREHOUSE},
        kinds={"html", "plotly"},
        description="One self-contained HTML file (no network needed): summary per area, a trend chart per "
        "metric with baseline band, SLOs, change points and first bad run, and each area's invariant history.",
    )
    def regression_report(context: dg.AssetExecutionContext, config: ReportConfig) -> dg.MaterializeResult:
        started = time.perf_counter()
        since = checked_since(config.since)
        scorecard = _scorecard(context)
        start = window_start(since, datetime.fromtimestamp(scorecard.generated_at, UTC))
        with getattr(context.resources, WAREHOUSE).connect() as conn:
            tables.ensure_schema(conn)
            window = {t: tables.read(conn, t, start) for t in ("runs", "invariants")}
            metrics = tables.read_metrics_with_history(conn, start)
        content = build_content(
            scorecard,
            window,
            metrics,
            _policy_lookup(area_list),
            {area.name: area.description for area in area_list},
            start,
            since,
            _dagster_url(config),
        )
        matrices = output_dir(context, config) / "matrix" / "index.html"  # written by `regress matrix`
        page = render(content, get_plotlyjs(), [("Upgrade matrices", "matrix/index.html")] if matrices.exists() else [])
        path = output_dir(context, config) / REPORT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
        seconds = time.perf_counter() - started
        context.log.info(f"report: {path} ({path.stat().st_size / 1e6:.2f} MB, {seconds:.2f} s)")
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "size_mb": round(path.stat().st_size / 1e6, 3),
                "charts": len(content.charts),
                "points_drawn": sum(c.points for c in content.charts),
                "render_seconds": round(seconds, 3),
            }
        )

    return regression_report


def exports_asset() -> dg.AssetsDefinition:
    @dg.asset(
        name=EXPORTS,
        group_name=REPORT_GROUP,
        deps=[dg.AssetKey(SCORECARD)],
        required_resource_keys={WAREHOUSE},
        kinds={"parquet", "json"},
        description="The report's data (runs, metrics, invariants, verdicts, scorecard) as Parquet and JSON.",
    )
    def regression_exports(context: dg.AssetExecutionContext, config: ReportConfig) -> dg.MaterializeResult:
        since = checked_since(config.since)
        scorecard = _scorecard(context)
        start = window_start(since, datetime.fromtimestamp(scorecard.generated_at, UTC))
        folder = output_dir(context, config) / "exports"
        with getattr(context.resources, WAREHOUSE).connect() as conn:
            tables.ensure_schema(conn)
            written = write_exports(conn, folder, start, scorecard)
            rows = {
                t: conn.execute(f"SELECT count(*) FROM {t} WHERE recorded_at >= ?", [start]).fetchall()[0][0]
                for t in tables.TABLES
            }
        return dg.MaterializeResult(
            metadata={
                "folder": dg.MetadataValue.path(str(folder)),
                "files": dg.MetadataValue.json(sorted(written)),
                "rows": dg.MetadataValue.json(rows),
            }
        )

    return regression_exports


def reporting_assets(areas: Sequence[Area]) -> list[dg.AssetsDefinition]:
    """Scorecard (downstream of every given area), report and exports."""
    return [scorecard_asset(areas), report_asset(areas), exports_asset()]


def _scorecard_materialized(instance: dg.DagsterInstance, run_id: str) -> bool:
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        event = entry.dagster_event
        if event and event.asset_key == dg.AssetKey(SCORECARD):
            return True
    return False


def report_after_run_sensors(monitored: Sequence[Any], report_job: Any) -> list[dg.SensorDefinition]:
    """Keep the scorecard, report and exports current after a regression run that did not reach them:

    - `report_after_failed_run`: the run failed before its scorecard (a failed area step skips everything
      downstream), so the scorecard shows the failure as `error`;
    - `report_after_skipped_run`: the run succeeded but every area it ran was skipped (Dagster skips a step whose
      inputs all produced nothing), so the scorecard shows them as `skipped`.
    """

    @dg.run_failure_sensor(
        name="report_after_failed_run",
        monitored_jobs=list(monitored),
        request_job=report_job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Refreshes the scorecard, report and exports after a regression run failed before them.",
    )
    def report_after_failed_run(context: dg.RunFailureSensorContext) -> Any:
        run_id = context.dagster_run.run_id
        if _scorecard_materialized(context.instance, run_id):
            return dg.SkipReason(f"run {run_id} materialized the scorecard before failing")
        return dg.RunRequest(run_key=f"after-{run_id}", tags={"regress/after_failed_run": run_id})

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        name="report_after_skipped_run",
        monitored_jobs=list(monitored),
        request_job=report_job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Refreshes the scorecard, report and exports after a regression run whose areas were all "
        "skipped (nothing measured, so Dagster skipped the reporting steps too).",
    )
    def report_after_skipped_run(context: dg.RunStatusSensorContext) -> Any:
        run_id = context.dagster_run.run_id
        if _scorecard_materialized(context.instance, run_id):
            return dg.SkipReason(f"run {run_id} materialized the scorecard")
        return dg.RunRequest(run_key=f"after-{run_id}", tags={"regress/after_skipped_run": run_id})

    return [report_after_failed_run, report_after_skipped_run]
