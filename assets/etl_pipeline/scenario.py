"""The ETL pipeline run: seeded jobs published with confirms, worker processes moving them extract ->
transform -> load into PostgreSQL, then the judges (conservation, isolation, drained queues, Great
Expectations) and the figures. Plain Python: takes connection factories, returns a ScenarioResult; every
queue, table, role and process it made is removed on the way out, also after a failure."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import psycopg

from assets.etl_pipeline import batch, broker, isolation, oracle, quality, store
from assets.etl_pipeline.config import EtlConfig
from assets.etl_pipeline.generator import Job, generate, tenant_names
from assets.etl_pipeline.processes import Workers
from regression_pipelines.measure import ErrorTally, percentile
from regression_pipelines.results import Direction, Metric, MetricKind, ScenarioResult

AREA = "etl_pipeline"
INVARIANTS = oracle.INVARIANTS
KILL_FAULTS = {
    "worker_sigkill": "after_commit",
    "non_idempotent_load": "after_commit",
    "ack_before_commit": "before_commit",
}
IDLE_S = 1.5  # nothing moved for this long with empty work queues: the run is over (some jobs may be lost)
POISON_RATE = 0.05
PUBLISH_WINDOW = 256  # confirms in flight per publisher


@dataclass(frozen=True)
class Services:
    """How the scenario reaches the systems under test (built from the area's resources)."""

    amqp_connect: Callable[[], pika.BlockingConnection]
    amqp_params: dict[str, Any]  # host, port, user, password, vhost: handed to workers on stdin only
    pg_connect: Callable[[], psycopg.Connection]
    pg_conninfo: str
    restart_broker: Callable[[], None] | None = None


@dataclass
class Published:
    produced: dict[str, tuple[str, bool]] = field(default_factory=dict)  # confirmed: job id -> (tenant, valid)
    published_at: dict[str, float] = field(default_factory=dict)
    confirm_ms: list[float] = field(default_factory=list)
    nacked: int = 0
    republished: int = 0


class DepthSampler(threading.Thread):
    """Largest ready-message count seen per stage queue (passive declares on a connection of its own)."""

    def __init__(self, services: Services, topology: broker.Topology, deadline: float) -> None:
        super().__init__(daemon=True)
        self.services, self.topology, self.deadline = services, topology, deadline
        self.max_depth: dict[str, int] = defaultdict(int)
        self.last: dict[str, int] = {}
        self.done = threading.Event()

    def run(self) -> None:
        connection = None
        while not self.done.is_set() and time.monotonic() < self.deadline:
            try:
                if connection is None or not connection.is_open:
                    connection = self.services.amqp_connect()
                    channel = connection.channel()
                self.last = broker.depths(channel, self.topology)
                for queue, depth in self.last.items():
                    self.max_depth[queue] = max(self.max_depth[queue], depth)
            except Exception:  # a restarting broker: sample again once it is back
                connection = None
                time.sleep(0.2)
            self.done.wait(0.05)
        if connection is not None and connection.is_open:
            connection.close()


def run(config: EtlConfig, services: Services, output_dir: Path, log: Any = None) -> ScenarioResult:
    """`output_dir` keeps the run's files: the source batch it published from and the loaded rows."""
    log = log or logging.getLogger(__name__)
    run_id = uuid.uuid4().hex[:8]
    names = store.Names.for_run(run_id)
    topology = broker.Topology(
        prefix=f"etl.{run_id}",
        queue_type=config.queue_type,
        max_length=config.max_length,
        overflow=config.overflow,
        message_ttl_ms=config.message_ttl_ms,
        max_priority=config.max_priority,
    )
    folder = Path(tempfile.mkdtemp(prefix=f"etl-{run_id}-"))
    workers = Workers(folder)
    deadline = time.monotonic() + config.max_seconds
    owner = services.pg_connect()
    amqp = services.amqp_connect()
    log.info(f"etl_pipeline run {run_id}: queues {topology.prefix}.*, tables {names.jobs}, {names.failed}, "
             f"role {names.role}")  # fmt: skip
    try:
        store.create(owner, names, idempotent=config.fault != "non_idempotent_load", rls=config.fault != "rls_disabled")
        topology.declare(amqp.channel(), bind_dlq=config.fault != "dlq_unbound")
        environment = {"run_prefix": topology.prefix, **_environment(amqp, owner)}
        amqp.close()
        return _run(config, services, names, topology, workers, owner, deadline, environment, output_dir, log)
    finally:
        workers.stop(timeout=5)
        _cleanup(services, names, topology, owner, log)
        shutil.rmtree(folder, ignore_errors=True)


def _run(
    config: EtlConfig,
    services: Services,
    names: store.Names,
    topology: broker.Topology,
    workers: Workers,
    owner: psycopg.Connection,
    deadline: float,
    environment: dict[str, Any],
    output_dir: Path,
    log: Any,
) -> ScenarioResult:
    source = output_dir / "source_batch.parquet"
    batch.write_source(generate(config.jobs, config.tenants, config.malformed_rate, config.seed,
                                POISON_RATE if config.fault == "poison" else 0.0), source)  # fmt: skip
    jobs = batch.read_source(source)  # the file is the input: the producers publish what it holds
    base = _base_spec(config, services, names, topology)
    sampler = DepthSampler(services, topology, deadline)
    sampler.start()
    started = time.time()
    if config.fault != "burst":
        _start_workers(config, workers, base)
        _wait_for_consumers(services, topology, config, deadline)
    phases = {"workers_up": time.time() - started}
    published = _publish(config, services, topology, jobs, deadline)
    phases["published"] = time.time() - started
    if config.fault == "burst":  # everything was queued before any consumer: the overflow policy decides
        _start_workers(config, workers, base)
        _wait_for_consumers(services, topology, config, deadline)
    _wait_until_settled(owner, names, sampler, topology, len(published.produced), deadline)
    phases["settled"] = time.time() - started
    workers.stop()
    phases["stopped"] = time.time() - started
    sampler.done.set()
    sampler.join(timeout=5)
    time.sleep(0.2)  # unacked messages of the closed channels are back as ready ones
    depths, dead = _final_queues(services, topology, config.jobs)
    loaded = store.fetch_all(owner, names.jobs, batch.LOADED_COLUMNS)
    failed = store.fetch_all(owner, names.failed, ("job_id", "tenant_id", "error_details", "failed_at"))
    elapsed = time.time() - started
    loaded_file = output_dir / "loaded_jobs.parquet"
    batch.export_loaded(loaded, loaded_file)  # the run drops the table; its rows stay for the loaded_jobs stage
    conservation = oracle.conserve(
        published.produced, [j.job_id for j in jobs], [r[0] for r in loaded], [r[0] for r in failed], dead
    )
    tenants = tenant_names(config.tenants)
    invariants = [
        oracle.conservation_invariant(conservation),
        isolation.probe(
            services.pg_connect, names, tenants, [(r[0], r[1]) for r in loaded], {j.job_id: j.tenant for j in jobs}
        ),  # fmt: skip
        oracle.drained_invariant(
            {q: depths[q] for q in depths if q != topology.dlq},
            [job for job, _tenant, reason in dead if reason == "rejected"],
            [r[0] for r in failed if r[2]],
            topology.dead_letter_strategy,
        ),
        quality.validate([r[: len(quality.COLUMNS)] for r in loaded], tenants, conservation.rows_expected()),
    ]
    stats = workers.stats()
    errors = ErrorTally()
    errors.ok(sum(s["processed"] for s in stats) + len(jobs))
    for s in stats:
        for text in s["errors"]:
            errors.failed(text, 0)
        errors.errors += s["error_count"]
    for crash in workers.crashes:
        errors.failed(crash)
    error_metric, error_invariant = errors.figures("job deliveries and publishes")
    invariants.append(error_invariant)
    metrics = _metrics(config, published, loaded, failed, stats, sampler, dead, conservation, topology)
    metrics.append(error_metric)
    phases["judged"] = time.time() - started
    log.info(
        f"etl_pipeline: {len(published.produced)} jobs in {elapsed:.1f} s, {len(workers.killed)} worker(s) killed; "
        + ", ".join(f"{phase} at {at:.1f} s" for phase, at in phases.items())
    )
    environment.update(
        queue_type=config.queue_type,
        fault=config.fault,
        workers_killed=len(workers.killed),
        dead_letter_strategy=topology.dead_letter_strategy,
        publish_nacked=published.nacked,
        republished=published.republished,
    )
    return ScenarioResult(
        area=AREA,
        metrics=metrics,
        invariants=invariants,
        environment=environment,
        comparable_on={
            "fault": config.fault,
            "queue_type": config.queue_type,
            "jobs": config.jobs,
            "loaders": config.loaders,
            "transformers": config.transformers,
            "batch_size": config.batch_size,
            "prefetch": config.prefetch,
            # only when set: runs from before the setting (no priorities) keep their baseline
            **({"max_priority": config.max_priority} if config.max_priority else {}),
        },
        stages={
            oracle.SOURCE_BATCH: batch.source_stage(source, config.seed),
            oracle.LOADED_JOBS: batch.loaded_stage(loaded_file, names.jobs),
        },
    )


def _base_spec(config: EtlConfig, services: Services, names: store.Names, topology: broker.Topology) -> dict[str, Any]:
    return {
        "amqp": services.amqp_params,
        "pg_conninfo": services.pg_conninfo,
        "names": {"jobs": names.jobs, "failed": names.failed, "role": names.role},
        "topology": {
            "prefix": topology.prefix,
            "queue_type": topology.queue_type,
            "max_length": topology.max_length,
            "overflow": topology.overflow,
            "message_ttl_ms": topology.message_ttl_ms,
            "max_priority": topology.max_priority,
        },
        "prefetch": config.prefetch,
        "batch_size": config.batch_size,
        "batch_wait_ms": config.batch_wait_ms,
        "idempotent": config.fault != "non_idempotent_load",
        "ack_early": config.fault == "ack_before_commit",
        "slow_ms": config.slow_ms if config.fault == "slow_consumer" else 0,
        "drop_field": "priority" if config.fault == "drop_field" else None,
        "max_seconds": config.max_seconds + 5,
    }


def _start_workers(config: EtlConfig, workers: Workers, base: dict[str, Any]) -> None:
    for stage in ("extract", "transform"):
        for _ in range(config.transformers):
            workers.start({**base, "stage": stage})
    for index in range(config.loaders):
        spec = {**base, "stage": "load"}
        if index == 0 and config.fault in KILL_FAULTS:
            spec.update(kill_at_batch=2, kill_point=KILL_FAULTS[config.fault])

            def kill_and_replace(proc: Any) -> None:
                workers.sigkill(proc)  # the real fault: SIGKILL mid-batch
                workers.start({**base, "stage": "load"})  # a supervisor brings a fresh loader

            workers.start(spec, on_paused=kill_and_replace)
        else:
            workers.start(spec)


def _wait_for_consumers(services: Services, topology: broker.Topology, config: EtlConfig, deadline: float) -> None:
    """Publish only once every worker consumes: e2e latency then measures the pipeline, not process start-up."""
    want = {topology.queue("extract"): config.transformers, topology.queue("transform"): config.transformers,
            topology.queue("load"): config.loaders}  # fmt: skip
    connection = services.amqp_connect()
    try:
        channel = connection.channel()
        while time.monotonic() < deadline:
            counts = {q: channel.queue_declare(q, passive=True).method.consumer_count for q in want}
            if all(counts[q] >= n for q, n in want.items()):
                return
            time.sleep(0.05)
    finally:
        connection.close()


def _publish(
    config: EtlConfig, services: Services, topology: broker.Topology, jobs: list[Job], deadline: float
) -> Published:
    """Publish every job with confirms (a window in flight); after a lost connection, publish again every job
    whose confirm never came (its outcome is unknown: at-least-once, the loader's upsert absorbs a twin)."""
    out = Published()
    restart_at = len(jobs) // 3 if config.fault == "broker_restart" else -1
    restarter: threading.Thread | None = None
    queue = topology.queue("extract")
    priority = {name: min(rank, config.max_priority) for rank, name in enumerate(tenant_names(config.tenants))}
    todo = list(jobs)
    window: broker.ConfirmWindow | None = None
    while todo and time.monotonic() < deadline:
        try:
            if window is None:
                window = broker.ConfirmWindow(broker.connect_retrying(services.amqp_connect, deadline), PUBLISH_WINDOW)
            while todo and time.monotonic() < deadline:
                job = todo[-1]
                if len(out.published_at) == restart_at and services.restart_broker is not None and restarter is None:
                    restarter = threading.Thread(target=services.restart_broker, daemon=True)
                    restarter.start()
                published_at = time.time()
                out.published_at[job.job_id] = published_at
                props = broker.properties(job.job_id, job.tenant, published_at, priority.get(job.tenant, 0))
                window.publish(queue, job.body, props, (job, time.perf_counter()))
                todo.pop()  # only now: a publish that raised is tried again on the next connection
                if len(todo) % 32 == 0:
                    window.pump()
                    _confirmed(out, window.take())
            window.flush(max(0.0, deadline - time.monotonic()))
            _confirmed(out, window.take())
        except broker.CONNECTION_ERRORS:
            if window is not None:
                _confirmed(out, window.take())  # confirms that came in with the error still count
                unknown = [token[0] for token in window.pending()]
                out.republished += len(unknown)
                todo.extend(unknown)
                window = None
    if restarter is not None:
        restarter.join(timeout=max(0.0, deadline - time.monotonic()))
    if window is not None and window.connection.is_open:
        window.connection.close()
    return out


def _confirmed(out: Published, done: list[tuple[Any, bool]]) -> None:
    now = time.perf_counter()
    for (job, sent), acked in done:
        out.confirm_ms.append((now - sent) * 1000)
        if acked:
            out.produced[job.job_id] = (job.tenant, job.valid)
        else:
            out.nacked += 1


def _wait_until_settled(
    owner: psycopg.Connection,
    names: store.Names,
    sampler: DepthSampler,
    topology: broker.Topology,
    produced: int,
    deadline: float,
) -> None:
    """Until every produced job is accounted for, or nothing moved for IDLE_S with empty work queues."""
    work = [topology.queue(s) for s in broker.STAGES]
    last: tuple[Any, ...] = ()
    since = time.monotonic()
    while time.monotonic() < deadline:
        counts = store.counts(owner, names)
        depths = tuple(sampler.last.get(q, -1) for q in work)
        empty = all(d == 0 for d in depths)
        if sum(counts) >= produced and empty:
            return
        if (counts, depths) != last:
            last, since = (counts, depths), time.monotonic()
        elif empty and time.monotonic() - since >= IDLE_S:
            return
        time.sleep(0.1)


def _final_queues(
    services: Services, topology: broker.Topology, limit: int
) -> tuple[dict[str, int], list[tuple[str, str, str]]]:
    connection = broker.connect_retrying(services.amqp_connect, time.monotonic() + 30)
    try:
        channel = connection.channel()
        depths = broker.depths(channel, topology)
        dead = broker.drain_dead_letters(channel, topology.dlq, limit * 2)
        return depths, dead
    finally:
        connection.close()


def _metrics(
    config: EtlConfig,
    published: Published,
    loaded: list[tuple[Any, ...]],
    failed: list[tuple[Any, ...]],
    stats: list[dict[str, Any]],
    sampler: DepthSampler,
    dead: list[tuple[str, str, str]],
    conservation: oracle.Conservation,
    topology: broker.Topology,
) -> list[Metric]:
    perf, vol = MetricKind.PERFORMANCE, MetricKind.VOLUME
    confirm = published.confirm_ms
    higher, lower = Direction.HIGHER_IS_BETTER, Direction.LOWER_IS_BETTER
    e2e_ms = [(row[-1] - row[-2]) * 1000 for row in loaded]
    done_at: dict[str, float] = {row[0]: row[-1] for row in loaded}
    done_at.update({row[0]: row[3].timestamp() for row in failed})
    start = min(published.published_at.values(), default=0.0)
    end = max(done_at.values(), default=start)
    accounted = len(done_at)
    throughput = accounted / (end - start) if end > start else 0.0
    loaders = [s for s in stats if s["role"] == "load"]
    db_s = sum(s["db_seconds"] for s in loaders)
    rows = sum(s["loaded_rows"] for s in loaders)
    commits = sum(s["commits"] for s in loaders)
    metrics = [
        Metric("throughput.jobs_per_s", throughput, "jobs/s", higher, perf, samples=accounted),
        *(
            Metric(f"publish.confirm_p{q}_ms", percentile(confirm, q), "ms", lower, perf, len(confirm))
            for q in (50, 99)
        ),
        *(Metric(f"e2e.p{q}_ms", percentile(e2e_ms, q), "ms", lower, perf, len(e2e_ms)) for q in (50, 95, 99)),
        *(
            Metric(f"queue.max_depth_{stage}", sampler.max_depth.get(topology.queue(stage), 0), "messages", lower, vol)
            for stage in broker.STAGES
        ),
        Metric("redeliveries", sum(s["redelivered"] for s in stats), "messages", lower, vol),
        Metric("dead_lettered", len(dead), "messages", lower, vol),
        Metric("worker.rss_growth_mb", max((s["rss_end_mb"] - s["rss_start_mb"] for s in stats), default=0.0), "MB",
               lower, perf),
        Metric("tenant.fairness_ratio", _fairness(published, done_at), "ratio", higher, perf),
        Metric("pg.rows_per_s", rows / db_s if db_s else 0.0, "rows/s", higher, perf, samples=rows),
        Metric("load.rows_per_commit", rows / commits if commits else 0.0, "rows", higher, vol),
        Metric("jobs.produced", conservation.total("produced"), "jobs", higher, vol),
        Metric("jobs.loaded", conservation.total("loaded"), "jobs", higher, vol),
        Metric("jobs.failed", conservation.total("failed"), "jobs", lower, vol),
        Metric("jobs.lost", conservation.total("lost"), "jobs", lower, vol),
        Metric("jobs.duplicated", conservation.total("duplicated"), "rows", lower, vol),
        Metric("config.jobs", config.jobs, "jobs", higher, MetricKind.INFO),
    ]  # fmt: skip
    return metrics


def _fairness(published: Published, done_at: dict[str, float]) -> float:
    """Slowest tenant's served/offered rate over the fastest's (1.0: every tenant drained at its own pace)."""
    per_tenant: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for job_id, (tenant, _valid) in published.produced.items():
        if job_id in done_at:
            per_tenant[tenant].append((published.published_at[job_id], done_at[job_id]))
    ratios = []
    for pairs in per_tenant.values():
        if len(pairs) < 10:
            continue
        sent = [p for p, _ in pairs]
        first, last_sent, last_done = min(sent), max(sent), max(d for _, d in pairs)
        if last_sent > first and last_done > first:
            ratios.append((last_sent - first) / (last_done - first))  # served rate / offered rate
    return min(ratios) / max(ratios) if len(ratios) >= 2 else float("nan")


def _environment(amqp: pika.BlockingConnection, owner: psycopg.Connection) -> dict[str, Any]:
    server = amqp._impl.server_properties or {}  # noqa: SLF001 - pika exposes the broker's version only here
    version = server.get("version", b"?")
    return {
        "rabbitmq_version": version.decode() if isinstance(version, bytes) else str(version),
        "postgres_version": str(owner.execute("SHOW server_version").fetchone()[0]),  # type: ignore[index]
        "pika_version": pika.__version__,
    }


def _cleanup(
    services: Services, names: store.Names, topology: broker.Topology, owner: psycopg.Connection, log: Any
) -> None:
    """Drop queues, exchange, tables and role; a failure here is logged, never hides the run's own error."""
    try:
        connection = broker.connect_retrying(services.amqp_connect, time.monotonic() + 30)
        try:
            topology.delete(connection.channel())
        finally:
            connection.close()
    except Exception as exc:  # the broker is gone: its queues went with it or stay for `regress lab down`
        log.warning(f"etl_pipeline: could not delete queues {topology.prefix}.*: {type(exc).__name__}")
    try:
        store.drop(owner, names)
    finally:
        owner.close()
