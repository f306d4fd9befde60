"""Scheduled runs take their settings from REGRESS_SCHEDULE_RUN_CONFIG: validated per area at the tick, areas
the job does not hold dropped, and a bad file is a one-line error naming the field."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from regression_pipelines.definitions import defs
from regression_pipelines.schedules import (
    SCHEDULE_RUN_CONFIG_ENV,
    ScheduleConfigError,
    hourly_non_destructive_regression,
    load_schedule_run_config,
    nightly_full_regression,
    scheduled_run_config,
)

FILE = """
ops:
  cache_coherence: {config: {max_ops: 500, fault: skip_invalidation}}
  ha_failover: {config: {allow_destructive: true, mode: switchover}}
execution: {config: {in_process: {}}}
resources:
  patroni: {config: {host: pg.example.internal, password: {env: REGRESS_PATRONI_PASSWORD}}}
"""


def _tick(schedule: dg.ScheduleDefinition, path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The run config the schedule's tick asks for (its run_config_fn; should_execute is tested elsewhere)."""
    monkeypatch.setenv(SCHEDULE_RUN_CONFIG_ENV, str(path))
    context = dg.build_schedule_context(repository_def=defs.get_repository_def())
    return scheduled_run_config(context, schedule.job_name)


def test_schedules_get_the_file_without_destructive_areas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run_config.yaml"
    path.write_text(FILE)
    monkeypatch.setenv("REGRESS_PATRONI_PASSWORD", "from-the-secret")  # the file refers to it by name
    hourly = _tick(hourly_non_destructive_regression, path, monkeypatch)
    assert hourly["ops"] == {"cache_coherence": {"config": {"max_ops": 500, "fault": "skip_invalidation"}}}
    assert hourly["execution"] == {"config": {"in_process": {}}}
    assert hourly["resources"]["patroni"]["config"]["password"] == {"env": "REGRESS_PATRONI_PASSWORD"}
    nightly = _tick(nightly_full_regression, path, monkeypatch)
    assert set(nightly["ops"]) == {"cache_coherence"}  # no schedule runs a destructive area, opted in or not
    dg.validate_run_config(defs.resolve_job_def("hourly_regression"), hourly)


def test_no_file_means_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SCHEDULE_RUN_CONFIG_ENV, raising=False)
    context = dg.build_schedule_context(repository_def=defs.get_repository_def())
    assert scheduled_run_config(context, hourly_non_destructive_regression.job_name) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "ops: {cache_coherence: {config: {max_ops: 0}}}",
            "ops.cache_coherence.config: max_ops: 0 is below the minimum",
        ),
        ("ops: {cache: {config: {}}}", "ops.cache is not an area; areas: cache_coherence"),
        ("ops: {cache_coherence: {config: {fault: typo}}}", "'typo' is unknown; use one of none, skip_invalidation"),
        ("loggers: {}", "top-level keys may only be ops, execution, resources"),
        ("ops: [", "not YAML"),
    ],
)
def test_a_bad_file_is_a_one_line_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScheduleConfigError) as info:
        load_schedule_run_config(str(path))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ScheduleConfigError, match="cannot read it"):
        load_schedule_run_config(str(tmp_path / "absent.yaml"))
