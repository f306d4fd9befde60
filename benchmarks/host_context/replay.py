"""Host context on real lab histories: record cache_coherence runs before and during a slowdown, replay them.

Two histories are recorded on the lab (each: clean runs, then runs under a condition):
- `host_load`: the host gets busier for the lab and the harness: CPU burners share one CPU cgroup with this
  process, the lab's Redis and PostgreSQL (so the other users of a shared machine are not the ones slowed);
- `redis_lua`: the server gets slower: a background client keeps Redis busy with a Lua busy loop (EVAL of a
  counting loop, ~2 ms each, back to back with a short pause), as a heavy script of another tenant would.
Each run goes through the kit (`run_area`: the supervisor records `host.load1`, `host.cpu_steal_pct`), and its
figures are stored as JSON lines (benchmarks/host_context/<name>.jsonl). Replaying stores each run's metadata
in a fresh Dagster instance (as the factory does) and judges the newest run after every one of them with
`evaluation.evaluate_asset`, the function the sensor, the perf check and `regress run` use: the table shows,
per run of the step, the regressed latency figures and their host context ("server/host slower: instrument
+x %" or "client path"). RESULTS.md keeps the tables.

Run: .venv/bin/python -m benchmarks.host_context.replay record [--clean 8] [--step 6]   # needs the lab
     .venv/bin/python -m benchmarks.host_context.replay replay                          # the stored histories
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from regression_pipelines.evaluation import evaluate_asset
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.results import Metric, ScenarioResult, to_metadata

HERE = Path(__file__).resolve().parent
AREA_SETTINGS = {"max_seconds": 2.0, "latency_seconds": 1.0, "calibration_seconds": 1.0, "settle_seconds": 0.2}
SHOWN = ("cache_aside.cache_read_p50_ms", "write_through.cache_read_p50_ms", "cache_aside.db_read_p50_ms")
LUA_LOOP = "local i = 0 while i < tonumber(ARGV[1]) do i = i + 1 end return i"


def _burn(stop: Any) -> None:
    while not stop.is_set():
        sum(range(10_000))


CPUSET_CGROUP = Path("/sys/fs/cgroup/cpuset")


@contextmanager
def host_load(settings: LabSettings, burners: int = 4, cpu: str | None = None) -> Iterator[str]:
    """The host gets busier for the lab and the harness, and only for them: this process (and so the instruments
    it starts), the lab's Redis and PostgreSQL, and `burners` CPU burner processes share one CPU (a cpuset cgroup,
    v1), as more work on their host would. Each request then waits for its turn on the CPU, so medians move (a
    CFS quota, tried first, throttles in 100 ms slices: the medians did not move, only throughput and tails). On
    a shared machine plain burners would mostly slow the other users down. Everything is moved back after.
    Measured here (2 cores, load 3): on one CPU the cache reads got 3x faster (client and server on one core
    skip cross-CPU wake-ups) while redis-benchmark rose 40 %; so the default, `cpu=None`, loads the whole host
    with plain burners (only on a host nobody else uses)."""
    if cpu is None:  # the whole host busier: burners on every CPU, as another tenant's batch job would be
        with _burners(burners) as started:
            yield f"{started} CPU burners on the whole host (no cgroup)"
        return
    from regression_pipelines.kit.nemeses.lab import descendants
    from regression_pipelines.lab import control

    group = CPUSET_CGROUP / f"regress-hostload-{os.getpid()}"
    group.mkdir()
    stop = multiprocessing.Event()
    workers: list[multiprocessing.Process] = []
    try:
        (group / "cpuset.cpus").write_text(cpu)
        (group / "cpuset.mems").write_text((CPUSET_CGROUP / "cpuset.mems").read_text().strip())
        roots = [os.getpid(), *control.service_pids(settings, "redis").values()]
        roots += control.service_pids(settings, "postgres").values()
        for pid in descendants(roots):
            _move(pid, group)
        workers = [multiprocessing.Process(target=_burn, args=(stop,), daemon=True) for _ in range(burners)]
        for worker in workers:
            worker.start()  # children of this process: born in the group
        yield f"{burners} CPU burners on one CPU (cpuset {cpu}) with the harness, Redis, PostgreSQL"
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=5)
        for pid in (group / "cgroup.procs").read_text().split():
            _move(int(pid), CPUSET_CGROUP)
        group.rmdir()


@contextmanager
def _burners(count: int) -> Iterator[int]:
    stop = multiprocessing.Event()
    workers = [multiprocessing.Process(target=_burn, args=(stop,), daemon=True) for _ in range(count)]
    for worker in workers:
        worker.start()
    try:
        yield count
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=5)


def _move(pid: int, group: Path) -> None:
    with contextlib.suppress(OSError):  # gone meanwhile
        (group / "cgroup.procs").write_text(str(pid))


def _lua_client(port: int, loop: int, pause_s: float, stop: Any) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    while not stop.is_set():
        client.eval(LUA_LOOP, 0, loop)
        time.sleep(pause_s)


@contextmanager
def redis_lua(settings: LabSettings, target_ms: float = 2.0, pause_s: float = 0.001) -> Iterator[str]:
    """A background client process keeping the lab's Redis busy with a Lua busy loop of ~`target_ms` per EVAL,
    `pause_s` apart (about two thirds of Redis's time): the server gets slower. Its own process, so it never
    shares the harness's interpreter; the loop length is measured on this host first, so the load does not
    turn it into a stall that no instrument could measure."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=settings.redis_port)
    probe = 20_000
    spent = []
    for _ in range(5):
        started = time.perf_counter()
        client.eval(LUA_LOOP, 0, probe)
        spent.append(time.perf_counter() - started)
    client.close()
    loop = max(1000, int(probe * target_ms / (1000 * sorted(spent)[2])))
    stop = multiprocessing.Event()
    worker = multiprocessing.Process(target=_lua_client, args=(settings.redis_port, loop, pause_s, stop), daemon=True)
    worker.start()
    try:
        yield (
            f"a client process running a Lua busy loop of {loop} iterations (~{target_ms:.0f} ms each), "
            f"{pause_s * 1000:.0f} ms apart"
        )
    finally:
        stop.set()
        worker.join(timeout=10)


def _one_run(settings: LabSettings) -> ScenarioResult:
    from assets.cache_coherence import AREA
    from regression_pipelines.kit import RunContext, run_area
    from tests.chaos_areas import lab_resources

    resources = {k: v for k, v in lab_resources(settings).items() if k in AREA.resources}
    with tempfile.TemporaryDirectory() as out:
        return run_area(AREA, AREA.config(**AREA_SETTINGS), RunContext(f"hc-{time.time_ns()}", resources, Path(out)))


def record(name: str, condition: Callable[[], object], clean: int, step: int, settings: LabSettings) -> Path:
    """`clean` runs, then `step` runs with the condition on throughout (the load average needs time to rise)."""
    path = HERE / f"{name}.jsonl"
    with path.open("w") as out:
        for index in range(clean):
            _keep(out, name, index, "clean", "", _one_run(settings))
        with condition() as what:  # type: ignore[attr-defined]
            time.sleep(5.0)
            for index in range(clean, clean + step):
                _keep(out, name, index, "step", str(what), _one_run(settings))
    return path


def _keep(out: object, name: str, index: int, phase: str, what: str, result: ScenarioResult) -> None:
    line = {"run": index, "phase": phase, "condition": what, "metrics": [_metric(m) for m in result.metrics]}
    out.write(json.dumps(line) + "\n")  # type: ignore[attr-defined]
    out.flush()  # type: ignore[attr-defined]
    shown = {m.name: round(m.value, 4) for m in result.metrics if m.name in (*SHOWN, "host.load1")}
    print(f"{name} run {index} ({phase}): {shown}", flush=True)


def _metric(metric: Metric) -> dict[str, object]:
    return {
        "name": metric.name, "value": metric.value, "unit": metric.unit, "direction": metric.direction.value,
        "kind": metric.kind.value, "samples": metric.samples,
    }  # fmt: skip


def replay(path: Path) -> list[str]:
    """Judge each run of the step as it arrives; lines of a Markdown table."""
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [
        f"### {path.stem}: {sum(r['phase'] == 'clean' for r in runs)} clean runs, then "
        f"{sum(r['phase'] == 'step' for r in runs)} with {next((r['condition'] for r in runs if r['condition']), '')}",
        "",
        "| run | phase | load1 | instrument redis_get p50 (ms) | regressed figure: verdict; host context |",
        "| --- | --- | --- | --- | --- |",
    ]
    with dg.instance_for_test() as instance:
        for run in runs:
            result = ScenarioResult("cache_coherence", metrics=[Metric(**m) for m in run["metrics"]])
            stored = dg.AssetMaterialization("cache_coherence", metadata=to_metadata(result))
            instance.report_runless_asset_event(stored)
            evaluation = evaluate_asset(instance, "cache_coherence")
            figures = {m["name"]: m["value"] for m in run["metrics"]}
            judged = [mv.describe() for mv in evaluation.regressions if mv.metric.name.endswith("_p50_ms")]
            judged = judged if evaluation else []
            rows.append(
                f"| {run['run']} | {run['phase']} | {figures.get('host.load1', float('nan')):.2f} | "
                f"{figures.get('calibration.redis_get_p50_ms', float('nan')):.4f} | "
                f"{'<br>'.join(judged) or '-'} |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("record", "replay"))
    parser.add_argument("--clean", type=int, default=8)
    parser.add_argument("--step", type=int, default=6)
    parser.add_argument("--only", default="", help="host_load or redis_lua (default: both)")
    args = parser.parse_args()
    settings = LabSettings.from_env()
    histories = {"host_load": lambda: host_load(settings), "redis_lua": lambda: redis_lua(settings)}
    chosen = [n for n in histories if not args.only or n == args.only]
    if args.action == "record":
        for name in chosen:
            record(name, histories[name], args.clean, args.step, settings)
    lines = ["# Host context on replayed lab histories (cache_coherence)", ""]
    for name in chosen:
        lines += [*replay(HERE / f"{name}.jsonl"), ""]
    text = "\n".join(lines)
    print(text)
    if not args.only:
        (HERE / "RESULTS.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
