"""The RabbitMQ side: per-run durable queues (extract -> transform -> load), a dead-letter exchange and queue,
publishing with confirms, queue depth sampling and the final drain of the dead-letter queue."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

NOT_FOUND = 404  # AMQP reply code: no such queue

STAGES = ("extract", "transform", "load")
# What a lost or restarting broker raises on a blocking connection or channel.
CONNECTION_ERRORS = (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError, ConnectionError, OSError)


@dataclass(frozen=True)
class Topology:
    """Names and arguments of one run's queues."""

    prefix: str
    queue_type: str = "classic"
    max_length: int = 0
    overflow: str = "reject-publish"
    message_ttl_ms: int = 0
    max_priority: int = 0

    def queue(self, stage: str) -> str:
        return f"{self.prefix}.{stage}"

    @property
    def dlx(self) -> str:
        return f"{self.prefix}.dlx"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    @property
    def dead_letter_strategy(self) -> str:
        """RabbitMQ dead-letters at most once (a dead letter in flight when the broker stops is gone), except
        from quorum queues declared at-least-once, which needs overflow=reject-publish."""
        return "at-least-once" if self.queue_type == "quorum" and self.overflow == "reject-publish" else "at-most-once"

    def work_arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {"x-queue-type": self.queue_type, "x-dead-letter-exchange": self.dlx}
        if self.max_length:
            args["x-max-length"] = self.max_length
            args["x-overflow"] = self.overflow
        if self.dead_letter_strategy == "at-least-once":
            args["x-dead-letter-strategy"] = "at-least-once"
            args["x-overflow"] = "reject-publish"
        if self.message_ttl_ms:
            args["x-message-ttl"] = self.message_ttl_ms
        if self.max_priority:
            args["x-max-priority"] = self.max_priority
        return args

    def declare(self, channel: BlockingChannel, bind_dlq: bool = True) -> None:
        """`bind_dlq=False` is the fault of a dead-letter exchange nothing is bound to: the broker drops every
        dead letter, unroutable."""
        channel.exchange_declare(self.dlx, exchange_type="fanout", durable=True)
        channel.queue_declare(self.dlq, durable=True, arguments={"x-queue-type": self.queue_type})
        if bind_dlq:
            channel.queue_bind(self.dlq, self.dlx)
        for stage in STAGES:
            channel.queue_declare(self.queue(stage), durable=True, arguments=self.work_arguments())

    def delete(self, channel: BlockingChannel) -> None:
        for stage in STAGES:
            channel.queue_delete(self.queue(stage))
        channel.queue_delete(self.dlq)
        channel.exchange_delete(self.dlx)

    def all_queues(self) -> list[str]:
        return [*(self.queue(s) for s in STAGES), self.dlq]


def properties(job_id: str, tenant: str, published_at: float, priority: int = 0) -> pika.BasicProperties:
    """Persistent message carrying its identity in properties, so even an unreadable body is attributable;
    workers forward these properties, so the priority holds at every stage."""
    return pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent,
        priority=priority or None,
        message_id=job_id,
        headers={"tenant": tenant, "published_us": int(published_at * 1e6)},  # AMQP tables carry no floats
    )


class ConfirmWindow:
    """Publisher confirms with up to `window` messages in flight on a channel of its own.

    pika's blocking channel waits for every confirm, and a durable queue confirms after its fsync: one message
    per fsync caps a publisher at a few hundred per second. This uses the blocking channel's underlying
    pika channel for asynchronous confirm callbacks; the blocking connection still does all the I/O.
    `take()` returns (token, acked) pairs confirmed so far: True for basic.ack, False for basic.nack.
    """

    def __init__(self, connection: pika.BlockingConnection, window: int) -> None:
        self.connection = connection
        self.window = window
        self._channel = connection.channel()._impl  # noqa: SLF001 - async confirms are only on pika's channel
        self._next = 1
        self._pending: dict[int, Any] = {}
        self._done: list[tuple[Any, bool]] = []
        selected: list[bool] = []
        self._channel.confirm_delivery(self._on_confirm, callback=lambda _frame: selected.append(True))
        while not selected:
            connection.process_data_events(time_limit=0.05)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        tags = [t for t in self._pending if t <= method.delivery_tag] if method.multiple else [method.delivery_tag]
        for tag in tags:
            if (token := self._pending.pop(tag, None)) is not None:
                self._done.append((token, acked))

    def publish(self, queue: str, body: bytes, props: pika.BasicProperties, token: Any) -> None:
        while len(self._pending) >= self.window:
            self.connection.process_data_events(time_limit=0.01)
        self._channel.basic_publish("", queue, body, props)
        self._pending[self._next] = token
        self._next += 1

    def pump(self) -> None:
        """Send what is buffered and collect the confirms that arrived (one syscall round for many messages)."""
        self.connection.process_data_events(time_limit=0)

    def take(self) -> list[tuple[Any, bool]]:
        done, self._done = self._done, []
        return done

    def pending(self) -> list[Any]:
        """Tokens whose confirm has not arrived (after a lost connection: outcome unknown)."""
        return list(self._pending.values())

    def flush(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=0.01)


def depths(channel: BlockingChannel, topology: Topology) -> dict[str, int]:
    """Ready messages per queue (passive declare: never creates anything). A queue that no longer exists (deleted
    from outside) holds nothing any more: 0, so the run settles and its loss is judged (the broker observer
    names the missing queue) instead of waiting out its time bound and crashing on the 404."""
    found = {}
    for queue in topology.all_queues():
        try:
            found[queue] = channel.queue_declare(queue, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != NOT_FOUND:
                raise
            found[queue] = 0
            channel = channel.connection.channel()  # the broker closed the channel that asked
    return found


def drain_dead_letters(channel: BlockingChannel, queue: str, limit: int) -> list[tuple[str, str, str]]:
    """(job id, tenant, x-death reason) of every dead-lettered message, acked as read (bounded by `limit`)."""
    found: list[tuple[str, str, str]] = []
    for _ in range(limit):
        try:
            method, props, _body = channel.basic_get(queue, auto_ack=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != NOT_FOUND:
                raise
            break  # the dead-letter queue was deleted from outside: its letters are gone (the loss is judged)
        if method is None:
            break
        headers = props.headers or {}
        deaths = headers.get("x-death") or [{}]
        reason = deaths[0].get("reason", "unknown")
        found.append((str(props.message_id), str(headers.get("tenant", "")), str(reason)))
    return found


def connect_retrying(connect: Callable[[], pika.BlockingConnection], deadline: float) -> pika.BlockingConnection:
    """Reconnect until the broker answers (a broker restart takes seconds) or the deadline passes."""
    while True:
        try:
            return connect()
        except Exception:  # the resource maps refusals to ResourceConfigError; retry until the deadline
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.3)
