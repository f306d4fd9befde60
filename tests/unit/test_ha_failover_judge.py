"""Judging one failover run: lost-write strictness follows synchronous_mode, the SLO needs recovery."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from assets.ha_failover.config import FailoverConfig
from assets.ha_failover.faults import Mode
from assets.ha_failover.monitor import Sample
from assets.ha_failover.recovery import ClusterState, Recovery
from assets.ha_failover.scenario import (
    NO_SPLIT_BRAIN,
    NO_TWO_WRITABLE,
    RECOVERY_SLO,
    ZERO_LOST,
    Observed,
    judge,
)
from regression_pipelines.kit.checkers.ledger import LedgerVerdict
from resources.patroni.client import ClusterTarget, Member

TARGET = ClusterTarget("127.0.0.1", (Member("pg0", 1, 2), Member("pg1", 3, 4)), 5, 6, "postgres", "pw")


def run(lost: list[int], synchronous: bool, expect_zero_loss: bool, healthy: bool = True, samples: list | None = None):
    config = FailoverConfig(mode=Mode.SWITCHOVER.value, expect_zero_loss=expect_zero_loss)
    obs = Observed("pg0", 1, {"synchronous_mode": synchronous}, fault_at=10.0, heal_at=10.0)
    obs.verdict = LedgerVerdict(attempted=10, acknowledged=9, failed=1, unknown=0, lost=lost, outage_s=2.0)
    state = ClusterState("pg1", ("pg0",), 2)
    obs.recovery = Recovery(15.0, state, 12.0, 12.5) if healthy else Recovery(None, state, None, None)
    monitor = SimpleNamespace(samples=samples or [Sample(9.0, ("pg0",), ("pg0",)), Sample(12.0, ("pg1",), ("pg1",))])
    result = judge(TARGET, config, obs, monitor, "test")  # type: ignore[arg-type]
    return {inv.name: inv.passed for inv in result.invariants}, result


@pytest.mark.parametrize(
    ("synchronous", "expect_zero_loss", "passes"),
    [(False, True, False), (False, False, True), (True, False, False), (True, True, False)],
)
def test_lost_writes_are_strict_in_synchronous_mode(synchronous: bool, expect_zero_loss: bool, passes: bool) -> None:
    verdicts, _ = run([3], synchronous, expect_zero_loss)
    assert verdicts[ZERO_LOST] is passes


def test_clean_run_passes_and_records_mode_and_leader_change() -> None:
    verdicts, result = run([], False, True)
    assert all(verdicts.values())
    assert result.environment["synchronous_mode"] is False and result.environment["leader_changed"] is True
    assert result.metric("failover.rejoin_s").value == 2.0
    assert result.metric("failover.timeline_change").value == 1


def test_never_healthy_fails_the_slo_even_with_a_short_outage() -> None:
    verdicts, _ = run([], False, True, healthy=False)
    assert verdicts[RECOVERY_SLO] is False


def test_two_writable_members_fail_the_direct_probe_not_the_haproxy_check() -> None:
    samples = [Sample(11.0, ("pg1",), ("pg0", "pg1"))]
    verdicts, _ = run([], False, True, samples=samples)
    assert verdicts[NO_TWO_WRITABLE] is False and verdicts[NO_SPLIT_BRAIN] is True
