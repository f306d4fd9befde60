"""Client paths for a timed read, in N threads, side by side with the field's instrument at the same concurrency.

.venv/bin/python -m benchmarks.fidelity.clients [--clients 1,4] [--seconds 1.5] [--rounds 2]

Redis: redis-py `Redis.get` (what the cache area timed before) vs `timed_calls.TimedRedis` (own socket, hiredis),
against `redis-benchmark GET`. PostgreSQL: psycopg `execute(..., prepare=True)` vs `timed_calls.PreparedQuery`
(libpq PQexecPrepared), against `pgbench -M prepared` running the same point SELECT. Each option times only the
call; prints p50 and ratio to the instrument per round, then the median over rounds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable

import psycopg
import redis

from regression_pipelines import calibration
from regression_pipelines.lab.settings import LAB_HOST, LabSettings
from regression_pipelines.timed_calls import PreparedQuery, TimedRedis

Loop = Callable[[float, list[int]], None]


def in_threads(loop: Loop, clients: int, seconds: float) -> float:
    """p50 in ms of `clients` threads running `loop` for `seconds`."""
    out: list[int] = []
    workers = [threading.Thread(target=loop, args=(seconds, out)) for _ in range(clients)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return statistics.median(out) / 1e6


def redis_loops(port: int, key: str) -> dict[str, Loop]:
    def redis_py(seconds: float, out: list[int]) -> None:
        client, end = redis.Redis(host=LAB_HOST, port=port), time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.perf_counter_ns()
            client.get(key)
            out.append(time.perf_counter_ns() - t0)
        client.close()

    def timed(seconds: float, out: list[int]) -> None:
        conn, packed, end = TimedRedis(LAB_HOST, port), TimedRedis.pack("GET", key), time.monotonic() + seconds
        while time.monotonic() < end:
            out.append(conn.call(packed)[1])
        conn.close()

    return {"redis-py get": redis_py, "TimedRedis": timed}


def pg_loops(conninfo: str, table: str) -> dict[str, Loop]:
    def psycopg_execute(seconds: float, out: list[int]) -> None:
        rng, end = random.Random(), time.monotonic() + seconds
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while time.monotonic() < end:
                t0 = time.perf_counter_ns()
                conn.execute(f"SELECT value FROM {table} WHERE id = %s", (rng.randrange(100),), prepare=True)
                out.append(time.perf_counter_ns() - t0)

    def prepared(seconds: float, out: list[int]) -> None:
        rng, end = random.Random(), time.monotonic() + seconds
        with psycopg.connect(conninfo, autocommit=True) as conn:
            query = PreparedQuery(conn, f"SELECT value FROM {table} WHERE id = $1")
            while time.monotonic() < end:
                out.append(query.run(rng.randrange(100))[1])

    return {"psycopg execute": psycopg_execute, "PreparedQuery": prepared}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,4")
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    lab = LabSettings.from_env()
    key, table = f"rp:fidelity:clients:{uuid.uuid4().hex[:8]}", f"fidelity_{uuid.uuid4().hex[:8]}"
    conninfo = psycopg.conninfo.make_conninfo(
        host=LAB_HOST, port=lab.postgres_port, user=lab.postgres_user, dbname=lab.postgres_db,
        password=lab.postgres_password,
    )  # fmt: skip
    setup = redis.Redis(host=LAB_HOST, port=lab.redis_port)
    setup.set(key, "17|v|v17")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, value text)")
        conn.execute(f"INSERT INTO {table} SELECT g, 'v' || g FROM generate_series(0, 99) g")
    script = f"\\set id random(0, 99)\nSELECT value FROM {table} WHERE id = :id;\n"
    ratios: dict[tuple[int, str], list[float]] = {}
    try:
        for clients in (int(c) for c in args.clients.split(",")):
            for round_ in range(args.rounds):
                readings = [
                    (calibration.redis_get(LAB_HOST, lab.redis_port, key, clients), redis_loops(lab.redis_port, key)),
                    (
                        calibration.pgbench(LAB_HOST, lab.postgres_port, lab.postgres_user, lab.postgres_db, script,
                                            clients, args.seconds, lab.postgres_password),
                        pg_loops(conninfo, table),
                    ),
                ]  # fmt: skip
                line = [f"{clients} clients, round {round_ + 1}:"]
                for reading, loops in readings:
                    line.append(f"{reading.instrument} {reading.p50_ms:.3f} ms")
                    for name, loop in loops.items():
                        p50 = in_threads(loop, clients, args.seconds)
                        ratios.setdefault((clients, name), []).append(p50 / reading.p50_ms)
                        line.append(f"{name} {p50:.3f} ms ({p50 / reading.p50_ms:.1f}x)")
                print("  ".join(line), flush=True)
    finally:
        setup.delete(key)
        setup.close()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"DROP TABLE {table}")
    print(f"median ratio to the instrument over {args.rounds} rounds:")
    for (clients, name), values in ratios.items():
        print(f"  {clients} clients  {name:16s} {statistics.median(values):.1f}x")


if __name__ == "__main__":
    main()
