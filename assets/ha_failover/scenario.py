"""Destructive failover scenario: inject one real fault while a ledger writer runs, then measure.

Sequence: healthy cluster required -> ledger table + writer + monitor -> baseline -> fault -> heal (if the
mode needs it) -> wait until healthy (old leader rejoined and caught up) -> tail -> judge -> clean up.
Heal and cleanup also run when something fails midway, so a paused member is never left frozen.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from assets.ha_failover.config import FailoverConfig
from assets.ha_failover.faults import FaultError, FaultInjector, Mode
from assets.ha_failover.ledger import (
    LedgerVerdict,
    LedgerWriter,
    Op,
    Outcome,
    create_ledger,
    drop_ledger,
    judge_ledger,
    ledger_table_name,
    read_ledger,
    write_history_jsonl,
    writes_outside_outage,
)
from assets.ha_failover.monitor import ClusterMonitor, leader_timeline, split_brain_rounds
from assets.ha_failover.recovery import Recovery, cluster_state, wait_healthy, wait_recovery, wait_sync_standby
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
    keep_ledger: bool = False  # tests that tamper with the ledger keep it; runs always drop it


def run_failover(
    target: ClusterTarget, config: FailoverConfig, injector: FaultInjector, place: RunPlace, tamper: object = None
) -> ScenarioResult:
    """Run one fault end to end and return the judged result. `tamper(target, table)` is for failing twins."""
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
    max_ops = int(config.write_rate_hz * (config.max_seconds * 3 + config.baseline_s + config.tail_s + 60))
    writer = LedgerWriter(target, table, config.write_rate_hz, max_ops)
    monitor = ClusterMonitor(target, max_rounds=int(config.max_seconds * 3 / 0.25) + 200)
    try:
        return _run_with_ledger(target, config, injector, place, tamper, obs, table, writer, monitor)
    except BaseException:
        _drop_quietly(target, table)
        raise


def _drop_quietly(target: ClusterTarget, table: str) -> None:
    with contextlib.suppress(Exception):  # the original error matters more than a failed cleanup
        drop_ledger(target, table)


def _run_with_ledger(
    target: ClusterTarget,
    config: FailoverConfig,
    injector: FaultInjector,
    place: RunPlace,
    tamper: object,
    obs: Observed,
    table: str,
    writer: LedgerWriter,
    monitor: ClusterMonitor,
) -> ScenarioResult:
    injected = healed = False
    try:
        writer.start()
        monitor.start()
        time.sleep(config.baseline_s)
        obs.fault_at = time.time()
        injected = True
        injector.inject(config.fault_mode, obs.old_leader)
        obs.heal_at = _wait_then_heal(target, config, injector, monitor, obs)
        healed = True
        obs.recovery = wait_recovery(target, obs.old_leader, timeout_s=config.max_seconds)
        time.sleep(config.tail_s)
    finally:
        try:
            if injected and not healed:
                injector.heal(config.fault_mode, obs.old_leader)  # first: a frozen leader must not stay frozen
        finally:
            writer.stop()
            monitor.stop()
            writer.join(timeout=15)
            monitor.join(timeout=15)
            obs.writer_end = time.time()
    try:
        if callable(tamper):
            tamper(target, table)
        rows = read_ledger(target, table)
    finally:
        if not place.keep_ledger:
            drop_ledger(target, table)
    obs.verdict = judge_ledger(writer.ops, rows, obs.fault_at, obs.writer_end)
    obs.outside_outage = writes_outside_outage(writer.ops, obs.fault_at, obs.recovery.healthy_at)
    obs.history_path = write_history_jsonl(
        writer.ops, place.output_dir / f"{table}.history.jsonl", origin=writer.ops[0].invoked_at
    )
    return judge(target, config, obs, monitor, injector.name)


def _wait_then_heal(
    target: ClusterTarget, config: FailoverConfig, injector: FaultInjector, monitor: ClusterMonitor, obs: Observed
) -> float:
    """Hold the fault as the mode requires, heal it, and return when healing started."""
    if config.fault_mode is Mode.PAUSE:
        time.sleep(min(config.pause_seconds, config.max_seconds))
    elif config.fault_mode in (Mode.KILL_PATRONI, Mode.KILL_PATRONI_POSTMASTER):
        deadline = time.monotonic() + config.max_seconds
        while time.monotonic() < deadline:
            last = monitor.samples[-1] if monitor.samples else None
            if (
                last
                and last.at > obs.fault_at
                and len(last.rest_leaders) == 1
                and last.rest_leaders[0] != obs.old_leader
            ):
                break
            time.sleep(0.2)
        if config.fault_mode is Mode.KILL_PATRONI:
            time.sleep(config.orphan_watch_s)
    heal_at = time.time()
    injector.heal(config.fault_mode, obs.old_leader)
    return heal_at


def judge(
    target: ClusterTarget, config: FailoverConfig, obs: Observed, monitor: ClusterMonitor, injector_name: str
) -> ScenarioResult:
    verdict = obs.verdict
    assert verdict is not None and obs.recovery is not None
    timeline = leader_timeline(monitor.samples, obs.old_leader, obs.fault_at)
    split_rounds = split_brain_rounds(monitor.samples)
    recovery = obs.recovery
    after = recovery.state or cluster_state(target)
    synchronous = bool(obs.facts.get("synchronous_mode", False))
    strict = config.expect_zero_loss or synchronous
    leader_changed = after.leader is not None and after.leader != obs.old_leader

    metrics = [
        Metric("failover.outage_s", verdict.outage_s, "s"),
        Metric("failover.lost_acknowledged", len(verdict.lost), "count"),
        Metric("failover.phantom_writes", len(verdict.phantom), "count"),
        Metric("failover.duplicate_writes", len(verdict.duplicates), "count"),
        Metric("failover.unknown_writes", verdict.unknown, "count", kind=MetricKind.VOLUME),
        Metric("failover.failed_writes", verdict.failed, "count", kind=MetricKind.VOLUME),
        Metric(
            "failover.acknowledged_writes", verdict.acknowledged, "count", Direction.HIGHER_IS_BETTER, MetricKind.VOLUME
        ),
        Metric("failover.split_brain_rounds", len(split_rounds), "count"),
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
        metrics.append(
            Metric("failover.timeline_change", after.timeline - obs.timeline_before, "count", kind=MetricKind.INFO)
        )

    error_rate, no_errors = _error_figures(obs.outside_outage)
    metrics.append(error_rate)
    lost_ok = not verdict.lost or not strict
    invariants = [
        Invariant(
            ZERO_LOST,
            lost_ok,
            f"{len(verdict.lost)} of {verdict.acknowledged} acknowledged writes missing"
            + (f" (first: {verdict.lost[:10]})" if verdict.lost else "")
            + ("" if strict else "; tolerated: expect_zero_loss is off in asynchronous mode"),
            {"lost": len(verdict.lost), "acknowledged": verdict.acknowledged, "strict": strict},
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
            f"direct probe: {len(split_rounds)} of {len(monitor.samples)} rounds found 2+ members accepting writes"
            + (f" (first: {list(split_rounds[0].writable)})" if split_rounds else ""),
            {"probe_rounds": len(monitor.samples), "split_rounds": len(split_rounds)},
        ),
        Invariant(
            RECOVERY_SLO,
            recovery.healthy_at is not None and verdict.outage_s <= config.recovery_slo_s,
            f"write outage {verdict.outage_s:.2f}s (SLO {config.recovery_slo_s}s); cluster "
            + (
                f"healthy {recovery.healthy_at - obs.fault_at:.1f}s after the fault"
                if recovery.healthy_at
                else f"not healthy within {config.max_seconds}s"
            ),
            {"outage_s": round(verdict.outage_s, 3), "slo_s": config.recovery_slo_s},
        ),
        no_errors,
    ]
    environment: dict[str, str | int | float | bool] = {
        **obs.facts,
        "mode": config.mode,
        "injector": injector_name,
        "old_leader": obs.old_leader,
        "new_leader": after.leader or "none",
        "leader_changed": leader_changed,
        "timeline_before": obs.timeline_before if obs.timeline_before is not None else -1,
        "timeline_after": after.timeline if after.timeline is not None else -1,
        "write_rate_hz": config.write_rate_hz,
        "history_jsonl": str(obs.history_path),
    }
    comparable_on: dict[str, str | int | float | bool] = {
        "mode": config.mode,
        "synchronous_mode": bool(obs.facts.get("synchronous_mode", False)),
        "write_rate_hz": config.write_rate_hz,
    }
    if config.fault_mode is Mode.PAUSE:
        environment["pause_seconds"] = config.pause_seconds
        comparable_on["pause_seconds"] = config.pause_seconds
    return ScenarioResult(AREA, metrics, invariants, environment, comparable_on)


def _error_figures(outside_outage: list[Op]) -> tuple[Metric, Invariant]:
    """Failed writes before the fault or after recovery: the cluster was meant to be fine then."""
    tally = ErrorTally()
    for op in outside_outage:
        if op.outcome is Outcome.ACKNOWLEDGED:
            tally.ok()
        else:
            tally.failed(f"write {op.value}: {op.error or op.outcome.value}")
    return tally.figures("ledger writes outside the fault window")
