"""What the host was doing while a run measured: load average and CPU steal, read from /proc.

Why: on a shared machine a slower figure may be the host, not the system under test; a verdict can only say
so if every run recorded the host's state next to its figures (see detection's host context).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from regression_pipelines.results import Direction, Metric, MetricKind

PROC = Path("/proc")


@dataclass(frozen=True)
class CpuTimes:
    total: int
    steal: int
    idle: int


def cpu_times(proc: Path = PROC) -> CpuTimes | None:
    """The aggregate `cpu` line of /proc/stat (jiffies); None where there is no /proc."""
    try:
        line = (proc / "stat").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = [int(v) for v in line.split()[1:]]
    if len(fields) < 8:
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: already counted in user/nice]
    return CpuTimes(total=sum(fields[:8]), steal=fields[7], idle=fields[3] + fields[4])


def load_average(proc: Path = PROC) -> float | None:
    try:
        return float((proc / "loadavg").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None


class HostSampler:
    """Samples the host at the start and the end of a run; `metrics()` gives the figures as info metrics."""

    def __init__(self, proc: Path = PROC) -> None:
        self.proc = proc
        self.start_cpu = cpu_times(proc)
        self.start_load = load_average(proc)

    def metrics(self) -> list[Metric]:
        info, lower = MetricKind.INFO, Direction.LOWER_IS_BETTER
        end_cpu, end_load = cpu_times(self.proc), load_average(self.proc)
        found = [Metric("host.cpus", float(os.cpu_count() or 0), "cpus", lower, info)]
        loads = [v for v in (self.start_load, end_load) if v is not None]
        if loads:
            found.append(Metric("host.load1", max(loads), "load", lower, info))
        if self.start_cpu and end_cpu and end_cpu.total > self.start_cpu.total:
            spent = end_cpu.total - self.start_cpu.total
            steal = 100.0 * (end_cpu.steal - self.start_cpu.steal) / spent
            busy = 100.0 * (1 - (end_cpu.idle - self.start_cpu.idle) / spent)
            found.append(Metric("host.cpu_steal_pct", steal, "%", lower, info))
            found.append(Metric("host.cpu_busy_pct", busy, "%", lower, info))
        return found
