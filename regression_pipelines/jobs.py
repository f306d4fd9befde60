"""Jobs: the regression runs that touch no node (full and hourly), the destructive areas' own job, the report.

Destructive areas (`Area.destructive`: they kill, pause, switch over or move something) are never in a default
job or schedule. They have `destructive_regression`, and even there each one does nothing unless its run
config opts in (`allow_destructive: true`): without it the area is skipped with that reason (kit/run.py), and
the run still succeeds. Every regression job ends with the reporting assets (scorecard -> report, exports).
"""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.executor_definition import (
    IN_PROC_CONFIG,
    MULTI_PROC_CONFIG,
    multiple_process_executor_requirements,
)

from regression_pipelines.reports.names import REPORT_GROUP, REPORT_JOB

AREAS = dg.AssetSelection.groups("areas")
DESTRUCTIVE = AREAS.tag("destructive", "true")  # stages carry their area's tag, so they follow it
SAFE = AREAS - DESTRUCTIVE
REPORTS = dg.AssetSelection.groups(REPORT_GROUP)
FULL_JOB, HOURLY_JOB, DESTRUCTIVE_JOB = "full_regression", "hourly_regression", "destructive_regression"


@dg.executor(
    name="multi_or_in_process_executor",
    config_schema=dg.Field(
        dg.Selector({"multiprocess": MULTI_PROC_CONFIG, "in_process": IN_PROC_CONFIG}),
        default_value={"multiprocess": {"max_concurrent": 1}},
    ),
    requirements=lambda config: multiple_process_executor_requirements() if "multiprocess" in config else [],
)
def one_area_at_a_time(init_context: dg.InitExecutorContext) -> dg.Executor:
    """Dagster's default executor with one change: by default one step at a time, each in its own process.

    Why: two areas' workloads at once would measure each other, and a crashed engine takes only its own step
    down. The run config keeps Dagster's usual shape (`execution: {config: {in_process: {}}}` or
    `multiprocess: {max_concurrent: N}` to raise it on purpose).
    """
    return dg.multi_or_in_process_executor.executor_creation_fn(init_context)  # type: ignore[misc]


ONE_AREA_AT_A_TIME = one_area_at_a_time

full_regression = dg.define_asset_job(
    FULL_JOB,
    executor_def=ONE_AREA_AT_A_TIME,
    selection=SAFE | REPORTS,
    description="Every area that kills, pauses, switches over or moves nothing, checks included, then the "
    "scorecard, report and exports (nightly). Destructive areas: destructive_regression.",
)
hourly_regression = dg.define_asset_job(
    HOURLY_JOB,
    executor_def=ONE_AREA_AT_A_TIME,
    selection=SAFE | REPORTS,
    description="The same safe areas as full_regression, for the hourly schedule (its own job, so hourly runs "
    "can be told from nightly ones and sized apart), then the scorecard and report.",
)
destructive_regression = dg.define_asset_job(
    DESTRUCTIVE_JOB,
    executor_def=ONE_AREA_AT_A_TIME,
    selection=DESTRUCTIVE | REPORTS,
    description="Areas that fail over, kill, pause or move shards. Each acts only when its run config says "
    "allow_destructive: true (and only on the lab or allow-listed hosts); otherwise it is skipped with the "
    "reason. No schedule launches it.",
)
regression_report = dg.define_asset_job(
    REPORT_JOB,
    selection=REPORTS,
    description="Scorecard, HTML report and exports from what the instance already holds (no workload).",
)

JOBS = [full_regression, hourly_regression, destructive_regression, regression_report]
REGRESSION_JOBS = [full_regression, hourly_regression, destructive_regression]
