"""Non-destructive Patroni health: one leader, replicas streaming, lag, timeline, HAProxy routing.

`observe_health` gathers (network); `evaluate_health` judges (pure), so every invariant is unit-testable on
hand-made observations and integration-testable on a real cluster. Safe to run hourly: the only write is a
temporary table that drops itself at commit, so the run registers nothing to remove. Phases: workload (the
probes and the latency sample, whose figures are kept as soon as they exist), judge.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg

from assets.ha_health import latency
from assets.ha_health.config import HealthConfig
from regression_pipelines.kit.supervisor import JUDGE, WORKLOAD, Supervisor
from regression_pipelines.measure import ErrorTally
from regression_pipelines.results import Direction, Invariant, Metric, MetricKind, ScenarioResult
from resources.patroni.client import ClusterTarget
from resources.patroni.view import (
    MemberView,
    ReplicaView,
    RouteView,
    cluster_facts,
    probe_route,
    replication_from,
    view_members,
)

AREA = "ha_health"
SINGLE_LEADER = "single_leader"
ALL_REPLICAS_STREAMING = "all_replicas_streaming"
LAG_WITHIN_LIMIT = "replication_lag_within_limit"
ROUTING_CORRECT = "routing_correct"
HEALTH_INVARIANTS = (SINGLE_LEADER, ALL_REPLICAS_STREAMING, LAG_WITHIN_LIMIT, ROUTING_CORRECT)


DCS_STALE_S = 5.0  # Patroni reaches its DCS every loop_wait (2 s in the lab); older contact is a stalled DCS


@dataclass
class HealthObservation:
    members: list[MemberView]
    observed_at: float = field(default_factory=time.time)
    replication: list[ReplicaView] = field(default_factory=list)
    replication_error: str = ""
    rw: RouteView | None = None
    ro: list[RouteView] = field(default_factory=list)
    latency: list[latency.RouteLatency] = field(default_factory=list)
    environment: dict[str, str | int | float | bool] = field(default_factory=dict)

    @property
    def leaders(self) -> list[str]:
        return sorted(
            {m.name for m in self.members if m.rest_is_primary} | {m.name for m in self.members if m.sql_says_primary}
        )

    @property
    def leader(self) -> str | None:
        leaders = self.leaders
        return leaders[0] if len(leaders) == 1 else None

    def dcs_ages(self) -> dict[str, float]:
        """Seconds since each member last reached the DCS, as its own REST API reports it."""
        return {
            m.name: max(0.0, self.observed_at - m.dcs_last_seen) for m in self.members if m.dcs_last_seen is not None
        }

    def observed_cause(self) -> str:
        """What the members say about their DCS when something is wrong ('' when every contact is recent)."""
        stale = {name: age for name, age in self.dcs_ages().items() if age > DCS_STALE_S}
        if not stale:
            return ""
        ages = ", ".join(f"{name} {age:.0f} s ago" for name, age in sorted(stale.items()))
        return f"observed: Patroni last reached its DCS (etcd) {ages}: the DCS is unreachable or stalled"


def observe_health(target: ClusterTarget, config: HealthConfig) -> HealthObservation:
    members = view_members(target)
    obs = HealthObservation(members=members)
    if obs.leader is not None:
        try:
            obs.replication = replication_from(target, target.member(obs.leader))
        except psycopg.Error as exc:
            obs.replication_error = target.mask(str(exc).strip().splitlines()[0])
    obs.rw = probe_route(target, target.rw_port)
    obs.ro = [probe_route(target, target.ro_port) for _ in range(max(1, config.ro_probes))]
    if obs.leader is not None:
        leader_port = target.member(obs.leader).pg_port
        obs.latency = latency.measure(
            target, leader_port, config.latency_statements, config.calibrate, config.calibration_seconds
        )
    timelines = sorted({m.timeline for m in members if m.timeline is not None})
    obs.environment = {
        "members": ",".join(m.name for m in target.members),
        "leader": obs.leader or "none",
        "timeline": timelines[-1] if timelines else -1,
        **cluster_facts(target),
    }
    return obs


def _single_leader(obs: HealthObservation) -> Invariant:
    rest = sorted(m.name for m in obs.members if m.rest_is_primary)
    sql = sorted(m.name for m in obs.members if m.sql_says_primary)
    passed = len(rest) == 1 and rest == sql
    detail = f"REST /primary says {rest or 'nobody'}, pg_is_in_recovery()=false on {sql or 'nobody'}"
    unreachable = [m.name for m in obs.members if m.in_recovery is None]
    if unreachable:
        detail += f"; no SQL answer from {unreachable}"
    if not passed:
        detail += f"; {obs.observed_cause() or 'cause unexplained: every member reached its DCS recently'}"
    return Invariant(SINGLE_LEADER, passed, detail, {"rest_leaders": len(rest), "sql_leaders": len(sql)})


def _expected_replicas(obs: HealthObservation) -> list[str]:
    return sorted(m.name for m in obs.members if m.name != obs.leader)


def _streaming(obs: HealthObservation) -> Invariant:
    expected = _expected_replicas(obs)
    streaming = sorted(r.name for r in obs.replication if r.state == "streaming")
    missing = [n for n in expected if n not in streaming]
    if obs.leader is None:
        return Invariant(ALL_REPLICAS_STREAMING, False, "no single leader to ask pg_stat_replication", {})
    passed = not missing and not obs.replication_error
    detail = f"streaming to {streaming or 'nobody'} from {obs.leader}"
    if missing:
        detail += f"; not streaming: {missing}"
    if obs.replication_error:
        detail += f"; error: {obs.replication_error}"
    return Invariant(ALL_REPLICAS_STREAMING, passed, detail, {"streaming": len(streaming), "expected": len(expected)})


def _lag(obs: HealthObservation, config: HealthConfig) -> Invariant:
    worst = max((r.lag_bytes for r in obs.replication), default=0.0)
    missing = [n for n in _expected_replicas(obs) if n not in {r.name for r in obs.replication}]
    passed = obs.leader is not None and not missing and worst <= config.maximum_lag_bytes
    detail = f"max lag {worst:.0f} bytes (limit {config.maximum_lag_bytes})"
    if missing:
        detail += f"; lag unknown for {missing} (not connected)"
    return Invariant(LAG_WITHIN_LIMIT, passed, detail, {"max_lag_bytes": worst, "limit": config.maximum_lag_bytes})


def _routing(obs: HealthObservation) -> Invariant:
    problems = []
    rw = obs.rw
    if rw is None or rw.error:
        problems.append(f"read-write port: {rw.error if rw else 'not probed'}")
    else:
        if rw.member != obs.leader or rw.in_recovery is not False:
            problems.append(f"read-write port served by {rw.member}, leader is {obs.leader}")
        if not rw.write_accepted:
            problems.append("write through read-write port was rejected")
    for ro in obs.ro:
        if ro.error:
            problems.append(f"read-only port: {ro.error}")
            continue
        if ro.member == obs.leader or ro.in_recovery is not True:
            problems.append(f"read-only port served by {ro.member} (in recovery: {ro.in_recovery})")
        if ro.write_accepted or not ro.write_refused_read_only:
            problems.append(f"write through read-only port on {ro.member} was not refused as read-only")
    ro_members = sorted({ro.member for ro in obs.ro if ro.member})
    detail = "; ".join(problems) or f"rw -> {rw.member if rw else None}, ro -> {ro_members}"
    return Invariant(ROUTING_CORRECT, not problems, detail, {"problems": len(problems)})


def _probe_errors(obs: HealthObservation) -> ErrorTally:
    """Every probe that got no answer or an error: a member that stops answering is news even with a leader."""
    tally = ErrorTally()
    for m in obs.members:
        if m.rest_role is None:
            tally.failed(f"{m.name}: Patroni REST API did not answer")
        else:
            tally.ok()
        if m.error:
            tally.failed(f"{m.name}: SQL {m.error}")
        else:
            tally.ok()
    if obs.leader is not None:
        if obs.replication_error:
            tally.failed(f"pg_stat_replication on {obs.leader}: {obs.replication_error}")
        else:
            tally.ok()
    for route in [obs.rw, *obs.ro]:
        if route is not None and route.error:
            tally.failed(f"route :{route.port}: {route.error}")
        elif route is not None:
            tally.ok()
    for timed in obs.latency:
        if timed.error:
            tally.failed(f"latency sample :{timed.port}: {timed.error}")
        else:
            tally.ok()
    return tally


def evaluate_health(obs: HealthObservation, config: HealthConfig) -> ScenarioResult:
    """Judge one observation: metrics for plots, one invariant per asset check."""
    metrics = [
        Metric("health.lag_bytes_max", max((r.lag_bytes for r in obs.replication), default=0.0), "bytes"),
        Metric("health.lag_s_max", max((r.lag_s for r in obs.replication), default=0.0), "s"),
        Metric(
            "health.members_reachable",
            sum(m.in_recovery is not None for m in obs.members),
            "count",
            Direction.HIGHER_IS_BETTER,
        ),
        Metric(
            "health.replicas_streaming",
            sum(r.state == "streaming" for r in obs.replication),
            "count",
            Direction.HIGHER_IS_BETTER,
        ),
    ]
    if obs.rw is not None and not obs.rw.error:
        metrics.append(Metric("health.rw_route_latency_s", obs.rw.latency_s, "s"))
    ages = obs.dcs_ages()
    if ages:
        metrics.append(Metric("health.dcs_contact_age_s_max", max(ages.values()), "s", kind=MetricKind.INFO))
    ro_ok = [ro.latency_s for ro in obs.ro if not ro.error]
    if ro_ok:
        metrics.append(Metric("health.ro_route_latency_s", max(ro_ok), "s"))
    for timed in obs.latency:
        metrics += timed.metrics()
    environment = dict(obs.environment)
    environment.update(
        {f"calibration.{t.calibration.instrument}": t.calibration.describe() for t in obs.latency if t.calibration}
    )
    error_rate, no_errors = _probe_errors(obs).figures("probes (REST, SQL per member, replication, routes)")
    metrics.append(error_rate)
    invariants = [_single_leader(obs), _streaming(obs), _lag(obs, config), _routing(obs), no_errors]
    comparable_on = {"synchronous_mode": bool(obs.environment.get("synchronous_mode", False))}
    return ScenarioResult(AREA, metrics, invariants, environment, comparable_on)


def run_health(target: ClusterTarget, config: HealthConfig, sup: Supervisor | None = None) -> ScenarioResult:
    """Observe (the workload: probes and the latency sample), then judge; figures are kept as they exist."""
    sup = sup or Supervisor(AREA)
    with sup.phase(WORKLOAD):
        obs = observe_health(target, config)
        sup.record(*(metric for timed in obs.latency for metric in timed.metrics()))
    with sup.phase(JUDGE):
        return evaluate_health(obs, config)
