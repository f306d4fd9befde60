"""The nemesis library without services: the registry, the one guard, where a nemesis may act (lab or command
template), the schedule (start point, heal, not started, failed start, heal before other cleanups), and the
chaos matrix's cells, sample and cell verdicts."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import ClassVar

import pytest

from regression_pipelines.errors import UnsafeTargetError
from regression_pipelines.kit import Area, AreaConfig, RunContext, chaos, nemeses, run_area
from regression_pipelines.kit.chaos import Cell, CheckSeen, judge_cell
from regression_pipelines.kit.guard import require_destructive_opt_in
from regression_pipelines.kit.nemeses import lab
from regression_pipelines.kit.nemeses.base import Endpoint, Nemesis, NemesisError, Target
from regression_pipelines.kit.nemeses.schedule import NemesisSchedule
from regression_pipelines.kit.supervisor import NO_LEFTOVERS, RUN_COMPLETED, Supervisor
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.results import Invariant, Metric, ScenarioResult

RESOURCE_KEYS = {"postgres", "redis", "rabbitmq", "patroni", "citus", "delta"}


def test_every_nemesis_declares_what_it_touches() -> None:
    library = nemeses.registry()
    assert len(library) >= 30
    for name, nemesis in library.items():
        assert name == nemesis.name and name.isidentifier()
        assert nemesis.services and nemesis.services <= RESOURCE_KEYS, name
        assert isinstance(nemesis.destructive, bool) and len(nemesis.description) > 20, name
    # faults on a shared service need the opt-in; faults on the run's own objects do not
    assert library["postgres_restart_immediate"].destructive and library["redis_maxmemory_random"].destructive
    assert not library["postgres_drop_rows_trigger"].destructive and not library["delta_remove_commit"].destructive
    with pytest.raises(NemesisError, match="unknown; use one of"):
        nemeses.by_name("chaos_monkey")


def test_the_config_accepts_only_known_nemeses() -> None:
    assert AreaConfig(nemesis="redis_pause").nemesis == "redis_pause"
    with pytest.raises(ValueError, match="'chaos_monkey' is unknown"):
        AreaConfig(nemesis="chaos_monkey")


# -- the one guard ---------------------------------------------------------------------------------------------


def test_guard_needs_the_opt_in_and_an_allowed_host() -> None:
    with pytest.raises(UnsafeTargetError, match="set allow_destructive: true"):
        require_destructive_opt_in("x restarts redis", False, ["127.0.0.1"])
    require_destructive_opt_in("x", True, ["127.0.0.1", "localhost"])
    with pytest.raises(UnsafeTargetError, match="'10.0.0.7', which is not loopback and not in allow_list"):
        require_destructive_opt_in("x", True, ["10.0.0.7"])
    require_destructive_opt_in("x", True, ["10.0.0.7"], ["10.0.0.7"])


def test_guard_target_must_agree_with_the_resources() -> None:
    require_destructive_opt_in("x", True, ["127.0.0.1"], target="lab")
    with pytest.raises(UnsafeTargetError, match="target is 'lab' but the resource points at '10.0.0.7'"):
        require_destructive_opt_in("x", True, ["10.0.0.7"], ["10.0.0.7"], target="lab")
    with pytest.raises(UnsafeTargetError, match="not the lab and not in allow_list"):
        require_destructive_opt_in("x", True, ["db1"], target="db1")
    with pytest.raises(UnsafeTargetError, match="allow-listed but the resource points at 'db2'"):
        require_destructive_opt_in("x", True, ["db2"], ["db1"], target="db1")
    require_destructive_opt_in("x", True, ["db1"], ["db1"], target="db1")


# -- where a nemesis may act -----------------------------------------------------------------------------------


def _settings(tmp_path: Path) -> LabSettings:
    return LabSettings(lab_dir=tmp_path)


def test_a_lab_target_must_be_the_labs_own(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    assert "is not loopback" in str(lab.why_not_the_lab(Endpoint("redis", "10.1.1.1", s.redis_port), s))
    assert "is not this lab's redis (127.0.0.1:16379" in str(
        lab.why_not_the_lab(Endpoint("redis", "127.0.0.1", 6379), s)
    )
    # the right port, but no process of this lab on record: not the lab's either
    assert "not started by this lab" in str(lab.why_not_the_lab(Endpoint("redis", "127.0.0.1", s.redis_port), s))
    assert "runs no delta service" in str(lab.why_not_the_lab(Endpoint("delta"), s))
    with pytest.raises(NemesisError, match="nemesis redis_pause refused, touched nothing: .* set nemesis_command"):
        lab.require_lab("redis_pause", Endpoint("redis", "127.0.0.1", 6379), s)


def test_patroni_members_must_be_the_labs(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    wrong = [{"name": "pg0", "rest_port": 1, "pg_port": 2}]
    why = lab.why_not_the_lab(Endpoint("patroni", "127.0.0.1", s.haproxy_rw_port, {"members": wrong}), s)
    assert "are not this lab's" in str(why)
    with pytest.raises(UnsafeTargetError, match="signals to Patroni members refused"):
        lab.patroni_lab_control([("pg0", 1, 2)])


def test_service_restarter_refuses_up_front() -> None:
    with pytest.raises(UnsafeTargetError, match="set allow_destructive: true"):
        lab.service_restarter("rabbitmq", "127.0.0.1", 5672, False)
    with pytest.raises(UnsafeTargetError, match="only the lab's own rabbitmq is restarted"):
        lab.service_restarter("rabbitmq", "127.0.0.1", 1, True)


def _target(template: str = "", host: str = "127.0.0.1", allow: tuple[str, ...] = ()) -> Target:
    endpoint = Endpoint("redis", host, 6379)
    return Target("toy", {"redis": endpoint}, Supervisor("toy"), True, allow, template)


def test_a_command_template_is_checked_before_anything_runs() -> None:
    nemesis = nemeses.by_name("redis_pause")
    with pytest.raises(NemesisError, match="placeholders are"):
        nemesis.check(_target("ssh {host} fault {bogus}"))
    with pytest.raises(NemesisError, match="db.example is not loopback and not in allow_list"):
        nemesis.check(_target("ssh {host} fault {action}", host="db.example"))
    nemesis.check(_target("ssh {host} fault {action}", host="db.example", allow=("db.example",)))


def test_a_command_template_runs_each_action_without_a_shell(tmp_path: Path) -> None:
    log = tmp_path / "log"
    script = f"import sys; open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')"
    template = f"{sys.executable} -c {script!r} {{action}} {{nemesis}} {{service}} {{host}}:{{port}}"
    target = _target(template)
    nemesis = nemeses.by_name("redis_pause")
    nemesis.start(target)
    nemesis.stop(target)
    assert log.read_text().splitlines() == [
        "start redis_pause redis 127.0.0.1:6379",
        "stop redis_pause redis 127.0.0.1:6379",
    ]
    failing = f"{sys.executable} -c \"import sys; sys.stderr.write('password=hunter2 refused'); sys.exit(3)\""
    with pytest.raises(NemesisError, match="exited 3") as error:
        lab.run_template(failing, {"action": "start"})
    assert "hunter2" not in str(error.value)


# -- the schedule ----------------------------------------------------------------------------------------------


class Recorder(Nemesis):
    name = "recorder"
    services: ClassVar[frozenset[str]] = frozenset({"toy"})
    destructive = False
    description = "records what it was asked to do"

    def __init__(self, fail_start: bool = False, recover_after_s: float = 0.0) -> None:
        self.calls: list[str] = []
        self.fail_start, self.recover_after_s = fail_start, recover_after_s
        self.healed_at = 0.0

    def start(self, target: Target) -> str:
        self.calls.append("start")
        if self.fail_start:
            raise NemesisError("nothing to act on")
        return "did it"

    def stop(self, target: Target) -> str:
        self.calls.append("stop")
        self.healed_at = time.monotonic()
        return "undid it"

    def recovered(self, target: Target) -> bool:
        return time.monotonic() - self.healed_at >= self.recover_after_s


def _supervised(nemesis: Nemesis, at_s: float, for_s: float) -> tuple[Supervisor, NemesisSchedule]:
    supervisor = Supervisor(area="toy", checks=("conserved", RUN_COMPLETED, NO_LEFTOVERS))
    schedule = NemesisSchedule(nemesis, Target("toy", {}, supervisor), at_s, for_s)
    schedule.attach(supervisor)
    return supervisor, schedule


def _body(supervisor: Supervisor, seconds: float, passed: bool = False) -> ScenarioResult:
    with supervisor.phase("workload"):
        supervisor.record(Metric("ops", 1.0, "ops"))
        time.sleep(seconds)
    return ScenarioResult("toy", invariants=[Invariant("conserved", passed, "3 lost")])


def _checks(result: ScenarioResult) -> dict[str, Invariant]:
    return {inv.name: inv for inv in result.invariants}


def test_recovery_is_measured_after_heal() -> None:
    nemesis = Recorder(recover_after_s=0.2)
    supervisor, schedule = _supervised(nemesis, 0.05, 0.1)
    result = supervisor.run(lambda: _body(supervisor, 0.6))
    assert nemesis.calls == ["start", "stop"] and schedule.outcome == "acted"
    assert 0.15 <= result.metric("nemesis.recovered_after_s").value < 0.6
    assert "service usable again at" in _checks(result)["conserved"].detail
    assert result.environment["nemesis_outcome"] == "acted"


def test_a_short_workload_leaves_it_not_started_and_says_why() -> None:
    nemesis = Recorder()
    supervisor, schedule = _supervised(nemesis, 5.0, 1.0)
    result = supervisor.run(lambda: _body(supervisor, 0.05))
    assert nemesis.calls == [] and schedule.outcome == "not started"
    detail = _checks(result)["conserved"].detail
    assert "nemesis recorder not started: the workload phase ended before the start point 5.00 s" in detail


def test_an_area_without_a_workload_phase_is_named() -> None:
    supervisor, _ = _supervised(Recorder(), 0.0, 1.0)
    result = supervisor.run(lambda: ScenarioResult("toy", invariants=[Invariant("conserved", False, "x")]))
    assert "the area entered no 'workload' phase" in _checks(result)["conserved"].detail
    assert result.environment["nemesis_outcome"] == "not started"


def test_a_failed_start_is_recorded_and_still_healed() -> None:
    nemesis = Recorder(fail_start=True)
    supervisor, schedule = _supervised(nemesis, 0.0, 0.05)
    result = supervisor.run(lambda: _body(supervisor, 0.2))
    assert nemesis.calls == ["start", "stop"] and schedule.outcome == "failed to start"
    assert "failed to start (start: NemesisError: nothing to act on)" in _checks(result)["conserved"].detail


def test_a_crash_heals_before_anything_is_dropped() -> None:
    order: list[str] = []

    class Stopper(Recorder):
        def stop(self, target: Target) -> str:
            order.append("heal")
            return super().stop(target)

    supervisor, _ = _supervised(Stopper(), 0.0, 30.0)

    def crash() -> ScenarioResult:
        supervisor.created("table", "t", lambda: order.append("drop t"))
        with supervisor.phase("workload"):
            time.sleep(0.1)
            raise ConnectionError("server closed the connection")

    result = supervisor.run(crash)
    assert order == ["heal", "drop t"]
    assert "nemesis recorder started at" in _checks(result)[RUN_COMPLETED].detail


def test_first_cleanups_run_before_the_others_whenever_registered() -> None:
    supervisor, order = Supervisor(area="toy"), []
    supervisor.created("table", "t", lambda: order.append("drop t"))
    supervisor.on_cleanup("stop threads", lambda: order.append("stop threads"))
    supervisor.on_cleanup("heal", lambda: order.append("heal"), first=True)
    supervisor.run(lambda: ScenarioResult("toy"))
    assert order == ["heal", "stop threads", "drop t"]


# -- run_area: refusals before the workload --------------------------------------------------------------------


class _Config(AreaConfig):
    pass


def _area(resources: tuple[str, ...] = ("redis",)) -> Area:
    def run(config: _Config, ctx: RunContext) -> ScenarioResult:
        raise AssertionError("must not run")

    return Area(name="toy", description="toy", config=_Config, run=run, invariants=(), resources=resources)


class _Redis:
    host, port = "127.0.0.1", 6379


def test_a_nemesis_on_a_service_the_area_does_not_use_ends_the_step(tmp_path: Path) -> None:
    with pytest.raises(NemesisError, match="acts on \\['postgres'\\], which toy does not use"):
        run_area(_area(), _Config(nemesis="postgres_pause"), RunContext("r", {"redis": _Redis()}, tmp_path))


def test_a_destructive_nemesis_needs_the_opt_in(tmp_path: Path) -> None:
    with pytest.raises(UnsafeTargetError, match="toy.nemesis=redis_pause .* set allow_destructive: true"):
        run_area(_area(), _Config(nemesis="redis_pause"), RunContext("r", {"redis": _Redis()}, tmp_path))


def test_a_server_that_is_not_the_labs_is_refused_before_the_workload(tmp_path: Path) -> None:
    config = _Config(nemesis="redis_pause", allow_destructive=True)
    with pytest.raises(NemesisError, match="is not this lab's redis"):
        run_area(_area(), config, RunContext("r", {"redis": _Redis()}, tmp_path))


def test_a_destructive_area_is_guarded_by_the_kit(tmp_path: Path) -> None:
    destructive = Area(
        name="toy", description="toy", config=_Config, run=lambda c, x: ScenarioResult("toy"), invariants=(),
        resources=("redis",), destructive=True,
    )  # fmt: skip

    class Far:
        host, port = "10.9.9.9", 6379

    with pytest.raises(UnsafeTargetError, match="toy is destructive refused: '10.9.9.9'"):
        run_area(destructive, _Config(allow_destructive=True), RunContext("r", {"redis": Far()}, tmp_path))


# -- the chaos matrix ------------------------------------------------------------------------------------------


def _declared(name: str, resources: tuple[str, ...], destructive: bool = False) -> Area:
    return Area(
        name=name, description=name, config=_Config, run=lambda c, x: ScenarioResult(name), invariants=(),
        resources=resources, destructive=destructive,
    )  # fmt: skip


def test_the_matrix_crosses_areas_with_the_nemeses_of_their_services() -> None:
    areas = [_declared("cache", ("postgres", "redis")), _declared("etl", ("rabbitmq", "postgres")),
             _declared("failover", ("patroni",), destructive=True)]  # fmt: skip
    cells = chaos.cells(areas)
    assert all(c.area != "failover" for c in cells)
    assert Cell("cache", "redis_pause") in cells and Cell("etl", "rabbitmq_ttl_policy") in cells
    assert Cell("cache", "rabbitmq_pause") not in cells
    sample = chaos.sample(cells, prefer=("cache", "etl"))
    assert {c.nemesis for c in sample} == {c.nemesis for c in cells}  # every nemesis once
    assert {c.area for c in sample} == {"cache", "etl"} and len(sample) == len({c.nemesis for c in cells})
    assert all(c.area == "cache" for c in sample if "postgres" in c.nemesis)  # the preferred (cheaper) area
    assert chaos.sample(cells, prefer=("cache", "etl")) == sample
    only_etl_first = chaos.sample(cells, prefer=("etl", "cache"))
    assert {c.area for c in only_etl_first} == {"cache", "etl"}  # every area at least once


def _seen(passed: bool, detail: str = "", **facts: int) -> CheckSeen:
    return CheckSeen(passed, detail, facts)


def test_cell_verdicts() -> None:
    cell = Cell("etl", "rabbitmq_pause")
    declared = ("conserved", RUN_COMPLETED, NO_LEFTOVERS)
    ok = {RUN_COMPLETED: _seen(True), NO_LEFTOVERS: _seen(True)}
    acted = {"nemesis_outcome": "acted", "nemesis_did": "paused"}
    figures = {"jobs_per_s": 10.0, "nemesis.recovered_after_s": 0.4}
    passed = judge_cell(cell, declared, {**ok, "conserved": _seen(True, lost=0)}, figures, acted)
    assert passed.outcome == "passed" and passed.good and passed.lost == 0 and passed.recovered_after_s == 0.4
    named = judge_cell(
        cell, declared, {**ok, "conserved": _seen(False, "2 lost [nemesis rabbitmq_pause started at 1 s]", lost=2)},
        figures, acted,
    )  # fmt: skip
    assert named.outcome == "failed, nemesis named" and named.good and named.lost == 2
    unnamed = judge_cell(cell, declared, {**ok, "conserved": _seen(False, "2 lost")}, figures, acted)
    assert unnamed.outcome == "failed, nemesis not named" and not unnamed.good
    left = {**ok, NO_LEFTOVERS: _seen(False, "1 of 3 left behind: queue q"), "conserved": _seen(True)}
    assert judge_cell(cell, declared, left, figures, acted).outcome == "left things behind"
    missing = judge_cell(cell, declared, ok, figures, acted)
    assert missing.outcome == "checks missing" and not missing.good
    bare = judge_cell(cell, declared, {**ok, "conserved": _seen(True)}, {"host.load1": 1.0}, acted)
    assert bare.outcome == "no figures"
    not_started = judge_cell(cell, declared, {**ok, "conserved": _seen(True)}, figures, {})
    assert not_started.outcome == "not started" and "no 'workload' phase" in not_started.detail
    crash = {**ok, RUN_COMPLETED: _seen(False, "crashed in phase 'workload' [nemesis rabbitmq_pause started]"),
             "conserved": _seen(False, "not evaluated [nemesis rabbitmq_pause started]")}  # fmt: skip
    crashed = judge_cell(cell, declared, crash, figures, acted)
    assert crashed.outcome == "crashed" and crashed.good
    assert judge_cell(cell, declared, {}, {}, {}, step_failure="boom").outcome == "step failure"
    failed_start = {"nemesis_outcome": "failed to start", "nemesis_did": "start: NemesisError: nothing to act on"}
    could_not = judge_cell(cell, declared, {**ok, "conserved": _seen(True)}, figures, failed_start)
    assert could_not.outcome == "nemesis could not act" and "nothing to act on" in could_not.detail
    assert "| etl x rabbitmq_pause | passed |" in chaos.markdown_table([passed])


def test_a_zombie_counts_as_stopped_when_pausing() -> None:
    """A child that exits while its (paused) parent cannot reap it stays a zombie: never 'T', yet done."""
    import subprocess

    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 5
    while lab.process_state(child.pid) not in ("Z", "") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lab.wait_states([child.pid], stopped=True, timeout_s=0.5) == []
    child.wait()
