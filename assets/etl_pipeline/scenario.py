"""The ETL pipeline run, in the kit's named phases: seeded jobs published with confirms, worker processes moving
them extract -> transform -> load into PostgreSQL, then the judges (conservation, isolation, drained queues,
Great Expectations) and the figures.

Phases (the kit's supervisor names a failure's phase from them, and fires a nemesis inside `workload`):
- setup: tables, role, queues and exchange (each registered with the supervisor, removed afterwards through
  fresh connections, also after a crash), the source batch, the observers;
- workload: worker processes up and consuming, every job published and processed until each is accounted for
  (the area's own faults act in a nested `nemesis` phase); workers ride out a broker or database restart
  (reconnect, redeliver);
- settle: workers stopped (each finishes its batch), queue depths, the dead letters drained;
- judge: the rows read through a fresh connection, the oracles, the figures; a failed check's detail names what
  the run observed on the servers (kit.observe: triggers, rules, constraints, grants, locks, restarts on
  PostgreSQL; policies, queue arguments, bindings, alarms, uptime on RabbitMQ), or says "unexplained";
- cleanup: the run's temporary folder; the supervisor then removes what the run registered.
Figures are recorded with the supervisor as soon as they exist, so a crash keeps them. Plain Python: takes
connection factories and a supervisor, returns a ScenarioResult.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import psycopg
from psycopg import sql

from assets.etl_pipeline import batch, broker, isolation, oracle, quality, shapes, store
from assets.etl_pipeline.config import EtlConfig
from assets.etl_pipeline.generator import Job, for_config, tenant_names
from assets.etl_pipeline.processes import Workers
from regression_pipelines.errors import ResourceConfigError
from regression_pipelines.kit.observe import postgres as observe_pg
from regression_pipelines.kit.observe import rabbitmq as observe_mq
from regression_pipelines.kit.observe.watch import Sampler
from regression_pipelines.kit.supervisor import CLEANUP, JUDGE, NEMESIS, SETTLE, SETUP, WORKLOAD, Supervisor
from regression_pipelines.measure import ErrorTally, describe_error, percentile
from regression_pipelines.removal import remove_tree
from regression_pipelines.results import Direction, Invariant, Metric, MetricKind, ScenarioResult

AREA = "etl_pipeline"
INVARIANTS = oracle.INVARIANTS
KILL_FAULTS = {
    "worker_sigkill": "after_commit",
    "non_idempotent_load": "after_commit",
    "ack_before_commit": "before_commit",
}
# What each fault of the run config does on purpose, in words a failed check carries (it is a fact, not a guess).
FAULT_WORDS = {
    "ack_before_commit": "loaders acked before commit, then one was killed mid-batch",
    "non_idempotent_load": "loads without the key on job_id, a loader killed after commit (redelivered)",
    "burst": "every job queued before any consumer started",
    "rls_disabled": "row-level security not enabled on the tables",
    "drop_field": "the transform drops the priority field",
    "dlq_unbound": "the dead-letter queue is not bound to the dead-letter exchange",
    "broker_restart": "the run restarted the broker mid-publish",
    "worker_sigkill": "one loader killed (SIGKILL) after a commit",
    "poison": "poison jobs in the batch",
    "slow_consumer": "loaders pause after each batch",
}
IDLE_S = 1.5  # nothing moved for this long with empty work queues: the run is over (some jobs may be lost)
POISON_RATE = 0.05
PUBLISH_WINDOW = 256  # confirms in flight per publisher
PG_ERRORS = (psycopg.Error, ResourceConfigError, OSError)  # a restarting database: a fresh connection is refused
RETRY_S = 60.0  # reads of the judge retry this long (a restarted server is back in seconds)


@dataclass(frozen=True)
class Services:
    """How the scenario reaches the systems under test (built from the area's resources)."""

    amqp_connect: Callable[[], pika.BlockingConnection]
    amqp_params: dict[str, Any]  # host, port, user, password, vhost: handed to workers on stdin only
    pg_connect: Callable[[], psycopg.Connection]  # a fresh connection per call
    pg_conninfo: str
    restart_broker: Callable[[], None] | None = None
    # (queues, exchanges) -> one look at the broker (kit.observe.rabbitmq); None: the broker cannot be asked
    observe_broker: Callable[[list[str], list[str]], observe_mq.BrokerState] | None = None
    # (queues, exchanges, at most s) -> a watch (not started) that looks during the run; None: only the judge's look
    watch_broker: observe_mq.WatchFactory | None = None


@dataclass
class Published:
    produced: dict[Any, tuple[str, bool]] = field(default_factory=dict)  # confirmed: key -> (tenant, valid)
    published_at: dict[Any, float] = field(default_factory=dict)  # issue 19: keys are (tenant, job id)
    confirm_ms: list[float] = field(default_factory=list)
    nacked: int = 0
    refused: set[Any] = field(default_factory=set)  # keys the broker nacked (reject-publish overflow: by design)
    republished: int = 0
    unpublished: int = 0  # never sent, or sent without a confirm, when the run's deadline passed


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
                self.last = {}
                connection = None
                time.sleep(0.2)
            self.done.wait(0.05)
        if connection is not None and connection.is_open:
            with contextlib.suppress(Exception):
                connection.close()

    def stop(self) -> None:
        self.done.set()
        if self.is_alive():
            self.join(timeout=5)


@dataclass
class Run:
    """One run: its settings, names, processes and what it has gathered so far."""

    config: EtlConfig
    services: Services
    sup: Supervisor
    output_dir: Path
    log: Any
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    jobs: list[Job] = field(default_factory=list)
    published: Published = field(default_factory=Published)
    schema: str = "public"
    started: float = field(default_factory=time.monotonic)
    timings: dict[str, float] = field(default_factory=dict)
    sampler: DepthSampler | None = None
    pg_before: observe_pg.PgState | None = None
    pg_watch: Sampler[observe_pg.PgState] | None = None
    mq_before: observe_mq.BrokerState | None = None
    mq_watch: observe_mq.Watch | None = None
    environment: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.names = store.Names.for_run(self.run_id)
        config = self.config
        self.topology = broker.Topology(
            prefix=f"etl.{self.run_id}",
            queue_type=config.queue_type,
            max_length=config.max_length,
            overflow=config.overflow,
            message_ttl_ms=config.message_ttl_ms,
            max_priority=config.max_priority,
        )
        self.folder = Path(tempfile.mkdtemp(prefix=f"etl-{self.run_id}-"))
        self.workers = Workers(self.folder)
        self.deadline = time.monotonic() + config.max_seconds
        self.application = f"regress-etl-{self.run_id}"

    @property
    def tables(self) -> list[str]:
        return [f"{self.schema}.{self.names.jobs}", f"{self.schema}.{self.names.failed}"]

    def mark(self, what: str) -> None:
        self.timings[what] = time.monotonic() - self.started


def run(config: EtlConfig, services: Services, sup: Supervisor, output_dir: Path, log: Any = None) -> ScenarioResult:
    """`output_dir` keeps the run's files: the source batch it published from and the loaded rows."""
    r = Run(config, services, sup, output_dir, log or logging.getLogger(__name__))
    r.log.info(f"etl_pipeline run {r.run_id}: queues {r.topology.prefix}.*, tables {r.names.jobs}, "
               f"{r.names.failed}, role {r.names.role}")  # fmt: skip
    sup.on_cleanup(f"remove {r.folder}", lambda: remove_tree(r.folder))
    sup.partial.environment.update(run_prefix=r.topology.prefix, fault=config.fault, queue_type=config.queue_type)
    crashed = True
    try:
        with sup.phase(SETUP):
            _setup(r)
        with sup.phase(WORKLOAD):
            _workload(r)
        with sup.phase(SETTLE):
            depths, dead = _settle(r)
        with sup.phase(JUDGE):
            result = _judge(r, depths, dead)
        with sup.phase(CLEANUP):
            shutil.rmtree(r.folder, ignore_errors=True)
        crashed = False
        return result
    finally:
        if crashed:
            _after_crash(r)


# -- setup ------------------------------------------------------------------------------------------------------
def _setup(r: Run) -> None:
    config, services, sup = r.config, r.services, r.sup
    _register(r)
    with services.pg_connect() as owner:
        r.schema = str(owner.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]
        store.create(owner, r.names, idempotent=config.fault != "non_idempotent_load",
                     rls=config.fault != "rls_disabled")  # fmt: skip
        r.environment["postgres_version"] = str(owner.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    amqp = services.amqp_connect()
    try:
        r.topology.declare(amqp.channel(), bind_dlq=config.fault != "dlq_unbound")
        server = amqp._impl.server_properties or {}  # noqa: SLF001 - pika exposes the broker's version only here
        version = server.get("version", b"?")
        r.environment["rabbitmq_version"] = version.decode() if isinstance(version, bytes) else str(version)
    finally:
        with contextlib.suppress(Exception):
            amqp.close()
    r.environment.update(pika_version=pika.__version__, run_prefix=r.topology.prefix)
    sup.partial.environment.update(r.environment)
    source = r.output_dir / "source_batch.parquet"
    batch.write_source(for_config(config, POISON_RATE if config.fault == "poison" else 0.0), source)  # issue 19
    r.jobs = batch.read_source(source)  # the file is the input: the producers publish what it holds
    observe = observe_pg.connector(services.pg_conninfo, application=f"{r.application}-observer")
    r.pg_before = observe_pg.snapshot(observe, r.tables, r.application)
    r.pg_watch = Sampler(lambda: observe_pg.snapshot(observe, r.tables, r.application), name="etl-pg-observer").start()
    sup.on_cleanup("stop the PostgreSQL observer", r.pg_watch.stop)
    _watch_broker(r)
    r.sampler = DepthSampler(services, r.topology, r.deadline)
    r.sampler.start()
    sup.on_cleanup("stop the queue depth sampler", r.sampler.stop)
    sup.on_cleanup("stop the worker processes", lambda: r.workers.stop(timeout=5))  # before anything is dropped


def _watch_broker(r: Run) -> None:
    """A first look at the broker once the run's queues exist, then a look every 0.5 s until the judge: a policy,
    alarm, restart, deleted queue or removed binding that is gone again by the judge's look is still named."""
    look, watch = r.services.observe_broker, r.services.watch_broker
    if look is None:
        return
    queues, exchanges = r.topology.all_queues(), [r.topology.dlx]
    r.mq_before = look(queues, exchanges)
    if watch is not None:
        r.mq_watch = watch(queues, exchanges, r.config.max_seconds + 120).start()  # ends with the run at the latest
        r.sup.on_cleanup("stop the RabbitMQ observer", r.mq_watch.stop)


def _register(r: Run) -> None:
    """Everything the run makes, registered before it is made (removal is idempotent): last made, first removed,
    so the tables go before the role their grants name, the queues before the exchange."""
    services, topology, names, sup = r.services, r.topology, r.names, r.sup
    sup.created("exchange", topology.dlx, lambda: _amqp(services, lambda ch: ch.exchange_delete(topology.dlx)),
                lambda: _amqp_exists(services, lambda ch: ch.exchange_declare(topology.dlx, passive=True)))  # fmt: skip
    for queue in topology.all_queues():
        sup.created("queue", queue, lambda q=queue: _amqp(services, lambda ch: ch.queue_delete(q)),
                    lambda q=queue: _amqp_exists(services, lambda ch: ch.queue_declare(q, passive=True)))  # fmt: skip
    sup.created(
        "role", names.role, lambda: _drop_role(services, names.role), lambda: _role_exists(services, names.role)
    )
    for table in (names.failed, names.jobs):
        sup.created("table", f"{r.schema}.{table}", lambda t=table: _drop_table(services, t),
                    lambda t=table: _table_exists(services, t))  # fmt: skip


def _amqp(services: Services, action: Callable[[Any], object]) -> None:
    """One action on a fresh connection (the run's may be what broke)."""
    connection = services.amqp_connect()
    try:
        action(connection.channel())
    finally:
        if connection.is_open:
            connection.close()


def _amqp_exists(services: Services, passive: Callable[[Any], object]) -> bool:
    try:
        _amqp(services, passive)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return False
        raise
    return True


def _drop_table(services: Services, table: str) -> None:
    with services.pg_connect() as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


def _table_exists(services: Services, table: str) -> bool:
    with services.pg_connect() as conn:
        return bool(conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0])  # type: ignore[index]


def _drop_role(services: Services, role: str) -> None:
    """DROP OWNED first: a privilege someone granted the role elsewhere must not keep it alive."""
    with services.pg_connect() as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _role_exists(services: Services, role: str) -> bool:
    with services.pg_connect() as conn:
        return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


# -- workload ---------------------------------------------------------------------------------------------------
def _workload(r: Run) -> None:
    """Workers up (a nemesis may already act while they start), every job published, processed until settled."""
    config = r.config
    if config.fault != "burst":
        _start_workers(config, r.workers, _base_spec(r))
        _wait_for_consumers(r.services, r.topology, config, r.deadline)
    r.mark("workers_up")
    own_fault = config.fault == "broker_restart" or config.fault in KILL_FAULTS
    with r.sup.phase(NEMESIS) if own_fault else contextlib.nullcontext():
        r.published = _publish(config, r.services, r.topology, r.jobs, r.deadline)
        r.mark("published")
        _record_publish(r)
        if config.fault == "burst":  # everything was queued before any consumer: the overflow policy decides
            _start_workers(config, r.workers, _base_spec(r))
            _wait_for_consumers(r.services, r.topology, config, r.deadline)
        _wait_until_settled(r)
    r.mark("settled")


def _record_publish(r: Run) -> None:
    confirm, lower, perf = r.published.confirm_ms, Direction.LOWER_IS_BETTER, MetricKind.PERFORMANCE
    r.sup.record(
        *(
            Metric(f"publish.confirm_p{q}_ms", percentile(confirm, q), "ms", lower, perf, len(confirm))
            for q in (50, 99)
        ),
        Metric("jobs.produced", len(r.published.produced), "jobs", Direction.HIGHER_IS_BETTER, MetricKind.VOLUME),
        Metric("config.jobs", r.config.jobs, "jobs", Direction.HIGHER_IS_BETTER, MetricKind.INFO),
    )
    r.sup.partial.environment.update(publish_nacked=r.published.nacked, republished=r.published.republished,
                                     unpublished=r.published.unpublished)  # fmt: skip


def _wait_until_settled(r: Run) -> None:
    """Until every produced job is accounted for, or nothing moved for IDLE_S with empty work queues. A database
    that does not answer (restarting) counts as movement: the workers are still holding their batches."""
    assert r.sampler is not None
    produced = len(r.published.produced)
    work = [r.topology.queue(s) for s in broker.STAGES]
    last: tuple[Any, ...] = ()
    since = time.monotonic()
    while time.monotonic() < r.deadline:
        try:
            with r.services.pg_connect() as conn:
                counts: tuple[int, int] | None = store.counts(conn, r.names)
        except PG_ERRORS:
            counts = None
        depths = tuple(r.sampler.last.get(q, -1) for q in work)
        empty = all(d == 0 for d in depths)
        if counts is not None and sum(counts) >= produced and empty:
            return
        if counts is None or (counts, depths) != last:
            last, since = (counts, depths), time.monotonic()
        elif empty and time.monotonic() - since >= IDLE_S:
            return
        time.sleep(0.1)


# -- settle -----------------------------------------------------------------------------------------------------
def _settle(r: Run) -> tuple[dict[str, int], list[tuple[str, str, str]]]:
    r.workers.stop()
    r.mark("stopped")
    if r.sampler is not None:
        r.sampler.stop()
    time.sleep(0.2)  # unacked messages of the closed channels are back as ready ones
    return _final_queues(r.services, r.topology, r.config.jobs)


def _final_queues(
    services: Services, topology: broker.Topology, limit: int
) -> tuple[dict[str, int], list[tuple[str, str, str]]]:
    """Depths and the drained dead letters, through a fresh connection; retried while the broker restarts."""
    deadline = time.monotonic() + RETRY_S
    dead: list[tuple[str, str, str]] = []
    while True:
        try:
            connection = broker.connect_retrying(services.amqp_connect, deadline)
            try:
                channel = connection.channel()
                depths = broker.depths(channel, topology)
                channel = channel if channel.is_open else connection.channel()  # a missing queue closed it
                dead += broker.drain_dead_letters(channel, topology.dlq, limit * 2)  # acked as read: keep them
                return depths, dead
            finally:
                if connection.is_open:
                    with contextlib.suppress(Exception):
                        connection.close()
        except broker.CONNECTION_ERRORS:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.3)


