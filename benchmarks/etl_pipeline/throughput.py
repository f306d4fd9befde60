"""ETL pipeline throughput against the broker's own ceiling, side by side, and worker memory over a long run.

Each round runs, on the lab's broker and database, (1) a bare pika loop: one publisher with confirms (a window in
flight) into a durable queue, persistent messages, one consumer process with manual acks, no work at all; and
(2) the pipeline with the same job count (confirms, durable queues, three stages, committed loads). It prints
both rates, their ratio, the pipeline's latencies and its worker RSS growth; then the medians over the rounds.

A last, longer pipeline run (--rss-jobs, default 100,000 jobs) reports the workers' RSS growth over it
(0 skips it).

Run: .venv/bin/python -m benchmarks.etl_pipeline.throughput [--runs 3] [--jobs 20000] [--rss-jobs 100000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import pika

from assets.etl_pipeline import AREA, broker
from assets.etl_pipeline.config import EtlConfig
from assets.etl_pipeline.generator import generate
from regression_pipelines.kit import RunContext, run_area
from regression_pipelines.lab.settings import LabSettings
from resources.postgres import PostgresResource
from resources.rabbitmq import RabbitMQResource

SHOWN = (
    "throughput.jobs_per_s",
    "publish.confirm_p50_ms",
    "publish.confirm_p99_ms",
    "e2e.p50_ms",
    "e2e.p95_ms",
    "e2e.p99_ms",
    "pg.rows_per_s",
    "load.rows_per_commit",
    "worker.rss_growth_mb",
    "tenant.fairness_ratio",
    "queue.max_depth_extract",
    "queue.max_depth_transform",
    "queue.max_depth_load",
)


def _params(lab: LabSettings) -> pika.ConnectionParameters:
    credentials = pika.PlainCredentials(lab.rabbitmq_user, lab.rabbitmq_password)
    return pika.ConnectionParameters(host="127.0.0.1", port=lab.rabbitmq_port, credentials=credentials)


def _consume(lab: LabSettings, queue: str, count: int, done: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    connection = pika.BlockingConnection(_params(lab))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=500)
    seen = 0
    for method, _props, _body in channel.consume(queue, inactivity_timeout=30):
        if method is None:
            break
        seen += 1
        if seen % 100 == 0 or seen == count:
            channel.basic_ack(method.delivery_tag, multiple=True)
        if seen == count:
            break
    done.put((time.time(), seen))
    connection.close()


def bare_loop(lab: LabSettings, count: int) -> float:
    """Messages/s from first publish to last ack through one durable queue: the broker's ceiling here."""
    queue = f"etl-bench.{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(_params(lab))
    connection.channel().queue_declare(queue, durable=True)
    done: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()  # type: ignore[type-arg]
    consumer = multiprocessing.get_context("spawn").Process(target=_consume, args=(lab, queue, count, done))
    consumer.start()
    time.sleep(1.0)  # the consumer is up before the clock starts, as the pipeline's workers are
    window = broker.ConfirmWindow(connection, 256)
    bodies = [job.body for job in generate(count, 4, 0.0, seed=1)]
    started = time.time()
    for index, body in enumerate(bodies):
        window.publish(queue, body, broker.properties(str(index), "acme", time.time()), index)
        if index % 32 == 0:
            window.pump()
            window.take()
    window.flush()
    finished, seen = done.get(timeout=600)
    consumer.join(timeout=30)
    connection.channel().queue_delete(queue)
    connection.close()
    if seen != count:
        raise RuntimeError(f"bare loop consumed {seen} of {count}")
    return count / (finished - started)


def pipeline(lab: LabSettings, count: int) -> dict[str, float]:
    resources = {
        "postgres": PostgresResource(
            port=lab.postgres_port, user=lab.postgres_user, password=lab.postgres_password, dbname=lab.postgres_db
        ),
        "rabbitmq": RabbitMQResource(port=lab.rabbitmq_port, user=lab.rabbitmq_user, password=lab.rabbitmq_password),
    }
    config = EtlConfig(jobs=count, max_seconds=1800)
    with tempfile.TemporaryDirectory() as folder:
        result = run_area(AREA, config, RunContext("benchmark", resources, Path(folder)))
    failed = [inv.name for inv in result.invariants if not inv.passed]
    if failed:
        raise RuntimeError(f"pipeline failed checks {failed}: the figures would not mean anything")
    return {m.name: m.value for m in result.metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rss-jobs", type=int, default=100_000)
    args = parser.parse_args()
    lab = LabSettings.from_env()
    rounds: list[dict[str, float]] = []
    for run in range(args.runs):
        bare = bare_loop(lab, args.jobs)
        figures = pipeline(lab, args.jobs)
        figures["bare.msgs_per_s"] = bare
        figures["ratio.pipeline_to_bare"] = figures["throughput.jobs_per_s"] / bare
        rounds.append(figures)
        print(
            f"round {run + 1}: bare {bare:,.0f} msg/s, pipeline {figures['throughput.jobs_per_s']:,.0f} jobs/s "
            f"(ratio {figures['ratio.pipeline_to_bare']:.2f}), "
            f"worker RSS growth {figures['worker.rss_growth_mb']:.1f} MB",
            flush=True,
        )
    print(f"\nmedians of {args.runs} rounds, {args.jobs:,} jobs each (machine shared; load {_load()}):")
    for name in ("bare.msgs_per_s", "ratio.pipeline_to_bare", *SHOWN):
        values = [r[name] for r in rounds]
        print(f"  {name:28s} {statistics.median(values):12,.2f}   (min {min(values):,.2f}, max {max(values):,.2f})")
    if args.rss_jobs:
        long = pipeline(lab, args.rss_jobs)
        print(
            f"\none run of {args.rss_jobs:,} jobs: worker RSS growth {long['worker.rss_growth_mb']:.1f} MB, "
            f"{long['throughput.jobs_per_s']:,.0f} jobs/s, e2e p99 {long['e2e.p99_ms']:,.0f} ms (load {_load()})"
        )


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


if __name__ == "__main__":
    main()
