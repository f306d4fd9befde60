"""Destructive failover scenario: inject one real fault while a ledger writer runs, then measure.

Named phases (the kit's supervisor reports a failure's phase from them): setup (healthy cluster required, the
ledger table registered for removal, writer and monitor) -> workload (baseline, then the nemesis: this area's
own fault, held as the mode needs and healed) -> settle (wait until healthy: old leader rejoined and caught up;
tail) -> judge. The heal is also registered with the supervisor, so a paused member is never left frozen, and
the ledger table is dropped through fresh connections after the run, whatever happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from assets.ha_failover.config import FailoverConfig
from assets.ha_failover.faults import FaultError, FaultInjector, Mode
from assets.ha_failover.ledger import (
    RECOVERY_GRACE_S,
    create_ledger,
    drop_ledger,
    ledger_exists,
    ledger_table_name,
    ledger_writer,
    read_ledger,
)
from assets.ha_failover.monitor import ClusterMonitor, LeaderTimeline, Sample, leader_timeline, split_brain_rounds
from assets.ha_failover.recovery import (
    ClusterState,
    Recovery,
    cluster_state,
    wait_healthy,
    wait_recovery,
    wait_sync_standby,
)
from regression_pipelines.kit.checkers.ledger import (
    LedgerVerdict,
    LedgerWriter,
    Op,
    Outcome,
    judge_ledger,
    write_history_jsonl,
    writes_outside,
)
from regression_pipelines.kit.supervisor import JUDGE, NEMESIS, SETTLE, SETUP, WORKLOAD, Supervisor
from regression_pipelines.measure import ErrorTally
from regression_pipelines.results import Direction, Invariant, Metric, MetricKind, ScenarioResult
from resources.patroni.client import ClusterTarget
from resources.patroni.view import cluster_facts

AREA = "ha_failover"
ZERO_LOST = "zero_lost_acknowledged_writes"
NO_PHANTOMS = "no_phantom_or_duplicate_writes"
NO_SPLIT_BRAIN = "no_split_brain"  # through HAProxy: what clients saw
NO_TWO_WRITABLE = "no_two_writable_members"  # direct probe of every member's own port
RECOVERY_SLO = "recovery_within_slo"
FAILOVER_INVARIANTS = (ZERO_LOST, NO_PHANTOMS, NO_SPLIT_BRAIN, NO_TWO_WRITABLE, RECOVERY_SLO)
Tamper = Callable[[ClusterTarget, str], None]  # failing twins: edit the ledger before it is read


@dataclass
class Observed:
    """Everything measured during one run, before judging."""

    old_leader: str
    timeline_before: int | None
    facts: dict[str, str | int | float | bool]
    fault_at: float = 0.0
    heal_at: float = 0.0
    writer_end: float = 0.0
    recovery: Recovery | None = None
    verdict: LedgerVerdict | None = None
    history_path: Path | None = None
    outside_outage: list[Op] = field(default_factory=list)  # writes judged by no_operation_errors


@dataclass(frozen=True)
class RunPlace:
    """Where one run keeps its state: the ledger table is named after the run, its history goes to output_dir."""

    run_id: str
    output_dir: Path


@dataclass
class Running:
    """The run's moving parts: the ledger table, its writer and the cluster monitor."""

    table: str
    writer: LedgerWriter
    monitor: ClusterMonitor

    def stop(self) -> None:
        self.writer.stop()
        self.monitor.stop()
        for thread in (self.writer, self.monitor):
            if thread.is_alive():
                thread.join(timeout=15)


def run_failover(
    target: ClusterTarget,
    config: FailoverConfig,
    injector: FaultInjector,
    place: RunPlace,
    sup: Supervisor,
    tamper: Tamper | None = None,
) -> ScenarioResult:
    """Run one fault end to end under `sup` and return the judged result."""
    with sup.phase(SETUP):
        obs, running = setup(target, config, injector, place, sup)
    with sup.phase(WORKLOAD):
        running.writer.start()
        running.monitor.start()
        sup.on_cleanup("stop the ledger writer and the monitor", running.stop)
        time.sleep(config.baseline_s)
        with sup.phase(NEMESIS):
            nemesis(target, config, injector, obs, running.monitor, sup)
    with sup.phase(SETTLE):
        obs.recovery = wait_recovery(target, obs.old_leader, timeout_s=config.max_seconds)
        time.sleep(config.tail_s)
        running.stop()
        obs.writer_end = time.time()
    with sup.phase(JUDGE):
        if tamper is not None:
            tamper(target, running.table)
        rows, via = read_ledger(target, running.table)
        if via != "haproxy":
            sup.note(f"observed: the ledger was read from {via}")
        obs.verdict = judge_ledger(running.writer.ops, rows, obs.fault_at, obs.writer_end)
        sup.record(
            Metric("failover.outage_s", obs.verdict.outage_s, "s"),
            Metric("failover.lost_acknowledged", len(obs.verdict.lost), "count"),
        )
        obs.outside_outage = writes_outside(running.writer.ops, obs.fault_at, obs.recovery.healthy_at, RECOVERY_GRACE_S)
        ops = running.writer.ops
        obs.history_path = write_history_jsonl(
            ops, place.output_dir / f"{running.table}.history.jsonl", origin=ops[0].invoked_at if ops else 0.0
        )
        return judge(target, config, obs, running.monitor, injector.name)


