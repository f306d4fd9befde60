"""Medians of N failover runs per mode on the local lab (not part of `make test`; it kills lab members).

Usage: REGRESS_LAB_PORT_OFFSET=2000 REGRESS_LAB_DIR=/tmp/lab-ha \
       .venv/bin/python benchmarks/ha_failover/medians.py [--runs 3] [--modes switchover,pause] [--pause 20]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from assets.ha_failover.config import FailoverConfig
from assets.ha_failover.faults import LocalSignalInjector, Mode, choose_injector
from assets.ha_failover.recovery import reinit_stranded_replicas, wait_healthy
from assets.ha_failover.scenario import RunPlace, run_failover
from regression_pipelines.kit.nemeses.lab import patroni_lab_control
from regression_pipelines.kit.supervisor import Supervisor
from regression_pipelines.resources_config import lab_patroni
from resources.patroni.client import ClusterTarget

COLUMNS = [
    ("outage_s", "failover.outage_s"),
    ("to_leader_s", "failover.time_to_leader_s"),
    ("lost", "failover.lost_acknowledged"),
    ("rejoin_s", "failover.rejoin_s"),
    ("catchup_s", "failover.catchup_s"),
    ("recovery_s", "failover.recovery_s"),
    ("2writable", "failover.split_brain_rounds"),
]


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    return f"{med:.2f} ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else f"{med:.2f}"


def local_signals(target: ClusterTarget) -> LocalSignalInjector:
    """Signals to this lab's Patroni members (the kit refuses members that are not the lab's)."""
    control = patroni_lab_control([(m.name, m.rest_port, m.pg_port) for m in target.members], target.host)
    return LocalSignalInjector(pids=control.pids, restart_member=control.restart_member)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", default="switchover,kill_patroni_postmaster,kill_postmaster,pause")
    parser.add_argument("--pause", type=float, default=20.0, help="pause mode: seconds frozen")
    parser.add_argument("--rate", type=float, default=20.0, help="ledger writes per second")
    parser.add_argument("--synchronous", action="store_true", help="PATCH synchronous_mode on for the runs")
    args = parser.parse_args()
    target = lab_patroni().checked_target()
    if args.synchronous:
        set_synchronous(target, True)
    try:
        return bench(target, args)
    finally:
        if args.synchronous:
            set_synchronous(target, False)


def set_synchronous(target: ClusterTarget, on: bool) -> None:
    """Patroni dynamic config (PATCH /config); REGRESS_LAB_PATRONI_SYNCHRONOUS_MODE sets it at lab bootstrap."""
    for member in target.members:
        status, _ = target.rest(member, "/config", "PATCH", {"synchronous_mode": on}, timeout_s=5.0)
        if status == 200:
            deadline = time.monotonic() + 30
            while on and time.monotonic() < deadline:  # HA loops pick a synchronous standby
                _, cluster = target.rest(member, "/cluster")
                roles = [m.get("role") for m in (cluster or {}).get("members", [])] if isinstance(cluster, dict) else []
                if "sync_standby" in roles:
                    return
                time.sleep(0.5)
            return
    raise SystemExit("could not PATCH /config on any member")


def bench(target: ClusterTarget, args: argparse.Namespace) -> int:
    out = Path(tempfile.mkdtemp(prefix="ha-bench-"))
    rows = []
    sync_mode = "?"
    for mode in [Mode(m.strip().lower()) for m in args.modes.split(",")]:
        figures: dict[str, list[float]] = {name: [] for name, _ in COLUMNS}
        changed = 0
        for i in range(args.runs):
            if wait_healthy(target, timeout_s=90) is None:
                repaired = reinit_stranded_replicas(target)
                print(f"  cluster not healthy before the run; reinitialized {repaired}", flush=True)
                if wait_healthy(target, timeout_s=30) is None:
                    raise SystemExit("lab cluster not healthy; stopping")
            injector = choose_injector(mode, target, "", None if mode is Mode.SWITCHOVER else local_signals(target))
            config = FailoverConfig(mode=mode.value, pause_seconds=args.pause, write_rate_hz=args.rate)
            sup = Supervisor("ha_failover")
            run_place = RunPlace(uuid.uuid4().hex, out)
            result = sup.run(lambda: run_failover(target, config, injector, run_place, sup))  # noqa: B023
            sync_mode = str(result.environment.get("synchronous_mode"))
            changed += result.environment.get("leader_changed") is True
            for name, metric in COLUMNS:
                with contextlib.suppress(KeyError):
                    figures[name].append(result.metric(metric).value)
            print(
                f"  {mode.value} run {i + 1}: outage {result.metric('failover.outage_s').value:.2f}s, "
                f"checks {[inv.name for inv in result.invariants if not inv.passed] or 'all passed'}",
                flush=True,
            )
        rows.append([mode.value, f"{changed}/{args.runs}", *(_cell(figures[name]) for name, _ in COLUMNS)])
    header = ["mode", "new leader", *(name for name, _ in COLUMNS)]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\nmedian (min-max) of {args.runs} runs per mode, {args.rate:g} writes/s, synchronous_mode={sync_mode}")
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    wait_healthy(target, timeout_s=90)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
