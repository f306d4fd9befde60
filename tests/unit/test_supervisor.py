"""The supervisor: whatever a scenario raises ends in a verdict with its figures, its phase and its root cause;
what it created is removed and proven gone; only an unusable environment before the workload ends the step."""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

import dagster as dg
import pytest

from regression_pipelines.errors import ResourceConfigError
from regression_pipelines.kit import Area, AreaConfig, AreaSkipped, RunContext, run_area
from regression_pipelines.kit.causes import root_cause
from regression_pipelines.kit.nemeses.base import Nemesis, Target
from regression_pipelines.kit.nemeses.schedule import NemesisSchedule, seeded_start
from regression_pipelines.kit.supervisor import NO_LEFTOVERS, RUN_COMPLETED, Supervisor
from regression_pipelines.results import Invariant, Metric, ScenarioResult, metric_values
from tests.areas import materialize_area


class Panic(BaseException):
    """Like pyo3's PanicException: a BaseException, not an Exception."""


def _supervisor() -> Supervisor:
    return Supervisor(area="toy", checks=("conserved", "no_operation_errors", RUN_COMPLETED, NO_LEFTOVERS))


def _crashing(supervisor: Supervisor, error: BaseException) -> ScenarioResult:
    with supervisor.phase("setup"):
        supervisor.record(Metric("setup.rows", 10, "rows"))
    with supervisor.phase("workload"):
        supervisor.record(Metric("ops_per_s", 123.0, "ops/s"))
        raise error


def _by_name(result: ScenarioResult) -> dict[str, Invariant]:
    return {inv.name: inv for inv in result.invariants}


@pytest.mark.parametrize("error", [ConnectionError("server closed the connection"), Panic("index out of bounds")])
def test_a_crash_keeps_the_figures_and_names_the_phase_and_cause(error: BaseException) -> None:
    supervisor = _supervisor()
    result = supervisor.run(lambda: _crashing(supervisor, error))
    assert {m.name for m in result.metrics} >= {"setup.rows", "ops_per_s", "phase.setup_s", "phase.workload_s"}
    checks = _by_name(result)
    completed = checks[RUN_COMPLETED]
    assert not completed.passed
    assert "crashed in phase 'workload'" in completed.detail and type(error).__name__ in completed.detail
    assert str(error) in completed.detail and "test_supervisor.py" in completed.detail
    assert completed.facts["phase"] == "workload"
    assert not checks["conserved"].passed and "not evaluated: the run crashed in phase 'workload'" in (
        checks["conserved"].detail
    )
    assert checks[NO_LEFTOVERS].passed
    assert result.environment["crash_phase"] == "workload"


def test_interrupts_pass_through_after_cleanup() -> None:
    supervisor, removed = _supervisor(), []
    supervisor.created("table", "t1", lambda: removed.append("t1"))
    with pytest.raises(KeyboardInterrupt):
        supervisor.run(lambda: _crashing(supervisor, KeyboardInterrupt()))
    assert removed == ["t1"]


def test_unusable_environment_ends_the_step_only_before_the_workload() -> None:
    bad = ResourceConfigError("PostgresResource", "port", "nothing listens on 127.0.0.1:1", "start it")
    supervisor = _supervisor()

    def preflight() -> ScenarioResult:
        raise bad

    with pytest.raises(ResourceConfigError):
        supervisor.run(preflight)
    later = _supervisor()
    result = later.run(lambda: _crashing(later, bad))
    assert "ResourceConfigError" in _by_name(result)[RUN_COMPLETED].detail


def test_created_things_are_removed_last_first_with_retries_and_proven_gone() -> None:
    supervisor, order, tables = _supervisor(), [], {"a", "b"}
    flaky = iter([ConnectionError("server restarting"), None])

    def drop(name: str) -> None:
        if name == "a" and (error := next(flaky)) is not None:
            raise error
        order.append(name)
        tables.discard(name)

    for name in ("a", "b"):
        supervisor.created("table", name, lambda n=name: drop(n), lambda n=name: n in tables)
    result = supervisor.run(lambda: ScenarioResult("toy"))
    assert order == ["b", "a"]
    leftovers = _by_name(result)[NO_LEFTOVERS]
    assert leftovers.passed and "removed all 2: table a, table b" in leftovers.detail


def test_something_still_there_fails_no_leftovers_naming_it() -> None:
    supervisor = _supervisor()
    supervisor.created("queue", "etl.x.load", lambda: None, lambda: True)
    supervisor.created("role", "etl_x_worker", _refuse, lambda: True)
    with _fast_cleanup():
        result = supervisor.run(lambda: ScenarioResult("toy"))
    leftovers = _by_name(result)[NO_LEFTOVERS]
    assert not leftovers.passed
    assert "2 of 2 left behind: queue etl.x.load; role etl_x_worker (PermissionError: not the owner)" in (
        leftovers.detail
    )


def _refuse() -> None:
    raise PermissionError("not the owner")


