"""ha_health against the real lab cluster, and its failing twins: a stopped replica is not streaming; a frozen
Patroni fails the operation-error check.

Run on your own lab: REGRESS_LAB_PORT_OFFSET=2000 REGRESS_LAB_DIR=/tmp/lab-ha pytest tests/integration/test_ha_*.py
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import dagster as dg
import pytest

from assets.ha_failover.recovery import cluster_state, wait_healthy
from assets.ha_health import AREA
from assets.ha_health.scenario import ALL_REPLICAS_STREAMING, HealthConfig, run_health
from regression_pipelines.lab import patroni_members
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.measure import NO_OPERATION_ERRORS
from regression_pipelines.resources_config import lab_patroni
from regression_pipelines.results import metric_values
from tests.areas import materialize_area

pytestmark = pytest.mark.lab


def checks_by_name(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_health_asset_passes_on_a_healthy_cluster(lab: LabSettings, tmp_path: Path) -> None:
    resource = lab_patroni(lab)
    assert wait_healthy(resource.target(), timeout_s=60) is not None
    result = materialize_area(AREA, tmp_path, resources={"patroni": resource})
    assert result.success
    assert checks_by_name(result) == {
        "single_leader": True,
        "all_replicas_streaming": True,
        "replication_lag_within_limit": True,
        "routing_correct": True,
        "no_operation_errors": True,
        "run_completed": True,
        "no_leftovers": True,
        "performance_regression": True,
    }
    metadata = result.asset_materializations_for_node("ha_health")[0].metadata
    metrics = metric_values(metadata)  # name -> value, whatever unit and settings the key carries
    assert metrics["health.replicas_streaming"].value == 2
    assert "health.lag_bytes_max" in metrics and "health.rw_route_latency_s" in metrics
    assert metrics["phase.workload_s"].value > 0 and "phase.judge_s" in metrics
    assert metadata["env/synchronous_mode"].value in ("True", "False")
    for route in ("rw", "leader"):  # harness and pgbench on the same route, side by side
        assert metrics[f"health.{route}_select_p50_ms"].value > 0
        assert metrics[f"calibration.pgbench_{route}_select_p50_ms"].value > 0
        assert metrics[f"calibration.health.{route}_select_p50_ratio"].value > 0
    assert lab.patroni_superuser_password not in repr(dict(metadata))


@pytest.mark.destructive
def test_stopped_replica_fails_the_streaming_check(lab: LabSettings) -> None:
    target = lab_patroni(lab).target()
    before = wait_healthy(target, timeout_s=60)
    assert before is not None and before.leader is not None
    replica = next(m.name for m in target.members if m.name != before.leader)
    patroni, postmaster = patroni_members.patroni_pid(lab, replica), patroni_members.postmaster_pid(lab, replica)
    assert patroni and postmaster
    try:
        os.kill(patroni, signal.SIGKILL)  # so nothing restarts it behind the test's back
        os.kill(postmaster, signal.SIGKILL)
        for _ in range(50):  # the walsender notices the closed connection within moments
            if replica not in cluster_state(target).streaming:
                break
            time.sleep(0.2)
        result = run_health(target, HealthConfig())
        streaming = result.invariant(ALL_REPLICAS_STREAMING)
        assert not streaming.passed
        assert replica in streaming.detail
    finally:
        patroni_members.start_member(lab, replica, wait=60)
        assert wait_healthy(target, timeout_s=90) is not None


@pytest.mark.destructive
def test_member_whose_rest_api_stops_answering_fails_no_operation_errors(lab: LabSettings) -> None:
    """Failing twin of no_operation_errors: a replica's Patroni frozen (SIGSTOP) answers no probe, while its
    PostgreSQL keeps streaming and the leader is unaffected, so only the error check fails."""
    target = lab_patroni(lab).target()
    before = wait_healthy(target, timeout_s=60)
    assert before is not None and before.leader is not None
    replica = next(m.name for m in target.members if m.name != before.leader)
    patroni = patroni_members.patroni_pid(lab, replica)
    assert patroni
    os.kill(patroni, signal.SIGSTOP)
    try:
        result = run_health(target, HealthConfig())
    finally:
        os.kill(patroni, signal.SIGCONT)
    failed = {inv.name for inv in result.invariants if not inv.passed}
    assert failed == {NO_OPERATION_ERRORS}, [(i.name, i.detail) for i in result.invariants]
    assert f"{replica}: Patroni REST API did not answer" in result.invariant(NO_OPERATION_ERRORS).detail
    assert result.metric("error_rate").value > 0
    assert wait_healthy(target, timeout_s=60) is not None
