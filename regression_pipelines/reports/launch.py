"""Materialize the reporting assets in-process on an instance (for `regress report` and `regress run`), and
find what they wrote."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dagster as dg

from regression_pipelines.reports.names import EXPORTS, REPORT, REPORT_JOB, SCORECARD

REPORTING_KEYS = [dg.AssetKey(name) for name in (SCORECARD, REPORT, EXPORTS)]


@dataclass(frozen=True)
class ReportOutputs:
    html: str
    exports: str


def reporting_run_config(since: str = "7d", out_dir: str = "", rebuild_warehouse: bool = False) -> dict[str, Any]:
    output = {"since": since, "out_dir": out_dir}
    return {
        "ops": {
            SCORECARD: {"config": {"since": since, "rebuild_warehouse": rebuild_warehouse}},
            REPORT: {"config": output},
            EXPORTS: {"config": output},
        }
    }


def materialize_reports(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    run_config: dict[str, Any] | None = None,
    log_level: str = "WARNING",
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    config = {"loggers": {"console": {"config": {"log_level": log_level}}}, **(run_config or reporting_run_config())}
    return defs.resolve_job_def(REPORT_JOB).execute_in_process(
        run_config=config,
        instance=instance,
        raise_on_error=False,
        tags={"regress/launched_by": "regress report", **(tags or {})},
    )


def report_outputs(result: dg.ExecuteInProcessResult) -> ReportOutputs | None:
    """Where this run's report and exports landed; None when it did not materialize them."""
    found: dict[str, str] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        name = materialization.asset_key.to_user_string()
        entry = materialization.metadata.get("path" if name == REPORT else "folder")
        if name in (REPORT, EXPORTS) and entry is not None:
            found[name] = str(getattr(entry, "value", entry))
    if REPORT not in found:
        return None
    return ReportOutputs(html=found[REPORT], exports=found.get(EXPORTS, ""))


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The first step failure of a reporting run, one line."""
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE" and event.step_failure_data and event.step_failure_data.error:
            message = event.step_failure_data.error.message.strip()
            return f"{event.step_key}: {message.splitlines()[0] if message else 'failed'}"
    return "the reporting run failed"
