"""Schedules: both stopped by default, aimed at existing jobs, and skipped while a regression is in flight."""

from __future__ import annotations

import dagster as dg

from regression_pipelines.jobs import JOBS
from regression_pipelines.schedules import (
    SCHEDULES,
    hourly_non_destructive_regression,
    nightly_full_regression,
)
from regression_pipelines.sensors import SENSORS
from resources.alerting import AlertingResource


def test_schedules_default_stopped_and_target_known_jobs() -> None:
    job_names = {job.name for job in JOBS}
    for schedule in SCHEDULES:
        assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
        assert schedule.job_name in job_names
    assert nightly_full_regression.job_name == "full_regression"
    assert hourly_non_destructive_regression.job_name == "hourly_regression"


def test_definitions_load_with_sensors_and_schedules() -> None:
    defs = dg.Definitions(
        assets=[dg.AssetSpec("x", group_name="areas")],
        jobs=JOBS,
        sensors=SENSORS,
        schedules=SCHEDULES,
        resources={"alerting": AlertingResource()},
    )
    dg.Definitions.validate_loadable(defs)


def test_hourly_tick_skipped_while_a_full_regression_runs() -> None:
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance)
        result = hourly_non_destructive_regression.evaluate_tick(context)
        assert result.run_requests and len(result.run_requests) == 1
        instance.add_run(dg.DagsterRun(job_name="full_regression", run_id="r1", status=dg.DagsterRunStatus.STARTED))
        result = hourly_non_destructive_regression.evaluate_tick(dg.build_schedule_context(instance=instance))
        assert not result.run_requests