def setup(
    target: ClusterTarget, config: FailoverConfig, injector: FaultInjector, place: RunPlace, sup: Supervisor
) -> tuple[Observed, Running]:
    """A healthy cluster (else nothing is injected), the ledger table (registered for removal), writer, monitor."""
    if not injector.supports(config.fault_mode):
        raise FaultError(f"injector {injector.name} cannot perform mode {config.mode}")
    before = wait_healthy(target, timeout_s=min(30.0, config.max_seconds))
    if before is None or before.leader is None:
        raise FaultError("the cluster is not healthy (one leader, every replica streaming); injected nothing")
    obs = Observed(before.leader, before.timeline, cluster_facts(target))
    if obs.facts.get("synchronous_mode") and not wait_sync_standby(target, timeout_s=min(30.0, config.max_seconds)):
        raise FaultError("synchronous_mode is on but Patroni names no synchronous standby; injected nothing")
    table = ledger_table_name(place.run_id)
    create_ledger(target, table)
    sup.created("table", table, lambda: drop_ledger(target, table), lambda: ledger_exists(target, table))
    max_ops = int(config.write_rate_hz * (config.max_seconds * 3 + config.baseline_s + config.tail_s + 60))
    writer = ledger_writer(target, table, config.write_rate_hz, max_ops)
    monitor = ClusterMonitor(target, max_rounds=int(config.max_seconds * 3 / 0.25) + 200)
    return obs, Running(table, writer, monitor)


def nemesis(
    target: ClusterTarget,
    config: FailoverConfig,
    injector: FaultInjector,
    obs: Observed,
    monitor: ClusterMonitor,
    sup: Supervisor,
) -> None:
    """The area's own fault on the leader: injected, held as the mode requires, healed (also after a crash)."""
    healed = False

    def heal() -> None:
        nonlocal healed
        if not healed:
            healed = True
            injector.heal(config.fault_mode, obs.old_leader)  # a frozen leader must not stay frozen

    sup.on_cleanup(f"heal {config.mode} on {obs.old_leader}", heal)
    obs.fault_at = time.time()
    injector.inject(config.fault_mode, obs.old_leader)
    _hold(config, monitor, obs)
    obs.heal_at = time.time()
    heal()


def _hold(config: FailoverConfig, monitor: ClusterMonitor, obs: Observed) -> None:
    """Hold the fault as the mode requires: a pause for its length, a killed Patroni until a new leader shows."""
    if config.fault_mode is Mode.PAUSE:
        time.sleep(min(config.pause_seconds, config.max_seconds))
    elif config.fault_mode in (Mode.KILL_PATRONI, Mode.KILL_PATRONI_POSTMASTER):
        deadline = time.monotonic() + config.max_seconds
        while time.monotonic() < deadline and not _new_leader_seen(monitor.samples, obs):
            time.sleep(0.2)
        if config.fault_mode is Mode.KILL_PATRONI:
            time.sleep(config.orphan_watch_s)


def _new_leader_seen(samples: list[Sample], obs: Observed) -> bool:
    last = samples[-1] if samples else None
    return bool(
        last and last.at > obs.fault_at and len(last.rest_leaders) == 1 and last.rest_leaders[0] != obs.old_leader
    )


def judge(
    target: ClusterTarget, config: FailoverConfig, obs: Observed, monitor: ClusterMonitor, injector_name: str
) -> ScenarioResult:
    """Figures and checks of one run, from the ledger verdict, the monitor's rounds and the recovery."""
    verdict, recovery = obs.verdict, obs.recovery
    assert verdict is not None and recovery is not None
    after = recovery.state or cluster_state(target)
    split_rounds = split_brain_rounds(monitor.samples)
    timeline = leader_timeline(monitor.samples, obs.old_leader, obs.fault_at)
    error_rate, no_errors = _error_figures(obs.outside_outage)
    metrics = [*_metrics(obs, verdict, recovery, after, timeline, len(split_rounds)), error_rate]
    invariants = [*_invariants(config, obs, verdict, recovery, monitor.samples, split_rounds), no_errors]
    environment, comparable_on = _context(config, obs, after, injector_name)
    return ScenarioResult(AREA, metrics, invariants, environment, comparable_on)


