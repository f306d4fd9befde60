"""When regressions run unattended: the safe areas nightly (full_regression) and hourly (hourly_regression).

No schedule launches a destructive area: they are not in either job (jobs.py: destructive_regression is
launched by hand, with opt-in). Both schedules start stopped: switch them on in the UI once the targets are
right. A tick is
skipped while a regression run is still in flight: two workloads at once would measure each other.

Unattended runs are sized by the team, not by code: REGRESS_SCHEDULE_RUN_CONFIG names a YAML run config (the
launchpad's shape: `ops: {cache_coherence: {config: {max_ops: 5000}}}`, optionally `execution:` and
`resources:`) that every scheduled run gets. Each area's settings are checked against its model at the tick,
so a typo fails the tick with a one-line error instead of launching a run; areas the job does not hold are
dropped (one file serves the nightly and the hourly schedule).
"""

import os
from pathlib import Path
from typing import Any

import dagster as dg
import pydantic
import yaml

from regression_pipelines.kit import describe_validation_error
from regression_pipelines.kit.discovery import discover_areas

TIMEZONE = "UTC"
REGRESSION_JOBS = ("full_regression", "hourly_regression", "destructive_regression")
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


SCHEDULE_RUN_CONFIG_ENV = "REGRESS_SCHEDULE_RUN_CONFIG"
_RUN_CONFIG_KEYS = ("ops", "execution", "resources")


class ScheduleConfigError(ValueError):
    """The scheduled-run config file cannot be used; the message names the file, the field and the fix."""


def load_schedule_run_config(path: str, job_ops: set[str] | None = None) -> dict[str, Any]:
    """The run config in `path`, its area settings validated; ops not in `job_ops` (when given) dropped."""
    where = f"{SCHEDULE_RUN_CONFIG_ENV}={path}"
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ScheduleConfigError(f"{where}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ScheduleConfigError(f"{where}: not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict) or set(raw) - set(_RUN_CONFIG_KEYS):
        raise ScheduleConfigError(f"{where}: top-level keys may only be {', '.join(_RUN_CONFIG_KEYS)}")
    models = {area.name: area.config for area in discover_areas()}
    ops: dict[str, Any] = {}
    for area, entry in (raw.get("ops") or {}).items():
        if area not in models:
            raise ScheduleConfigError(f"{where}: ops.{area} is not an area; areas: {', '.join(sorted(models))}")
        settings = (entry or {}).get("config", {}) if isinstance(entry, dict) else None
        if not isinstance(settings, dict):
            raise ScheduleConfigError(f"{where}: ops.{area} must be {{config: {{setting: value}}}}")
        try:
            models[area].model_validate(settings)
        except pydantic.ValidationError as exc:
            raise ScheduleConfigError(f"{where}: ops.{area}.config: {describe_validation_error(exc)}") from None
        if job_ops is None or area in job_ops:
            ops[area] = {"config": settings}
    config: dict[str, Any] = {"ops": ops} if ops else {}
    config.update({key: raw[key] for key in ("execution", "resources") if raw.get(key)})
    return config


def scheduled_run_config(context: dg.ScheduleEvaluationContext, job_name: str) -> dict[str, Any]:
    path = os.environ.get(SCHEDULE_RUN_CONFIG_ENV, "")
    if not path:
        return {}
    job_ops = set(context.repository_def.get_job(job_name).graph.node_dict)
    return load_schedule_run_config(path, job_ops)


nightly_full_regression = dg.ScheduleDefinition(
    name="nightly_full_regression",
    job_name="full_regression",
    cron_schedule="0 2 * * *",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    should_execute=no_regression_in_flight,
    run_config_fn=lambda context: scheduled_run_config(context, "full_regression"),
    description="Every area that kills, pauses or moves nothing, at 02:00 UTC (destructive areas: never "
    "scheduled; launch destructive_regression by hand with allow_destructive).",
)

hourly_non_destructive_regression = dg.ScheduleDefinition(
    name="hourly_non_destructive_regression",
    job_name="hourly_regression",
    cron_schedule="17 * * * *",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    should_execute=no_regression_in_flight,
    run_config_fn=lambda context: scheduled_run_config(context, "hourly_regression"),
    description="Areas that kill, pause or switch over nothing, every hour at :17 (skipped while one runs).",
)

SCHEDULES = [nightly_full_regression, hourly_non_destructive_regression]
