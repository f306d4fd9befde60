"""Health invariants judged on hand-made observations (the integration tests judge real clusters)."""

from __future__ import annotations

import pytest

from assets.ha_health.scenario import (
    ALL_REPLICAS_STREAMING,
    LAG_WITHIN_LIMIT,
    ROUTING_CORRECT,
    SINGLE_LEADER,
    HealthConfig,
    HealthObservation,
    evaluate_health,
)
from regression_pipelines.errors import ResourceConfigError
from resources.patroni import PatroniResource
from resources.patroni.view import MemberView, ReplicaView, RouteView


def member(name: str, leader: bool, in_recovery: bool | None = None) -> MemberView:
    rec = (not leader) if in_recovery is None else in_recovery
    return MemberView(name, leader, "master" if leader else "replica", "running", 1, rec)


def healthy() -> HealthObservation:
    return HealthObservation(
        members=[member("pg0", True), member("pg1", False), member("pg2", False)],
        replication=[ReplicaView("pg1", "streaming", 0, 0), ReplicaView("pg2", "streaming", 128, 0.01)],
        rw=RouteView(15000, "pg0", False, True, False, 0.01),
        ro=[RouteView(15001, "pg1", True, False, True, 0.01), RouteView(15001, "pg2", True, False, True, 0.02)],
    )


def passed(obs: HealthObservation, config: HealthConfig | None = None) -> dict[str, bool]:
    result = evaluate_health(obs, config or HealthConfig())
    return {inv.name: inv.passed for inv in result.invariants}


def test_healthy_cluster_passes_everything_and_reports_lag() -> None:
    result = evaluate_health(healthy(), HealthConfig())
    assert result.all_invariants_passed
    assert result.metric("health.lag_bytes_max").value == 128
    assert result.metric("health.replicas_streaming").value == 2


def test_rest_and_sql_disagreeing_is_not_a_single_leader() -> None:
    obs = healthy()
    obs.members[1] = member("pg1", False, in_recovery=False)  # REST says replica, SQL says writable
    assert passed(obs)[SINGLE_LEADER] is False


def test_two_rest_leaders_fail() -> None:
    obs = healthy()
    obs.members[2] = member("pg2", True)
    assert passed(obs)[SINGLE_LEADER] is False


def test_missing_replica_fails_streaming_and_lag() -> None:
    obs = healthy()
    obs.replication = obs.replication[:1]
    verdict = passed(obs)
    assert verdict[ALL_REPLICAS_STREAMING] is False
    assert verdict[LAG_WITHIN_LIMIT] is False


def test_catchup_state_is_not_streaming() -> None:
    obs = healthy()
    obs.replication[0] = ReplicaView("pg1", "catchup", 0, 0)
    assert passed(obs)[ALL_REPLICAS_STREAMING] is False


def test_lag_over_limit_fails() -> None:
    assert passed(healthy(), HealthConfig(maximum_lag_bytes=100))[LAG_WITHIN_LIMIT] is False


def test_write_accepted_on_read_only_port_fails_routing() -> None:
    obs = healthy()
    obs.ro[0] = RouteView(15001, "pg0", False, True, False, 0.01)
    assert passed(obs)[ROUTING_CORRECT] is False


def test_rw_port_on_replica_fails_routing() -> None:
    obs = healthy()
    obs.rw = RouteView(15000, "pg1", True, False, True, 0.01)
    assert passed(obs)[ROUTING_CORRECT] is False


def test_resource_refuses_non_loopback_host() -> None:
    with pytest.raises(ResourceConfigError, match="allowed_hosts"):
        PatroniResource(host="10.1.2.3").target()


def test_resource_refuses_mismatched_ports() -> None:
    with pytest.raises(ResourceConfigError, match="one REST port and one PostgreSQL port per member"):
        PatroniResource(rest_ports=[1, 2]).target()


def test_bad_patroni_url_is_a_clear_error_without_secret() -> None:
    resource = PatroniResource(rest_ports=[1, 2, 3], password="s3cret-pw")
    with pytest.raises(ResourceConfigError) as err:
        resource.checked_target()
    assert "no Patroni REST API answered at http://127.0.0.1:1/patroni" in str(err.value)
    assert "s3cret-pw" not in str(err.value)


def test_no_leader_names_the_stalled_dcs_the_members_report() -> None:
    """etcd paused past the TTL: every member demoted; their REST APIs say when they last reached the DCS."""
    now = 1000.0
    members = [
        MemberView(name, False, "replica", "running", 1, True, dcs_last_seen=now - age)
        for name, age in (("pg0", 18.2), ("pg1", 17.9), ("pg2", 1.0))
    ]
    obs = HealthObservation(members=members, observed_at=now)
    result = evaluate_health(obs, HealthConfig())
    leader = result.invariant(SINGLE_LEADER)
    assert not leader.passed
    assert "observed: Patroni last reached its DCS (etcd) pg0 18 s ago, pg1 18 s ago" in leader.detail
    assert result.metric("health.dcs_contact_age_s_max").value == pytest.approx(18.2)


def test_no_leader_with_recent_dcs_contact_says_unexplained() -> None:
    members = [MemberView("pg0", False, "replica", "running", 1, True, dcs_last_seen=999.0)]
    result = evaluate_health(HealthObservation(members=members, observed_at=1000.0), HealthConfig())
    assert "cause unexplained" in result.invariant(SINGLE_LEADER).detail