class _fast_cleanup:  # noqa: N801 - a context manager used like a function
    def __enter__(self) -> None:
        from regression_pipelines.kit import supervisor

        self.saved = supervisor.CLEANUP_ITEM_S
        supervisor.CLEANUP_ITEM_S = 0.3

    def __exit__(self, *exc: object) -> None:
        from regression_pipelines.kit import supervisor

        supervisor.CLEANUP_ITEM_S = self.saved


def test_the_root_cause_is_the_innermost_exception() -> None:
    try:
        try:
            raise TimeoutError("connection timeout expired")
        except TimeoutError as inner:
            raise RuntimeError("settling failed") from inner
    except RuntimeError as outer:
        cause = root_cause(outer)
    assert cause.exception == "TimeoutError" and cause.message == "connection timeout expired"
    assert cause.raised_as == "RuntimeError" and cause.where.startswith("tests/unit/test_supervisor.py:")


class Recorder(Nemesis):
    name = "recorder"
    services: ClassVar[frozenset[str]] = frozenset({"toy"})
    destructive = False
    description = "records what it was asked to do"

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def start(self, target: Target) -> str:
        self.calls.append(("start", time.monotonic()))
        return "started"

    def stop(self, target: Target) -> str:
        self.calls.append(("stop", time.monotonic()))
        return "stopped"


def _scheduled(nemesis: Nemesis, at_s: float, for_s: float) -> tuple[Supervisor, NemesisSchedule]:
    supervisor = _supervisor()
    schedule = NemesisSchedule(nemesis, Target("toy", {}, supervisor), at_s, for_s)
    supervisor.add_hook(schedule)
    return supervisor, schedule


def test_a_nemesis_acts_inside_the_workload_and_is_noted_on_failed_checks() -> None:
    nemesis = Recorder()
    supervisor, schedule = _scheduled(nemesis, 0.05, 0.1)

    def body() -> ScenarioResult:
        with supervisor.phase("workload"):
            time.sleep(0.4)
        return ScenarioResult("toy", invariants=[Invariant("conserved", False, "3 lost")])

    result = supervisor.run(body)
    assert [call for call, _ in nemesis.calls] == ["start", "stop"]
    assert 0.08 <= nemesis.calls[1][1] - nemesis.calls[0][1] < 0.35
    assert "nemesis recorder started at" in _by_name(result)["conserved"].detail
    assert {m.name for m in result.metrics} >= {"nemesis.started_at_s", "nemesis.healed_at_s"}
    assert result.environment["nemesis"] == "recorder"


def test_a_crash_heals_the_nemesis() -> None:
    nemesis = Recorder()
    supervisor, _ = _scheduled(nemesis, 0.0, 30.0)

    def body() -> ScenarioResult:
        with supervisor.phase("workload"):
            time.sleep(0.1)
            raise Panic("boom")

    result = supervisor.run(body)
    assert [call for call, _ in nemesis.calls] == ["start", "stop"]
    assert not _by_name(result)[RUN_COMPLETED].passed


def test_seeded_start_is_replayable() -> None:
    assert seeded_start("pause", "etl", 3) == seeded_start("pause", "etl", 3)
    assert 0.2 <= seeded_start("pause", "etl", 4) < 1.2


# --- through the kit and Dagster --------------------------------------------------------------------------------


class _Config(AreaConfig):
    pass


def _area(run) -> Area:  # noqa: ANN001
    return Area(name="crashy", description="toy", config=_Config, run=run, invariants=("conserved",))


def test_run_area_gives_a_verdict_for_a_panic(tmp_path: Path) -> None:
    def run(config: _Config, ctx: RunContext) -> ScenarioResult:
        with ctx.sup.phase("workload"):
            ctx.sup.record(Metric("ops_per_s", 5.0, "ops/s"))
            raise Panic("called `Option::unwrap()` on a `None` value")

    result = run_area(_area(run), _Config(), RunContext("r1", {}, tmp_path))
    assert "Panic: called `Option::unwrap()`" in _by_name(result)[RUN_COMPLETED].detail
    assert result.metric("ops_per_s").value == 5.0


def test_the_asset_materializes_with_failed_checks_instead_of_failing_the_step(tmp_path: Path) -> None:
    def run(config: _Config, ctx: RunContext) -> ScenarioResult:
        with ctx.sup.phase("workload"):
            ctx.sup.record(Metric("ops_per_s", 5.0, "ops/s"))
            raise OSError("Expected contiguous commit files")

    with dg.instance_for_test() as instance:  # an instance the test holds (Dagster keeps only a weak reference)
        result = materialize_area(_area(run), tmp_path, instance=instance)
    assert result.success
    (event,) = result.get_asset_materialization_events()
    assert metric_values(event.materialization.metadata)["ops_per_s"].value == 5.0
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks[RUN_COMPLETED].passed and not checks["conserved"].passed
    assert "OSError: Expected contiguous commit files" in checks[RUN_COMPLETED].metadata["detail"].value


def test_skipped_still_skips(tmp_path: Path) -> None:
    def run(config: _Config, ctx: RunContext) -> ScenarioResult:
        raise AreaSkipped("no Citus here")

    with pytest.raises(AreaSkipped):
        run_area(_area(run), _Config(), RunContext("r1", {}, tmp_path))
