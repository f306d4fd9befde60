"""One pipeline worker, run as its own OS process: `python -m assets.etl_pipeline.worker` with a JSON spec on
stdin (so no secret ever appears in the process list).

Stage workers (extract, transform) consume one queue, publish the result to the next with confirms and ack
only after the confirm; invalid jobs are written to `failed_jobs` and rejected to the dead-letter exchange.
Loaders batch, commit one transaction per tenant (as the non-owner role, tenant set) and ack after commit.
SIGTERM: finish the batch in hand, write the stats file, exit. Broker restarts: reconnect and carry on.
PostgreSQL restarts (a broken connection: AdminShutdown, "the connection is closed"): reconnect as the worker
role and write the batch in hand again (its messages are still unacked; the upsert absorbs a batch whose commit
did land before the connection broke), until the worker's deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import pika
import psycopg

from assets.etl_pipeline import broker, store
from assets.etl_pipeline.transform import InvalidJob, extract, transform

PAUSED = "PAUSED"  # printed at the kill point; the scenario then sends SIGKILL
KEEP_ERRORS = 5
PUMP_EVERY = 32  # messages between socket flushes in stage workers
TRANSIENT_SQLSTATES = ("40P01", "40001")  # deadlock, serialization failure: retrying the batch succeeds
STOP_GRACE_S = 5.0  # a stopping worker tries this long to reach a restarting database


@dataclass
class Stats:
    role: str
    pid: int = field(default_factory=os.getpid)
    processed: int = 0
    redelivered: int = 0
    rejected: int = 0
    loaded_rows: int = 0
    batches: int = 0
    commits: int = 0
    db_seconds: float = 0.0
    reconnects: int = 0
    pg_reconnects: int = 0
    pg_outage_s: float = 0.0  # time spent without a usable database connection
    recovered: list[str] = field(default_factory=list)  # the errors a reconnect recovered from (first few)
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    error_count: int = 0
    errors: list[str] = field(default_factory=list)

    def error(self, exc: BaseException) -> None:
        self.error_count += 1
        text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        if len(self.errors) < KEEP_ERRORS and text not in self.errors:
            self.errors.append(text[:300])


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


class Worker:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.names = store.Names(**spec["names"])
        self.topology = broker.Topology(**spec["topology"])
        self.stats = Stats(role=spec["stage"])
        self.stopping = False
        self.deadline = time.monotonic() + spec["max_seconds"]
        signal.signal(signal.SIGTERM, self._stop)

    def _stop(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def _amqp(self) -> pika.BlockingConnection:
        a = self.spec["amqp"]
        params = pika.ConnectionParameters(
            host=a["host"],
            port=a["port"],
            virtual_host=a["vhost"],
            credentials=pika.PlainCredentials(a["user"], a["password"]),
            connection_attempts=1,
            socket_timeout=5,
            heartbeat=30,
        )
        return pika.BlockingConnection(params)

    def _pg_connect(self) -> psycopg.Connection:
        """A connection acting as the worker role; retried until the deadline (a restarting server refuses), or
        for a few seconds once told to stop (its unacked messages then go back to the queue)."""
        first = time.monotonic()
        while True:
            try:
                conn = psycopg.connect(self.spec["pg_conninfo"], autocommit=False, connect_timeout=3,
                                       application_name=self.spec.get("application_name", "regress-etl"))  # fmt: skip
                store.worker_session(conn, self.names)
                return conn
            except psycopg.OperationalError:
                now = time.monotonic()
                if now >= self.deadline or (self.stopping and now - first > STOP_GRACE_S):
                    raise
                time.sleep(0.2)

    def _pg_broken(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.OperationalError) or self.pg.closed or self.pg.broken

    def _reconnect_pg(self, exc: BaseException) -> None:
        """Replace a broken connection (the server restarted or dropped us); raises past the deadline."""
        self.stats.pg_reconnects += 1
        text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]
        if len(self.stats.recovered) < KEEP_ERRORS and text not in self.stats.recovered:
            self.stats.recovered.append(text)
        started = time.monotonic()
        with contextlib.suppress(Exception):
            self.pg.close()
        try:
            self.pg = self._pg_connect()
        finally:
            self.stats.pg_outage_s += time.monotonic() - started

    def _rollback(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.pg.rollback()

    def run(self) -> None:
        self.pg = self._pg_connect()
        self.stats.rss_start_mb = rss_mb()
        while not self.stopping and time.monotonic() < self.deadline:
            try:
                connection = broker.connect_retrying(self._amqp, self.deadline)
            except Exception as exc:
                self.stats.error(exc)
                break
            try:
                channel = connection.channel()
                channel.basic_qos(prefetch_count=self.spec["prefetch"])
                if self.spec["stage"] == "load":
                    self._load(channel)
                else:
                    self._stage(channel, broker.ConfirmWindow(connection, self.spec["prefetch"]))
            except broker.CONNECTION_ERRORS as exc:
                self.stats.reconnects += 1  # a restarting broker: unacked messages come back redelivered
                self._rollback()
                if self.stats.reconnects > 50:
                    self.stats.error(exc)
                    break
                time.sleep(0.3)
                continue
            finally:
                if connection.is_open:
                    with contextlib.suppress(Exception):  # a dying connection may fail to close; nothing pends
                        connection.close()
            break
        self.stats.rss_end_mb = rss_mb()
        with contextlib.suppress(Exception):
            self.pg.close()
        with open(self.spec["stats_path"], "w") as f:
            json.dump(asdict(self.stats), f)

    def _messages(self, channel: Any, queue: str, wait_s: float) -> Any:
        for method, props, body in channel.consume(queue, inactivity_timeout=wait_s):
            if self.stopping or time.monotonic() >= self.deadline:
                return
            if method is not None and method.redelivered:
                self.stats.redelivered += 1
            yield method, props, body

    def _stage(self, channel: Any, out: broker.ConfirmWindow) -> None:
        """Consume, process, publish downstream; ack each input once its output is confirmed."""
        stage = self.spec["stage"]
        target = self.topology.queue(broker.STAGES[broker.STAGES.index(stage) + 1])
        drop_field = self.spec.get("drop_field")
        for method, props, body in self._messages(channel, self.topology.queue(stage), 0.05):
            if method is not None:
                self.stats.processed += 1
                try:
                    if stage == "extract":
                        result = json.dumps(extract(body)).encode()
                    else:
                        result = json.dumps(transform(json.loads(body), drop_field)).encode()
                except InvalidJob as exc:
                    self._fail(props, stage, str(exc), body)
                    channel.basic_reject(method.delivery_tag, requeue=False)
                else:
                    out.publish(target, result, props, method.delivery_tag)
            if method is None or self.stats.processed % PUMP_EVERY == 0:
                out.pump()  # flush publishes and acks in one go, collect confirms
                self._settle(channel, out.take())
        out.flush()
        self._settle(channel, out.take())
        out.pump()

    def _settle(self, channel: Any, confirmed: list[tuple[Any, bool]]) -> None:
        """Ack each input whose output is confirmed (buffered: the next pump sends them together)."""
        impl = channel._impl  # noqa: SLF001 - the blocking channel would flush the socket once per ack
        for delivery_tag, acked in confirmed:
            if acked:
                impl.basic_ack(delivery_tag)
            else:  # the next queue refused it (reject-publish overflow): try again later
                impl.basic_nack(delivery_tag, requeue=True)

    def _fail(self, props: Any, stage: str, error: str, body: bytes) -> None:
        self.stats.rejected += 1
        tenant = str((props.headers or {}).get("tenant", ""))
        while True:
            try:
                store.record_failure(self.pg, self.names, str(props.message_id), tenant, stage, error, body)
                return
            except psycopg.Error as exc:
                if self._pg_broken(exc) and time.monotonic() < self.deadline:
                    self._reconnect_pg(exc)
                    continue
                self.stats.error(exc)
                self._rollback()
                return

    def _load(self, channel: Any) -> None:
        spec = self.spec
        wait_s = spec["batch_wait_ms"] / 1000
        batch: list[tuple[int, str, str, float, dict[str, Any]]] = []
        first_at = 0.0
        for method, props, body in self._messages(channel, self.topology.queue("load"), wait_s):
            if method is not None:
                headers = props.headers or {}
                row = json.loads(body)
                batch.append((method.delivery_tag, str(props.message_id), str(headers["tenant"]),
                              int(headers["published_us"]) / 1e6, row))  # fmt: skip
                self.stats.processed += 1
                if spec["ack_early"]:  # the fault: acked before the row is committed
                    channel.basic_ack(method.delivery_tag)
                if len(batch) == 1:
                    first_at = time.monotonic()
            if batch and (len(batch) >= spec["batch_size"] or time.monotonic() - first_at >= wait_s):
                self._flush(channel, batch)
                batch = []
        if batch:
            self._flush(channel, batch)

    def _flush(self, channel: Any, batch: list[tuple[int, str, str, float, dict[str, Any]]]) -> None:
        spec = self.spec
        self.stats.batches += 1
        kill_here = spec.get("kill_at_batch") == self.stats.batches
        by_tenant: dict[str, list[tuple[str, float, dict[str, Any]]]] = defaultdict(list)
        for _tag, job_id, tenant, published, row in sorted(batch, key=lambda b: (b[2], b[1])):
            by_tenant[tenant].append((job_id, published, row))  # one lock order for every loader: no deadlocks
        started = time.perf_counter()
        done: set[str] = set()  # tenants committed: after a reconnect, only the rest are written again
        while True:
            try:
                for tenant, rows in by_tenant.items():
                    if tenant in done:
                        continue
                    store.load_rows(self.pg, self.names, tenant, rows, idempotent=spec["idempotent"])
                    if kill_here and spec["kill_point"] == "before_commit":
                        self._pause_for_kill()
                    self.pg.commit()
                    done.add(tenant)
                    self.stats.commits += 1
                break
            except psycopg.Error as exc:
                if self._pg_broken(exc) and time.monotonic() < self.deadline:
                    self._reconnect_pg(exc)  # the batch's messages are unacked: write the rest again
                    continue
                self.stats.error(exc)
                self._rollback()
                if not spec["ack_early"]:  # a transient failure is redelivered; anything else is dead-lettered
                    transient = exc.sqlstate in TRANSIENT_SQLSTATES
                    for tag, _job, tenant, _published, _row in batch:  # tenants committed before it stay acked
                        if tenant in done:
                            channel.basic_ack(tag)
                        else:
                            channel.basic_nack(tag, requeue=transient)
                return
        self.stats.db_seconds += time.perf_counter() - started
        self.stats.loaded_rows += len(batch)
        if kill_here and spec["kill_point"] == "after_commit":
            self._pause_for_kill()
        if spec["slow_ms"]:
            time.sleep(spec["slow_ms"] / 1000)
        if not spec["ack_early"]:
            channel.basic_ack(batch[-1][0], multiple=True)

    def _pause_for_kill(self) -> None:
        print(PAUSED, flush=True)
        time.sleep(30)  # the scenario kills this process now; if it never does, carry on


def main() -> None:
    Worker(json.loads(sys.stdin.read())).run()


if __name__ == "__main__":
    main()