def _metrics(
    obs: Observed,
    verdict: LedgerVerdict,
    recovery: Recovery,
    after: ClusterState,
    timeline: LeaderTimeline,
    split_rounds: int,
) -> list[Metric]:
    volume = MetricKind.VOLUME
    metrics = [
        Metric("failover.outage_s", verdict.outage_s, "s"),
        Metric("failover.lost_acknowledged", len(verdict.lost), "count"),
        Metric("failover.phantom_writes", len(verdict.phantom), "count"),
        Metric("failover.duplicate_writes", len(verdict.duplicates), "count"),
        Metric("failover.unknown_writes", verdict.unknown, "count", kind=volume),
        Metric("failover.failed_writes", verdict.failed, "count", kind=volume),
        Metric("failover.acknowledged_writes", verdict.acknowledged, "count", Direction.HIGHER_IS_BETTER, volume),
        Metric("failover.split_brain_rounds", split_rounds, "count"),
    ]
    if timeline.time_to_leader_s is not None:
        metrics.append(Metric("failover.time_to_leader_s", timeline.time_to_leader_s, "s"))
    if recovery.healthy_at is not None:
        metrics.append(Metric("failover.recovery_s", recovery.healthy_at - obs.fault_at, "s"))
    if recovery.rejoined_at is not None:
        metrics.append(Metric("failover.rejoin_s", recovery.rejoined_at - obs.heal_at, "s"))
        if recovery.caught_up_at is not None:
            metrics.append(Metric("failover.catchup_s", recovery.caught_up_at - recovery.rejoined_at, "s"))
    if obs.timeline_before is not None and after.timeline is not None:
        change = after.timeline - obs.timeline_before
        metrics.append(Metric("failover.timeline_change", change, "count", kind=MetricKind.INFO))
    return metrics


def _invariants(
    config: FailoverConfig,
    obs: Observed,
    verdict: LedgerVerdict,
    recovery: Recovery,
    samples: list[Sample],
    split_rounds: list[Sample],
) -> list[Invariant]:
    strict = config.expect_zero_loss or bool(obs.facts.get("synchronous_mode", False))
    lost = verdict.lost
    healthy = (
        f"healthy {recovery.healthy_at - obs.fault_at:.1f}s after the fault"
        if recovery.healthy_at
        else f"not healthy within {config.max_seconds}s"
    )
    return [
        Invariant(
            ZERO_LOST,
            not lost or not strict,
            f"{len(lost)} of {verdict.acknowledged} acknowledged writes missing"
            + (f" (first: {lost[:10]})" if lost else "")
            + ("" if strict else "; tolerated: expect_zero_loss is off in asynchronous mode"),
            {"lost": len(lost), "acknowledged": verdict.acknowledged, "strict": strict},
        ),
        Invariant(
            NO_PHANTOMS,
            not verdict.phantom and not verdict.duplicates,
            f"{len(verdict.phantom)} phantom (present, never acknowledged, not unknown), "
            f"{len(verdict.duplicates)} duplicated; {verdict.unknown_present} of {verdict.unknown} unknown present",
            {"phantom": len(verdict.phantom), "duplicates": len(verdict.duplicates)},
        ),
        Invariant(
            NO_SPLIT_BRAIN,
            not verdict.haproxy_split_brain,
            f"acknowledged writes through HAProxy went to server ports {verdict.members_in_order} in that order"
            + (" (returned to a server it had left)" if verdict.haproxy_split_brain else ""),
            {"haproxy_interleaved": verdict.haproxy_split_brain},
        ),
        Invariant(
            NO_TWO_WRITABLE,
            not split_rounds,
            f"direct probe: {len(split_rounds)} of {len(samples)} rounds found 2+ members accepting writes"
            + (f" (first: {list(split_rounds[0].writable)})" if split_rounds else ""),
            {"probe_rounds": len(samples), "split_rounds": len(split_rounds)},
        ),
        Invariant(
            RECOVERY_SLO,
            recovery.healthy_at is not None and verdict.outage_s <= config.recovery_slo_s,
            f"write outage {verdict.outage_s:.2f}s (SLO {config.recovery_slo_s}s); cluster {healthy}",
            {"outage_s": round(verdict.outage_s, 3), "slo_s": config.recovery_slo_s},
        ),
    ]


Facts = dict[str, str | int | float | bool]


def _context(config: FailoverConfig, obs: Observed, after: ClusterState, injector_name: str) -> tuple[Facts, Facts]:
    environment: Facts = {
        **obs.facts,
        "mode": config.mode,
        "injector": injector_name,
        "old_leader": obs.old_leader,
        "new_leader": after.leader or "none",
        "leader_changed": after.leader is not None and after.leader != obs.old_leader,
        "timeline_before": obs.timeline_before if obs.timeline_before is not None else -1,
        "timeline_after": after.timeline if after.timeline is not None else -1,
        "write_rate_hz": config.write_rate_hz,
        "history_jsonl": str(obs.history_path),
    }
    comparable_on: Facts = {
        "mode": config.mode,
        "synchronous_mode": bool(obs.facts.get("synchronous_mode", False)),
        "write_rate_hz": config.write_rate_hz,
    }
    if config.fault_mode is Mode.PAUSE:
        environment["pause_seconds"] = config.pause_seconds
        comparable_on["pause_seconds"] = config.pause_seconds
    return environment, comparable_on


def _error_figures(outside_outage: list[Op]) -> tuple[Metric, Invariant]:
    """Failed writes before the fault or after recovery: the cluster was meant to be fine then."""
    tally = ErrorTally()
    for op in outside_outage:
        if op.outcome is Outcome.ACKNOWLEDGED:
            tally.ok()
        else:
            tally.failed(f"write {op.value}: {op.error or op.outcome.value}")
    return tally.figures("ledger writes outside the fault window")
