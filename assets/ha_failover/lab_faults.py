"""Local-signal fault injection wired to the lab's own process bookkeeping (PIDs, member restart)."""

from __future__ import annotations

from assets.ha_failover.faults import FaultError, LocalSignalInjector
from regression_pipelines.lab import patroni_members
from regression_pipelines.lab.settings import LabSettings
from resources.patroni.client import ClusterTarget


def lab_injector(target: ClusterTarget, settings: LabSettings | None = None) -> LocalSignalInjector:
    """Signals for the lab whose ports the target uses; refuses if they differ (wrong processes otherwise)."""
    s = settings or LabSettings.from_env()
    lab_ports = {(n, r, p) for n, r, p in zip(s.patroni_members, s.patroni_rest_ports, s.patroni_pg_ports, strict=True)}
    target_ports = {(m.name, m.rest_port, m.pg_port) for m in target.members}
    if lab_ports != target_ports:
        raise FaultError(
            f"the patroni resource's members {sorted(target_ports)} are not this lab's {sorted(lab_ports)} "
            f"(lab dir {s.lab_dir}); set REGRESS_LAB_PORT_OFFSET/REGRESS_LAB_DIR to the lab you mean"
        )

    def pids(member: str) -> tuple[int | None, int | None]:
        return patroni_members.patroni_pid(s, member), patroni_members.postmaster_pid(s, member)

    def restart(member: str) -> None:
        patroni_members.start_member(s, member, wait=60.0)

    return LocalSignalInjector(pids=pids, restart_member=restart)