# -- judge ------------------------------------------------------------------------------------------------------
def _read(r: Run, action: Callable[[psycopg.Connection], Any]) -> Any:
    """`action` on a fresh connection, retried while the database does not answer (a restart in progress)."""
    deadline = time.monotonic() + RETRY_S
    while True:
        try:
            with r.services.pg_connect() as conn:
                return action(conn)
        except (psycopg.OperationalError, ResourceConfigError, OSError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.3)


def _judge(r: Run, depths: dict[str, int], dead: list[tuple[str, str, str]]) -> ScenarioResult:
    config, services, topology, names = r.config, r.services, r.topology, r.names
    loaded = _read(r, lambda c: store.fetch_all(c, names.jobs, batch.LOADED_COLUMNS))
    failed = _read(r, lambda c: store.fetch_all(c, names.failed, ("job_id", "tenant_id", "error_details", "failed_at")))
    elapsed = r.timings.get("stopped", time.monotonic() - r.started)
    loaded_file = r.output_dir / "loaded_jobs.parquet"
    batch.export_loaded(loaded, loaded_file)  # the run drops the table; its rows stay for the loaded_jobs stage
    published = r.published
    loaded_keys, failed_keys = [(row[1], row[0]) for row in loaded], [(row[1], row[0]) for row in failed]  # issue 19
    conservation = oracle.conserve(published.produced, [j.key for j in r.jobs], loaded_keys, failed_keys, dead)
    stats = r.workers.stats()
    metrics = _metrics(config, published, loaded, failed, stats, r.sampler, dead, conservation, topology)
    r.sup.record(*metrics)
    tenants = tenant_names(config.tenants)
    # every job of the batch (distinct: some are published twice on purpose) the producer's ledger cannot show
    # confirmed or refused by the broker counts as unpublished, also when the producer stopped early unannounced
    batch_keys = {job.key for job in r.jobs}
    unaccounted = len(batch_keys - set(published.produced) - published.refused)
    conserved = oracle.conservation_invariant(conservation, unaccounted, len(batch_keys))
    drained = oracle.drained_invariant(
        {q: depths[q] for q in depths if q != topology.dlq},
        [(tenant, job) for job, tenant, reason in dead if reason == "rejected"],  # issue 19: (tenant, job id)
        [(row[1], row[0]) for row in failed if row[2]],
    )
    error_metric, error_invariant = _errors(r, stats)
    metrics.append(error_metric)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # A loss is known before the slow judges run: ask the broker meanwhile (its CLI takes seconds).
        early = not (conserved.passed and drained.passed and error_invariant.passed)
        broker_look = pool.submit(_look_at_broker, r) if early else None
        isolated = _read(
            r,
            lambda _c: isolation.probe(services.pg_connect, names, tenants, [(row[0], row[1]) for row in loaded],
                                       {j.key for j in r.jobs}, application=r.application),  # issue 19
        )  # fmt: skip
        valid = quality.validate([row[: len(quality.COLUMNS)] for row in loaded], tenants,
                                 quality.Ledger.from_published(r.jobs, published.produced))  # issue 19 # fmt: skip
        invariants = [conserved, isolated, drained, valid, error_invariant]
        observed = _observe(r, any(not inv.passed for inv in invariants), broker_look)
    r.mark("judged")
    coverage = shapes.account(r.jobs, published.produced, loaded_keys, failed_keys)  # issue 19
    metrics += coverage.metrics()  # issue 19
    r.environment.update(seed=config.seed, profile=config.profile, coverage=coverage.to_json(),
                         coverage_summary=coverage.describe())  # issue 19 # fmt: skip
    invariants = [_with_cause(inv, observed, config.fault) for inv in invariants]
    r.log.info(
        f"etl_pipeline: {len(published.produced)} jobs in {elapsed:.1f} s, {len(r.workers.killed)} worker(s) killed; "
        + ", ".join(f"{what} at {at:.1f} s" for what, at in r.timings.items())
    )
    r.environment.update(
        queue_type=config.queue_type,
        fault=config.fault,
        workers_killed=len(r.workers.killed),
        dead_letter_strategy=topology.dead_letter_strategy,
        publish_nacked=published.nacked,
        republished=published.republished,
        pg_reconnects=sum(s.get("pg_reconnects", 0) for s in stats),
        recovered_errors="; ".join(sorted({e for s in stats for e in s.get("recovered", [])}))[:500],
        **{f"observed.{k}": v for k, v in observed.items()},
    )
    return ScenarioResult(
        area=AREA,
        metrics=metrics,
        invariants=invariants,
        environment=r.environment,
        comparable_on={
            "workload": shapes.WORKLOAD_VERSION,  # issue 19: adversarial jobs, shared ids, republishes
            "profile": config.profile,  # issue 19: a deep run is compared with deep runs
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
            oracle.SOURCE_BATCH: batch.source_stage(r.output_dir / "source_batch.parquet", config.seed),
            oracle.LOADED_JOBS: batch.loaded_stage(loaded_file, names.jobs),
        },
    )


