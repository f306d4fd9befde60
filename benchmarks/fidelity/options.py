"""Load-generation options for a GET loop at the same concurrency, side by side with redis-benchmark.

.venv/bin/python -m benchmarks.fidelity.options [--clients 4] [--seconds 1.5] [--rounds 3]

Each round runs, back to back against the lab's Redis: redis-benchmark -c N; N threads in one process; N forked
processes; N asyncio tasks in one process. Each option times only the GET call (perf_counter_ns). Prints the
p50 per option and its ratio to the instrument's p50 of the same round, then the median over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import statistics
import threading
import time

import numpy as np
import redis
import redis.asyncio as aredis

from regression_pipelines import calibration
from regression_pipelines.lab.settings import LAB_HOST, LabSettings

KEY = "rp:fidelity:options"


def _loop(port: int, seconds: float, out: list[int]) -> None:
    client = redis.Redis(host=LAB_HOST, port=port)
    timer, end = time.perf_counter_ns, time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = timer()
        client.get(KEY)
        out.append(timer() - t0)
    client.close()


def threads(port: int, clients: int, seconds: float) -> list[int]:
    out: list[int] = []
    workers = [threading.Thread(target=_loop, args=(port, seconds, out)) for _ in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return out


def _child(port: int, seconds: float, queue: multiprocessing.Queue) -> None:
    gc.freeze()
    gc.disable()
    out: list[int] = []
    _loop(port, seconds, out)
    queue.put(out)


def processes(port: int, clients: int, seconds: float) -> list[int]:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(port, seconds, queue)) for _ in range(clients)]
    for p in procs:
        p.start()
    out = [ns for _ in procs for ns in queue.get(timeout=seconds + 30)]
    for p in procs:
        p.join()
    return out


def tasks(port: int, clients: int, seconds: float) -> list[int]:
    async def main() -> list[int]:
        client = aredis.Redis(host=LAB_HOST, port=port, max_connections=clients)
        out: list[int] = []
        end = time.monotonic() + seconds

        async def one() -> None:
            while time.monotonic() < end:
                t0 = time.perf_counter_ns()
                await client.get(KEY)
                out.append(time.perf_counter_ns() - t0)

        await asyncio.gather(*(one() for _ in range(clients)))
        await client.aclose()
        return out

    return asyncio.run(main())


OPTIONS = {"threads": threads, "processes": processes, "asyncio": tasks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    port = LabSettings.from_env().redis_port
    setup = redis.Redis(host=LAB_HOST, port=port)
    setup.set(KEY, "17|v|v17")
    ratios: dict[str, list[float]] = {name: [] for name in OPTIONS}
    p50s: dict[str, list[float]] = {"redis-benchmark": [], **{name: [] for name in OPTIONS}}
    try:
        for round_ in range(args.rounds):
            reading = calibration.redis_get(LAB_HOST, port, KEY, args.clients)
            p50s["redis-benchmark"].append(reading.p50_ms)
            line = [f"round {round_ + 1}: redis-benchmark p50 {reading.p50_ms:.3f} ms"]
            for name, option in OPTIONS.items():
                p50 = float(np.percentile(option(port, args.clients, args.seconds), 50)) / 1e6
                p50s[name].append(p50)
                ratios[name].append(p50 / reading.p50_ms)
                line.append(f"{name} {p50:.3f} ms ({p50 / reading.p50_ms:.1f}x)")
            print("; ".join(line), flush=True)
    finally:
        setup.delete(KEY)
    print(f"median of {args.rounds} rounds at {args.clients} clients:")
    for name, values in p50s.items():
        ratio = f", {statistics.median(ratios[name]):.1f}x the instrument" if name in ratios else ""
        print(f"  {name:16s} p50 {statistics.median(values):.3f} ms{ratio}")


if __name__ == "__main__":
    main()
