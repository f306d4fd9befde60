"""Cache area fidelity, before and after, interleaved in the same minutes against the same lab servers.

.venv/bin/python -m benchmarks.fidelity.side_by_side --before COMMIT [--runs 10] [--levels 0,50,100,200]
    [--pg-levels custom_plan,jit]

1. Ratios: every run records `harness p50 / instrument p50` (cache reads vs redis-benchmark GET, database reads
   vs pgbench SELECT on the run's own table, same concurrency); medians over the clean runs.
2. Noise: coefficient of variation (stdev / mean) of each latency metric across the clean runs.
3. Sensitivity: real server-side slowdowns, for each level up to 3 runs per variant, each judged by the
   product's detector (`evaluate_latest`, default policy) against that variant's clean runs:
   - Redis: a background `redis-benchmark -c 1 EVAL <busy loop of L us>` back to back (every GET waits behind a
     script); level 0 is the control (no background load): a flag there is a false alarm from machine noise.
   - PostgreSQL: per-role settings that add server work to every statement (`custom_plan`: each prepared
     execution plans again, +40 % on pgbench here; `jit`: each statement JIT-compiled, 50x). Tried first and
     no use here: a CPU-bound neighbour query (point-read p50 fell 3-32 % with one core busy: a busy core does
     not sleep) and a table lock held P % of the time (a closed-loop client meets one stall per window, so
     p50 and p95 barely move: coordinated omission).
Variants run alternately (before, after, after, before, ...) so a noisy neighbour hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from regression_pipelines.detection import evaluate_latest
from regression_pipelines.evaluation import policy_for
from regression_pipelines.lab.settings import LAB_HOST, REPO_ROOT, LabSettings
from regression_pipelines.results import Metric

WORKLOAD = {"max_seconds": 1.0, "max_ops": 6000, "settle_seconds": 0.2}
MODES = ("cache_aside", "write_through")
LATENCY = [f"{m}.{s}_read_p50_ms" for m in MODES for s in ("cache", "db")] + [
    "calibration.redis_get_p50_ms",
    "calibration.pgbench_select_p50_ms",
]
RATIOS = [f"calibration.{m}.{s}_read_p50_ratio" for m in MODES for s in ("cache", "db")]
JUDGED = {
    "redis": ["cache_aside.cache_read_p50_ms", "write_through.cache_read_p50_ms", "calibration.redis_get_p50_ms"],
    "pg": ["cache_aside.db_read_p50_ms", "write_through.db_read_p50_ms", "calibration.pgbench_select_p50_ms"],
}
PG_SLOWDOWNS = {  # level -> per-role settings; pgbench -M prepared -c 4 here: +40 % and 50x
    "custom_plan": {"plan_cache_mode": "force_custom_plan"},  # every prepared execution plans again
    "jit": {"jit_above_cost": "0"},  # every statement is JIT-compiled
}
BUSY_LOOP = (
    "local t = redis.call('TIME') local start = t[1] * 1000000 + t[2] "
    "repeat local n = redis.call('TIME') until n[1] * 1000000 + n[2] - start >= tonumber(ARGV[1]) return 1"
)


def export(commit: str, into: Path) -> Path:
    """The tree of `commit`, so its scenario runs with the same venv (PYTHONPATH puts it first)."""
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", commit], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def one_run(tree: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    script = REPO_ROOT / "benchmarks" / "fidelity" / "one_run.py"
    done = subprocess.run(
        [sys.executable, str(script), json.dumps(WORKLOAD)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


class BusyRedis:
    """A background client running a Lua busy loop of `micros` back to back (nothing for 0)."""

    def __init__(self, port: int, micros: int) -> None:
        self.port, self.micros = port, micros
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> BusyRedis:
        if self.micros > 0:
            argv = ["redis-benchmark", "-h", LAB_HOST, "-p", str(self.port), "-c", "1", "-n", "1000000000"]
            argv += ["EVAL", BUSY_LOOP, "0", str(self.micros)]
            self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


class RoleSettings:
    """Per-role PostgreSQL settings that make every statement cost more on the server (new sessions pick them
    up; RESET on exit, also after a failure): the configuration regressions teams really ship."""

    def __init__(self, lab: LabSettings, level: str) -> None:
        self.lab, self.settings = lab, PG_SLOWDOWNS[level]

    def _alter(self, statements: list[str]) -> None:
        lab = self.lab
        dsn = f"host={LAB_HOST} port={lab.postgres_port} user={lab.postgres_user} dbname={lab.postgres_db}"
        with psycopg.connect(dsn, password=lab.postgres_password, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def __enter__(self) -> RoleSettings:
        self._alter([f"ALTER ROLE CURRENT_USER SET {name} = {value}" for name, value in self.settings.items()])
        return self

    def __exit__(self, *_: object) -> None:
        self._alter([f"ALTER ROLE CURRENT_USER RESET {name}" for name in self.settings])


def cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else float("nan")


def flagged_within(clean: list[float], slowed: list[float], name: str) -> int | None:
    """The run (1-based) whose newest value the detector calls a regression, or None within the slowed runs."""
    policy = policy_for(Metric(name, clean[0], "ms"))
    for k in range(1, len(slowed) + 1):
        if evaluate_latest(clean + slowed[:k], policy).status == "regression":
            return k
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="commit of the 'before' harness")
    parser.add_argument("--runs", type=int, default=10, help="clean runs per variant")
    parser.add_argument("--levels", default="0,50,100,200", help="Lua busy-loop lengths (us) for sensitivity")
    parser.add_argument("--pg-levels", default="custom_plan", help=f"of {', '.join(PG_SLOWDOWNS)}")
    parser.add_argument("--slowed-runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write every run's figures here (JSON)")
    args = parser.parse_args()
    lab = LabSettings.from_env()
    work = Path(tempfile.mkdtemp(prefix="fidelity-"))
    trees = {"before": export(args.before, work), "after": REPO_ROOT}
    runs: dict[str, list[dict]] = {v: [] for v in trees}
    slowed: dict[str, dict[str, list[dict]]] = {v: {} for v in trees}
    slowdowns = [(f"redis:{x}us", BusyRedis(lab.redis_port, int(x))) for x in args.levels.split(",") if x]
    slowdowns += [(f"pg:{x}", RoleSettings(lab, x)) for x in args.pg_levels.split(",") if x]
    try:
        print(f"clean runs: {args.runs} per variant, interleaved; load {os.getloadavg()[0]:.1f}", flush=True)
        for i in range(args.runs):
            for variant in list(trees)[:: 1 if i % 2 == 0 else -1]:
                runs[variant].append(one_run(trees[variant]))
        for level, slowdown in slowdowns:
            print(f"sensitivity: {level}; load {os.getloadavg()[0]:.1f}", flush=True)
            with slowdown:
                for i in range(args.slowed_runs):
                    for variant in list(trees)[:: 1 if i % 2 == 0 else -1]:
                        slowed[variant].setdefault(level, []).append(one_run(trees[variant]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps({"clean": runs, "slowed": slowed}, indent=1))
    report(runs, slowed)


def report(runs: dict[str, list[dict]], slowed: dict[str, dict[str, list[dict]]]) -> None:
    def series(items: list[dict], name: str) -> list[float]:
        return [r["metrics"][name] for r in items if name in r["metrics"]]

    print("\nmedian harness/instrument ratio over clean runs (same run, same concurrency):")
    for name in RATIOS:
        print(f"  {name:50s}" + "".join(f"  {v} {statistics.median(series(runs[v], name)):6.1f}x" for v in runs))
    print("\nmedian p50 (ms) and coefficient of variation over clean runs:")
    for name in LATENCY:
        cells = []
        for v in runs:
            values = series(runs[v], name)
            cells.append(f"  {v} {statistics.median(values):6.3f} ms CV {cv(values):5.1%}")
        print(f"  {name:40s}" + "".join(cells))
    print("\nsensitivity: run (of 3) at which the detector flags a regression, '-' if none:")
    for server, names in JUDGED.items():
        for variant in slowed:
            for name in names:
                clean = series(runs[variant], name)
                cells = []
                for level, items in slowed[variant].items():
                    if not level.startswith(f"{server}:"):
                        continue
                    values = series(items, name)
                    change = statistics.median(values) / statistics.median(clean) - 1
                    hit = flagged_within(clean, values, name)
                    cells.append(f"  {level.split(':')[1]:>5s}: {hit or '-'} ({change:+.0%})")
                print(f"  {variant:6s} {name:36s}" + "".join(cells))
    failed = [v for v in runs for r in runs[v] if not all(r["passed"].values())]
    print(f"\nruns with a failed check: {len(failed)} {sorted(set(failed))}")


if __name__ == "__main__":
    main()