def _errors(r: Run, stats: list[dict[str, Any]]) -> tuple[Metric, Invariant]:
    errors = ErrorTally()
    errors.ok(sum(s["processed"] for s in stats) + len(r.jobs))
    for s in stats:
        for text in s["errors"]:
            errors.failed(text, 0)
        errors.errors += s["error_count"]
    for crash in r.workers.crashes:
        errors.failed(crash)
    return errors.figures("job deliveries and publishes")


# -- observed causes --------------------------------------------------------------------------------------------
def _look_at_broker(r: Run) -> observe_mq.BrokerState | None:
    """The judge's look (the sampler stops first: its looks end where this one starts)."""
    if r.services.observe_broker is None:
        return None
    if r.mq_watch is not None:
        r.mq_watch.stop()
    return r.services.observe_broker(r.topology.all_queues(), [r.topology.dlx])


def _observe(r: Run, failed: bool, broker_look: Future[observe_mq.BrokerState | None] | None = None) -> dict[str, str]:
    """What the servers showed during the run: PostgreSQL always (cheap catalog reads); RabbitMQ's first look and
    samples against a last look when a check failed (`broker_look`: that look already under way), else against its
    last sample (no CLI started: a passing run still says what the broker went through, e.g. an alarm that slowed
    it). Keys: postgres, rabbitmq, cause (the line a failed check carries)."""
    found: list[str] = []
    out: dict[str, str] = {}
    if r.pg_before is not None and r.pg_watch is not None:
        during = r.pg_watch.stop()
        observe = observe_pg.connector(r.services.pg_conninfo, application=f"{r.application}-observer")
        after = observe_pg.snapshot(observe, r.tables, r.application)
        pg = observe_pg.findings(r.pg_before, after, during, unexpected_writes=("update", "delete"))
        out["postgres"] = "; ".join(pg) or observe_pg.UNEXPLAINED
        found += pg
    state = None
    if failed:
        state = broker_look.result() if broker_look is not None else _look_at_broker(r)
    during = r.mq_watch.stop() if r.mq_watch is not None else []
    if state is None and not failed and during and r.mq_before is not None:
        state, during = during[-1], during[:-1]
    if state is not None:
        before = r.mq_before if r.mq_before is not None else state
        during = [look for look in during if look.at <= state.at]
        targets, run_s = {r.topology.dlx: r.topology.dlq}, time.monotonic() - r.started
        mq = observe_mq.findings(before, state, during, targets, run_s)
        out["rabbitmq"] = "; ".join(mq) or observe_mq.UNEXPLAINED
        found += mq
    elif failed:
        found.append("the broker's policies could not be read (no management API or rabbitmqctl for it)")
    out["cause"] = "; ".join(found) if found else "unexplained (nothing abnormal on PostgreSQL or RabbitMQ)"
    return out


