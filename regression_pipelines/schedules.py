"""When regressions run unattended: everything nightly, the non-destructive areas hourly.

Both start stopped: a schedule that kills lab nodes must be switched on by someone who meant it. Jobs are
referenced by name (defined in jobs.py), so this module does not decide what is destructive. A tick is
skipped while a regression run is still in flight: two workloads at once would measure each other.
"""

import dagster as dg

TIMEZONE = "UTC"
REGRESSION_JOBS = ("full_regression", "hourly_regression")
_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def no_regression_in_flight(context: dg.ScheduleEvaluationContext) -> bool:
    for job_name in REGRESSION_JOBS:
        in_flight = context.instance.get_runs_count(dg.RunsFilter(job_name=job_name, statuses=_IN_FLIGHT))
        if in_flight:
            context.log.info(f"skipping: a {job_name} run is still in flight")
            return False
    return True


nightly_full_regression = dg.ScheduleDefinition(
    name="nightly_full_regression",
    job_name="full_regression",
    cron_schedule="0 2 * * *",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    should_execute=no_regression_in_flight,
    description="Every area, destructive ones included, at 02:00 UTC.",
)

hourly_non_destructive_regression = dg.ScheduleDefinition(
    name="hourly_non_destructive_regression",
    job_name="hourly_regression",
    cron_schedule="17 * * * *",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    should_execute=no_regression_in_flight,
    description="Areas that kill, pause or switch over nothing, every hour at :17 (skipped while one runs).",
)

SCHEDULES = [nightly_full_regression, hourly_non_destructive_regression]
