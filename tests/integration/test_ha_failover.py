"""ha_failover against the real lab: every mode runs, figures are recorded, the lab is left healthy.

Failing twins: an orphaned old primary accepting a direct write is caught by the split-brain probe, a
deleted acknowledged row fails the lost-writes check, a row no client sent fails the phantom check, and a
real outage longer than the SLO fails the recovery check. Refusals touch nothing.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from assets.ha_failover import AREA
from assets.ha_failover.config import FailoverConfig
from assets.ha_failover.faults import Mode, PatroniRestInjector
from assets.ha_failover.ledger import ledger_table_name
from assets.ha_failover.recovery import reinit_stranded_replicas, wait_healthy
from assets.ha_failover.scenario import (
    FAILOVER_INVARIANTS,
    NO_PHANTOMS,
    NO_TWO_WRITABLE,
    RECOVERY_SLO,
    ZERO_LOST,
    RunPlace,
    run_failover,
)
from regression_pipelines.kit.supervisor import NO_LEFTOVERS, RUN_COMPLETED, Supervisor
from regression_pipelines.lab import patroni_members
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.measure import NO_OPERATION_ERRORS
from regression_pipelines.resources_config import lab_patroni
from regression_pipelines.results import ScenarioResult, metric_values
from resources.patroni import PatroniResource
from resources.patroni.view import writable_members
from tests.areas import materialize_area, skip_reasons, step_failure

pytestmark = [pytest.mark.lab, pytest.mark.destructive]


def place(tmp_path: Path) -> RunPlace:
    return RunPlace(uuid.uuid4().hex, tmp_path)


def supervised(target, config: FailoverConfig, run: RunPlace, tamper=None) -> ScenarioResult:  # noqa: ANN001
    """One switchover run under a supervisor, as the kit runs it (cleanup and no_leftovers included)."""
    sup = Supervisor(AREA.name, checks=AREA.checks)
    return sup.run(lambda: run_failover(target, config, PatroniRestInjector(target), run, sup, tamper))


def healthy_leader(resource: PatroniResource) -> tuple[str, int | None]:
    """Wait for one leader + all streaming; a stranded replica is repaired (lab left usable) but fails the test."""
    state = wait_healthy(resource.target(), timeout_s=90)
    if state is None:
        stranded = reinit_stranded_replicas(resource.target())
        pytest.fail(f"lab cluster not healthy; reinitialized stranded replicas {stranded}")
    assert state.leader is not None
    return state.leader, state.timeline


def run_asset(resource: PatroniResource, config: dict, home: Path) -> dg.ExecuteInProcessResult:
    return materialize_area(AREA, home, resources={"patroni": resource}, config=config)


# pause here is 5 s (< ttl): a frozen leader, no failover. Past ttl: see the test below.
@pytest.mark.parametrize("mode", ["switchover", "kill_patroni_postmaster", "kill_postmaster", "pause", "kill_patroni"])
def test_each_mode_runs_records_figures_and_leaves_the_lab_healthy(lab: LabSettings, mode: str, tmp_path: Path) -> None:
    resource = lab_patroni(lab)
    healthy_leader(resource)
    result = run_asset(resource, {"mode": mode, "allow_destructive": True, "pause_seconds": 5.0}, tmp_path)
    assert result.success, result.all_events
    metadata = result.asset_materializations_for_node("ha_failover")[0].metadata
    for key in ("failover.outage_s", "failover.lost_acknowledged", "failover.time_to_leader_s", "failover.recovery_s"):
        assert key in metric_values(metadata), key
    assert metadata["env/mode"].value == mode
    assert metadata["env/synchronous_mode"].value in ("True", "False")
    assert Path(metadata["env/history_jsonl"].value).read_text().count("\n") > 10
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert set(checks) == {
        *FAILOVER_INVARIANTS,
        NO_OPERATION_ERRORS,
        RUN_COMPLETED,
        NO_LEFTOVERS,
        "performance_regression",
    }
    assert checks[RUN_COMPLETED] and checks[NO_LEFTOVERS], "phases completed; the ledger table is gone"
    assert checks[NO_OPERATION_ERRORS], "no write failed outside the fault window"
    assert checks["no_split_brain"] and checks["recovery_within_slo"]
    lost = metric_values(metadata)["failover.lost_acknowledged"].value
    assert checks[ZERO_LOST] == (lost == 0)
    if mode == "kill_patroni_postmaster" and metadata["env/synchronous_mode"].value == "False":
        # Asynchronous replication: a hard kill may lose the leader's last acknowledged commits (seen once in
        # CI: 1 row); Patroni bounds it by maximum_lag_on_failover. The check must say so, never hide it.
        assert lost <= 5
    else:
        assert checks[ZERO_LOST]
    if mode == "kill_patroni":  # no watchdog: the orphaned primary keeps accepting writes (measured)
        assert checks[NO_TWO_WRITABLE] is False
    if mode in ("switchover", "kill_patroni_postmaster"):
        assert metadata["env/leader_changed"].value == "True"
        assert "failover.rejoin_s" in metric_values(metadata)
    if mode in ("kill_postmaster", "pause"):
        assert metadata["env/leader_changed"].value == "False"
    healthy_leader(resource)


def test_pause_past_ttl_runs_and_records_whatever_patroni_does(lab: LabSettings, tmp_path: Path) -> None:
    """Leader frozen 20 s (ttl 10 s). Patroni 3.0.2 + etcd3 sometimes lets the resumed old leader overwrite
    the new leader key (patroni PR #2689, fixed in 3.0.3): writes acknowledged by the new leader are lost and
    it is stranded on a newer timeline. The run must finish, record the figures and say so in its checks."""
    resource = lab_patroni(lab)
    healthy_leader(resource)
    result = run_asset(resource, {"mode": "pause", "allow_destructive": True, "pause_seconds": 20.0}, tmp_path)
    assert result.success, result.all_events
    metadata = result.asset_materializations_for_node("ha_failover")[0].metadata
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    lost = metric_values(metadata)["failover.lost_acknowledged"].value
    assert checks[ZERO_LOST] == (lost == 0)
    reinit_stranded_replicas(resource.target())  # leave the lab as we found it, even after the bug
    healthy_leader(resource)


def test_orphaned_old_primary_accepting_a_direct_write_is_split_brain(lab: LabSettings) -> None:
    resource = lab_patroni(lab)
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
    resource = lab_patroni(lab)
    healthy_leader(resource)
    target = resource.checked_target()

    def delete_first_acknowledged(target, table: str) -> None:  # noqa: ANN001 - test hook
        with target.connect(target.rw_port) as conn:
            conn.execute(f"DELETE FROM {table} WHERE id = (SELECT min(id) FROM {table})")

    config = FailoverConfig(mode=Mode.SWITCHOVER.value)
    result = supervised(target, config, place(tmp_path), tamper=delete_first_acknowledged)
    lost = result.invariant(ZERO_LOST)
    assert not lost.passed and lost.facts["lost"] == 1
    assert result.metric("failover.lost_acknowledged").value == 1
    healthy_leader(resource)


def test_row_never_acknowledged_fails_the_phantom_check(lab: LabSettings, tmp_path: Path) -> None:
    resource = lab_patroni(lab)
    healthy_leader(resource)
    target = resource.checked_target()

    def insert_unacknowledged(target, table: str) -> None:  # noqa: ANN001 - test hook
        with target.connect(target.rw_port) as conn:  # a write no client ever sent: a phantom
            conn.execute(f"INSERT INTO {table} (id) VALUES (987654321)")

    config = FailoverConfig(mode=Mode.SWITCHOVER.value)
    result = supervised(target, config, place(tmp_path), tamper=insert_unacknowledged)
    assert not result.invariant(NO_PHANTOMS).passed
    assert result.metric("failover.phantom_writes").value == 1
    assert result.invariant(ZERO_LOST).passed
    healthy_leader(resource)


def test_outage_longer_than_the_slo_fails_the_recovery_check(lab: LabSettings, tmp_path: Path) -> None:
    resource = lab_patroni(lab)
    healthy_leader(resource)
    target = resource.checked_target()
    # A real switchover interrupts writes for about 2 s; an SLO of 0.2 s must be breached.
    config = FailoverConfig(mode=Mode.SWITCHOVER.value, recovery_slo_s=0.2)
    result = supervised(target, config, place(tmp_path))
    slo = result.invariant(RECOVERY_SLO)
    assert not slo.passed and result.metric("failover.outage_s").value > 0.2, slo.detail
    healthy_leader(resource)


def test_without_opt_in_the_area_is_skipped_and_touches_nothing(lab: LabSettings, tmp_path: Path) -> None:
    resource = lab_patroni(lab)
    leader, timeline = healthy_leader(resource)
    pids = patroni_members.member_pids(lab)
    result = run_asset(resource, {"mode": "kill_postmaster"}, tmp_path)
    assert result.success and result.get_asset_check_evaluations() == []
    assert result.get_asset_materialization_events() == []  # skipped is not a (green) materialization
    assert "set allow_destructive: true" in skip_reasons(result)["ha_failover"]
    assert healthy_leader(resource) == (leader, timeline)
    assert patroni_members.member_pids(lab) == pids


def test_a_target_outside_the_allow_list_fails_the_step_and_touches_nothing(lab: LabSettings, tmp_path: Path) -> None:
    resource = lab_patroni(lab)
    leader, timeline = healthy_leader(resource)
    pids = patroni_members.member_pids(lab)
    result = run_asset(resource, {"mode": "kill_postmaster", "allow_destructive": True, "target": "db1.prod"}, tmp_path)
    assert not result.success
    text = step_failure(result)
    assert "not in allow_list" in text and "did nothing" in text
    assert healthy_leader(resource) == (leader, timeline)
    assert patroni_members.member_pids(lab) == pids


def test_writes_failing_on_a_healthy_cluster_fail_no_operation_errors(lab: LabSettings, tmp_path: Path) -> None:
    """Failing twin of no_operation_errors: the ledger table is locked before the fault, so writes time out on a
    healthy cluster (errors inside the fault window are the outage, these are not)."""
    resource = lab_patroni(lab)
    healthy_leader(resource)
    target = resource.checked_target()
    run = place(tmp_path)
    table = ledger_table_name(run.run_id)
    held = threading.Event()

    def lock_the_ledger() -> None:
        with target.connect(target.rw_port, statement_timeout_ms=20000) as conn:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0]:
                time.sleep(0.05)
            with conn.transaction():
                conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
                held.set()
                time.sleep(2.6)  # past the writer's 2 s statement timeout

    locker = threading.Thread(target=lock_the_ledger, daemon=True)
    locker.start()
    config = FailoverConfig(mode=Mode.SWITCHOVER.value, baseline_s=4.0)
    result = supervised(target, config, run)
    locker.join(30)
    assert held.is_set()
    failed = {inv.name for inv in result.invariants if not inv.passed}
    assert failed == {NO_OPERATION_ERRORS}, [(i.name, i.detail) for i in result.invariants]
    assert "statement timeout" in result.invariant(NO_OPERATION_ERRORS).detail
    assert result.metric("error_rate").value > 0
    healthy_leader(resource)