def _with_cause(invariant: Invariant, observed: dict[str, str], fault: str) -> Invariant:
    if invariant.passed:
        return invariant
    parts = []
    if fault != "none":
        parts.append(f"fault={fault} injected by the run config ({FAULT_WORDS.get(fault, fault)})")
    parts.append(f"observed: {observed['cause']}")
    return replace(invariant, detail=f"{invariant.detail} — {'; '.join(parts)}")


# -- after a crash ----------------------------------------------------------------------------------------------
def _after_crash(r: Run) -> None:
    """Keep what can still be known: worker figures, rows counted so far, and what the servers showed (a database
    restart named from pg_postmaster_start_time). Never raises: the crash is the news."""
    try:
        r.workers.stop(timeout=5)
        stats = r.workers.stats()
        lower, vol = Direction.LOWER_IS_BETTER, MetricKind.VOLUME
        r.sup.record(
            Metric("redeliveries", sum(s["redelivered"] for s in stats), "messages", lower, vol),
            Metric("pg.reconnects", sum(s.get("pg_reconnects", 0) for s in stats), "reconnects", lower, vol),
        )
        with contextlib.suppress(*PG_ERRORS):
            with r.services.pg_connect() as conn:
                loaded, failed = store.counts(conn, r.names)
            higher = Direction.HIGHER_IS_BETTER
            r.sup.record(Metric("jobs.loaded", loaded, "jobs", higher, vol), Metric("jobs.failed", failed, "jobs",
                                                                                    lower, vol))  # fmt: skip
        if r.published.produced:
            _record_publish(r)
        observed = _observe(r, failed=True)
        r.sup.note(f"observed: {observed['cause']}")
        r.sup.partial.environment.update({f"observed.{k}": v for k, v in observed.items()})
    except Exception as exc:
        r.sup.note(f"the figures after the crash could not all be gathered: {describe_error(exc)}")


