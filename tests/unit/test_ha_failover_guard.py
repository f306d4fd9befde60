"""Opt-in refusals, fault plumbing and leader timelines, without touching any cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from assets.ha_failover import AREA
from assets.ha_failover.faults import (
    CommandTemplateInjector,
    FaultError,
    Mode,
    PatroniRestInjector,
    choose_injector,
)
from assets.ha_failover.monitor import Sample, leader_timeline, split_brain_rounds
from regression_pipelines.errors import UnsafeTargetError
from regression_pipelines.kit.guard import require_destructive_opt_in
from resources.patroni import PatroniResource
from resources.patroni.client import ClusterTarget, Member
from tests.areas import materialize_area, skip_reasons, step_failure

TARGET = ClusterTarget("127.0.0.1", (Member("pg0", 1, 2), Member("pg1", 3, 4)), 5, 6, "postgres", "pw")


def _guard(allow_destructive: bool, target: str, allow_list: list[str], host: str) -> None:
    """The kit's one guard, as run_area applies it to this area (its `target` included)."""
    require_destructive_opt_in("ha_failover is destructive", allow_destructive, [host], allow_list, target)


def test_missing_opt_in_refuses() -> None:
    with pytest.raises(UnsafeTargetError, match="allow_destructive: true"):
        _guard(False, "lab", [], "127.0.0.1")


def test_lab_target_must_be_loopback() -> None:
    with pytest.raises(UnsafeTargetError, match="not loopback"):
        _guard(True, "lab", [], "10.0.0.7")


def test_non_allow_listed_target_refuses() -> None:
    with pytest.raises(UnsafeTargetError, match="not in allow_list"):
        _guard(True, "db1.prod", [], "db1.prod")


def test_allow_listed_target_must_match_the_resource() -> None:
    with pytest.raises(UnsafeTargetError, match="points at"):
        _guard(True, "db1.stage", ["db1.stage"], "db1.prod")
    _guard(True, "db1.stage", ["db1.stage"], "db1.stage")
    _guard(True, "lab", [], "127.0.0.1")


def test_the_asset_refuses_a_foreign_target_before_contacting_it(tmp_path: Path) -> None:
    resource = PatroniResource(host="10.0.0.7", rest_ports=[1, 2, 3], pg_ports=[4, 5, 6])
    result = materialize_area(AREA, tmp_path, resources={"patroni": resource}, config={"allow_destructive": True})
    assert not result.success and "target is 'lab' but the resource points at '10.0.0.7'" in step_failure(result)


def test_asset_without_opt_in_is_skipped_before_contacting_anything(tmp_path: Path) -> None:
    # The resource points at closed ports: reaching any of them would give a ResourceConfigError instead.
    resource = PatroniResource(rest_ports=[1, 2, 3], pg_ports=[4, 5, 6], haproxy_rw_port=7, haproxy_ro_port=8)
    result = materialize_area(AREA, tmp_path, resources={"patroni": resource})
    assert result.success and result.get_asset_check_evaluations() == []
    assert result.get_asset_materialization_events() == []
    assert "set allow_destructive: true" in skip_reasons(result)["ha_failover"]


def test_choose_injector() -> None:
    assert isinstance(choose_injector(Mode.SWITCHOVER, TARGET), PatroniRestInjector)
    assert isinstance(choose_injector(Mode.PAUSE, TARGET, "echo {action}"), CommandTemplateInjector)
    with pytest.raises(FaultError, match="command_template"):
        choose_injector(Mode.KILL_POSTMASTER, TARGET)


def test_command_template_runs_each_action_without_a_shell(tmp_path) -> None:
    log = tmp_path / "log"
    injector = CommandTemplateInjector(f"sh -c 'echo $0 $1 >> {log}' {{action}} {{member}}", TARGET)
    injector.inject(Mode.KILL_PATRONI_POSTMASTER, "pg0")
    injector.heal(Mode.KILL_PATRONI_POSTMASTER, "pg0")
    assert log.read_text().split("\n")[:3] == ["kill_patroni pg0", "kill_postmaster pg0", "start_patroni pg0"]
    failing = CommandTemplateInjector("sh -c 'echo password=hunter2 >&2; exit 3'", TARGET)
    with pytest.raises(FaultError, match="exited 3") as err:
        failing.inject(Mode.PAUSE, "pg0")
    assert "hunter2" not in str(err.value)


def test_leader_timeline_and_split_brain_rounds() -> None:
    samples = [
        Sample(9.0, ("pg0",), ("pg0",)),
        Sample(10.5, (), ()),
        Sample(11.0, (), ("pg0",)),
        Sample(12.0, ("pg1",), ("pg0", "pg1")),
    ]
    timeline = leader_timeline(samples, "pg0", fault_at=10.0)
    assert timeline.time_to_leader_s == 2.0 and timeline.new_leader == "pg1" and timeline.leader_lost
    assert [s.at for s in split_brain_rounds(samples)] == [12.0]
    steady = leader_timeline([Sample(11.0, ("pg0",), ("pg0",))], "pg0", fault_at=10.0)
    assert steady.time_to_leader_s == 0.0 and not steady.leader_lost
