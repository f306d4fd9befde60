"""ha_failover against the real lab: every mode runs, figures are recorded, the lab is left healthy.

Failing twins: an orphaned old primary accepting a direct write is caught by the split-brain probe, a
deleted acknowledged row fails the lost-writes check, a row no client sent fails the phantom check, and a
real outage longer than the SLO fails the recovery check. Refusals touch nothing.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from assets.ha_failover import ha_failover
from assets.ha_failover.failover import (
    FAILOVER_INVARIANTS,
    NO_PHANTOMS,
    NO_TWO_WRITABLE,
    RECOVERY_SLO,
    ZERO_LOST,
    FailoverConfig,
    run_failover,
)
from assets.ha_failover.faults import Mode, PatroniRestInjector
from assets.ha_failover.observe import writable_members
from assets.ha_failover.recovery import reinit_stranded_replicas, wait_healthy
from regression_pipelines.errors import UnsafeTargetError
from regression_pipelines.lab import patroni_members
from regression_pipelines.lab.settings import LabSettings
from resources.patroni import PatroniResource

pytestmark = [pytest.mark.lab, pytest.mark.destructive]


def healthy_leader(resource: PatroniResource) -> tuple[str, int | None]:
    """Wait for one leader + all streaming; a stranded replica is repaired (lab left usable) but fails the test."""
    state = wait_healthy(resource.target(), timeout_s=90)
    if state is None:
        stranded = reinit_stranded_replicas(resource.target())
        pytest.fail(f"lab cluster not healthy; reinitialized stranded replicas {stranded}")
    assert state.leader is not None
    return state.leader, state.timeline


def run_asset(resource: PatroniResource, config: dict, home: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [ha_failover],
        instance=dg.DagsterInstance.ephemeral(tempdir=str(home)),
        resources={"patroni": resource},
        run_config={"ops": {"ha_failover": {"config": config}}},
        raise_on_error=False,
    )


# pause here is 5 s (< ttl): a frozen leader, no failover. Past ttl: see the test below.
@pytest.mark.parametrize("mode", ["switchover", "kill_patroni_postmaster", "kill_postmaster", "pause", "kill_patroni"])
def test_each_mode_runs_records_figures_and_leaves_the_lab_healthy(lab: LabSettings, mode: str, tmp_path: Path) -> None:
    resource = PatroniResource.for_lab(lab)
    healthy_leader(resource)
    result = run_asset(resource, {"mode": mode, "allow_destructive": True, "pause_seconds": 5.0}, tmp_path)
    assert result.success, result.all_events
    metadata = result.asset_materializations_for_node("ha_failover")[0].metadata
    for key in ("failover.outage_s", "failover.lost_acknowledged", "failover.time_to_leader_s", "failover.recovery_s"):
        assert "metric/" + key in metadata, key
    assert metadata["env/mode"].value == mode
    assert metadata["env/synchronous_mode"].value in ("True", "False")
    assert Path(metadata["env/history_jsonl"].value).read_text().count("\n") > 10
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert set(checks) == set(FAILOVER_INVARIANTS)
    assert checks[ZERO_LOST] and checks["no_split_brain"] and checks["recovery_within_slo"]
    if mode == "kill_patroni":  # no watchdog: the orphaned primary keeps accepting writes (measured)
        assert checks[NO_TWO_WRITABLE] is False
    if mode in ("switchover", "kill_patroni_postmaster"):
        assert metadata["env/leader_changed"].value == "True"
        assert "metric/failover.rejoin_s" in metadata
    if mode in ("kill_postmaster", "pause"):
        assert metadata["env/leader_changed"].value == "False"
    healthy_leader(resource)


def test_pause_past_ttl_runs_and_records_whatever_patroni_does(lab: LabSettings, tmp_path: Path) -> None:
    """Leader frozen 20 s (ttl 10 s). Patroni 3.0.2 + etcd3 sometimes lets the resumed old leader overwrite
    the new leader key (patroni PR #2689, fixed in 3.0.3): writes acknowledged by the new leader are lost and
    it is stranded on a newer timeline. The run must finish, record the figures and say so in its checks."""
    resource = PatroniResource.for_lab(lab)
    healthy_leader(resource)
    result = run_asset(resource, {"mode": "pause", "allow_destructive": True, "pause_seconds": 20.0}, tmp_path)
    assert result.success, result.all_events
    metadata = result.asset_materializations_for_node("ha_failover")[0].metadata
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    lost = metadata["metric/failover.lost_acknowledged"].value
    assert checks[ZERO_LOST] == (lost == 0)
    reinit_stranded_replicas(resource.target())  # leave the lab as we found it, even after the bug
    healthy_leader(resource)


def test_orphaned_old_primary_accepting_a_direct_write_is_split_brain(lab: LabSettings) -> None:
    resource = PatroniResource.for_lab(lab)
    target = resource.target()
    old, _ = healthy_leader(resource)
    patroni = patroni_members.patroni_pid(lab, old)
    assert patroni is not None
    try:
        os.kill(patroni, signal.SIGKILL)  # Patroni only: its postmaster stays up as a primary
        deadline = time.monotonic() + 60
        new = None
        while time.monotonic() < deadline and new is None:
            for m in target.members:
                if m.name != old and target.rest(m, "/primary")[0] == 200:
                    new = m.name
            time.sleep(0.3)
        assert new is not None, "no new leader within 60 s"
        with target.connect(target.member(old).pg_port) as conn:  # the write a stray client could make
            conn.execute("CREATE TABLE IF NOT EXISTS ha_orphan_write (id int)")
            conn.execute("INSERT INTO ha_orphan_write VALUES (1)")
        writable = writable_members(target)
        assert old in writable and new in writable, writable
    finally:
        patroni_members.start_member(lab, old, wait=60)  # demotes and rewinds the orphan
        healthy_leader(resource)
    with target.connect(target.rw_port) as conn:
        conn.execute("DROP TABLE IF EXISTS ha_orphan_write")


def test_deleted_acknowledged_row_fails_the_lost_writes_check(lab: LabSettings, tmp_path: Path) -> None:
    resource = PatroniResource.for_lab(lab)
    healthy_leader(resource)
    target = resource.checked_target()

    def delete_first_acknowledged(target, table: str) -> None:  # noqa: ANN001 - test hook
        with target.connect(target.rw_port) as conn:
            conn.execute(f"DELETE FROM {table} WHERE id = (SELECT min(id) FROM {table})")

    config = FailoverConfig(mode=Mode.SWITCHOVER, run_id=uuid.uuid4().hex, output_dir=tmp_path)
    result = run_failover(target, config, PatroniRestInjector(target), tamper=delete_first_acknowledged)
    lost = result.invariant(ZERO_LOST)
    assert not lost.passed and lost.facts["lost"] == 1
    assert result.metric("failover.lost_acknowledged").value == 1
    healthy_leader(resource)


def test_row_never_acknowledged_fails_the_phantom_check(lab: LabSettings, tmp_path: Path) -> None:
    resource = PatroniResource.for_lab(lab)
    healthy_leader(resource)
    target = resource.checked_target()

    def insert_unacknowledged(target, table: str) -> None:  # noqa: ANN001 - test hook
        with target.connect(target.rw_port) as conn:  # a write no client ever sent: a phantom
            conn.execute(f"INSERT INTO {table} (id) VALUES (987654321)")

    config = FailoverConfig(mode=Mode.SWITCHOVER, run_id=uuid.uuid4().hex, output_dir=tmp_path)
    result = run_failover(target, config, PatroniRestInjector(target), tamper=insert_unacknowledged)
    assert not result.invariant(NO_PHANTOMS).passed
    assert result.metric("failover.phantom_writes").value == 1
    assert result.invariant(ZERO_LOST).passed
    healthy_leader(resource)


def test_outage_longer_than_the_slo_fails_the_recovery_check(lab: LabSettings, tmp_path: Path) -> None:
    resource = PatroniResource.for_lab(lab)
    healthy_leader(resource)
    target = resource.checked_target()
    # A real switchover interrupts writes for about 2 s; an SLO of 0.2 s must be breached.
    config = FailoverConfig(mode=Mode.SWITCHOVER, run_id=uuid.uuid4().hex, output_dir=tmp_path, recovery_slo_s=0.2)
    result = run_failover(target, config, PatroniRestInjector(target))
    slo = result.invariant(RECOVERY_SLO)
    assert not slo.passed and result.metric("failover.outage_s").value > 0.2, slo.detail
    healthy_leader(resource)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"mode": "kill_postmaster"}, "allow_destructive: true"),
        ({"mode": "kill_postmaster", "allow_destructive": True, "target": "db1.prod"}, "not in allow_list"),
    ],
)
def test_refusals_touch_nothing(lab: LabSettings, config: dict, message: str, tmp_path: Path) -> None:
    resource = PatroniResource.for_lab(lab)
    leader, timeline = healthy_leader(resource)
    pids = patroni_members.member_pids(lab)
    result = run_asset(resource, config, tmp_path)
    assert not result.success
    errors = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert errors
    text = errors[0].event_specific_data.error.to_string()
    assert message in text and UnsafeTargetError.__name__ in text
    assert healthy_leader(resource) == (leader, timeline)
    assert patroni_members.member_pids(lab) == pids
