"""When regressions run unattended: everything nightly, the non-destructive areas hourly.

Both start stopped: a schedule that kills lab nodes must be switched on by someone who meant it. Jobs are
referenced by name (defined in jobs.py), so this module does not decide what is destructive.
"""

from __future__ import annotations

import dagster as dg

TIMEZONE = "UTC"

nightly_full_regression = dg.ScheduleDefinition(
    name="nightly_full_regression",
    job_name="full_regression",
    cron_schedule="0 2 * * *",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every area, destructive ones included, at 02:00 UTC.",
)

hourly_non_destructive_regression = dg.ScheduleDefinition(
    name="hourly_non_destructive_regression",
    job_name="hourly_regression",
    cron_schedule="17 * * * *",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Areas that kill, pause or switch over nothing, every hour at :17.",
)

SCHEDULES = [nightly_full_regression, hourly_non_destructive_regression]
