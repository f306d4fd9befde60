"""Run config of the destructive failover area: nothing happens unless allow_destructive is true."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from assets.ha_failover.faults import Mode
from regression_pipelines.kit import AreaConfig, one_of
from regression_pipelines.kit.guard import LAB_TARGET


class FailoverConfig(AreaConfig):
    """One fault on the leader while a ledger writer runs through HAProxy; every wait is bounded."""

    mode: Annotated[str, one_of(*(m.value for m in Mode))] = Field(
        default=Mode.SWITCHOVER.value,
        description="switchover, kill_patroni_postmaster, kill_postmaster, pause, or kill_patroni "
        "(orphaned primary, split-brain demo)",
    )
    allow_destructive: bool = Field(default=False, description="Must be true: this kills or pauses members")
    target: str = Field(default=LAB_TARGET, description="'lab' (loopback lab) or the resource's host, allow-listed")
    allow_list: list[str] = Field(default_factory=list, description="Non-lab hosts you own and allow faults on")
    # Past ttl, so a replica is promoted while the leader is frozen. On Patroni < 3.0.3 with etcd3 the resumed
    # old leader can overwrite the new leader key (patroni PR #2689): lost acknowledged writes, caught here.
    pause_seconds: float = Field(default=20.0, gt=0, le=600, description="mode=pause: how long the leader stays frozen")
    write_rate_hz: float = Field(default=20.0, gt=0, le=1000, description="Ledger writes per second through HAProxy rw")
    max_seconds: float = Field(default=120.0, gt=0, le=1800, description="Bound on every wait after the fault")
    recovery_slo_s: float = Field(default=30.0, gt=0, description="Largest acceptable client write outage")
    expect_zero_loss: bool = Field(
        default=True, description="Fail on any lost acknowledged write (always on in synchronous_mode)"
    )
    command_template: str = Field(
        default="",
        description="For non-lab targets: command per action, e.g. 'ssh {host} sudo pg-fault {action} {member}'",
    )
    baseline_s: float = Field(default=1.0, ge=0, le=60, description="Writes before the fault (the clean baseline)")
    tail_s: float = Field(default=1.0, ge=0, le=60, description="Writes after recovery")
    orphan_watch_s: float = Field(
        default=3.0, ge=0, le=60, description="kill_patroni: how long the probe watches the orphaned primary"
    )

    @property
    def fault_mode(self) -> Mode:
        return Mode(self.mode)