def _base_spec(r: Run) -> dict[str, Any]:
    config, services, names, topology = r.config, r.services, r.names, r.topology
    return {
        "amqp": services.amqp_params,
        "pg_conninfo": services.pg_conninfo,
        "application_name": r.application,
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
    """Publish only once every worker consumes: e2e latency then measures the pipeline, not process start-up.
    A broker restarting meanwhile: ask again on a new connection."""
    want = {topology.queue("extract"): config.transformers, topology.queue("transform"): config.transformers,
            topology.queue("load"): config.loaders}  # fmt: skip
    while time.monotonic() < deadline:
        try:
            connection = broker.connect_retrying(services.amqp_connect, deadline)
        except broker.CONNECTION_ERRORS:
            return
        try:
            channel = connection.channel()
            while time.monotonic() < deadline:
                counts = {q: channel.queue_declare(q, passive=True).method.consumer_count for q in want}
                if all(counts[q] >= n for q, n in want.items()):
                    return
                time.sleep(0.05)
        except broker.CONNECTION_ERRORS:
            time.sleep(0.3)
        finally:
            if connection.is_open:
                with contextlib.suppress(Exception):
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
                out.published_at[job.key] = published_at  # issue 19: (tenant, job id)
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
    out.unpublished = len(todo) + (len(window.pending()) if window is not None else 0)
    if window is not None and window.connection.is_open:
        with contextlib.suppress(Exception):
            window.connection.close()
    return out


def _confirmed(out: Published, done: list[tuple[Any, bool]]) -> None:
    now = time.perf_counter()
    for (job, sent), acked in done:
        out.confirm_ms.append((now - sent) * 1000)
        if acked:
            out.produced[job.key] = (job.tenant, job.valid)  # issue 19: (tenant, job id)
        else:
            out.nacked += 1
            out.refused.add(job.key)


def _metrics(
    config: EtlConfig,
    published: Published,
    loaded: list[tuple[Any, ...]],
    failed: list[tuple[Any, ...]],
    stats: list[dict[str, Any]],
    sampler: DepthSampler | None,
    dead: list[tuple[str, str, str]],
    conservation: oracle.Conservation,
    topology: broker.Topology,
) -> list[Metric]:
    perf, vol = MetricKind.PERFORMANCE, MetricKind.VOLUME
    confirm = published.confirm_ms
    higher, lower = Direction.HIGHER_IS_BETTER, Direction.LOWER_IS_BETTER
    e2e_ms = [(row[-1] - row[-2]) * 1000 for row in loaded]
    done_at: dict[Any, float] = {(row[1], row[0]): row[-1] for row in loaded}  # issue 19: (tenant, job id)
    done_at.update({(row[1], row[0]): row[3].timestamp() for row in failed})
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
            Metric(f"queue.max_depth_{stage}", sampler.max_depth.get(topology.queue(stage), 0) if sampler else 0,
                   "messages", lower, vol)
            for stage in broker.STAGES
        ),
        Metric("redeliveries", sum(s["redelivered"] for s in stats), "messages", lower, vol),
        Metric("pg.reconnects", sum(s.get("pg_reconnects", 0) for s in stats), "reconnects", lower, vol),
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


def _fairness(published: Published, done_at: dict[Any, float]) -> float:
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
