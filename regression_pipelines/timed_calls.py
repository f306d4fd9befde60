"""Timed calls: the least harness between the clock and the server, for the calls whose latency is a figure.

redis-py's `Redis.get` spends ~50-80 us of Python per call (pool checkout, packing, reply callbacks) and
psycopg's `execute` ~60 us (cursor, adaptation, row conversion); with 4-6 threads on 2 cores that Python queues
on the GIL, and the figure became 3-14x what redis-benchmark or pgbench read on the same server
(benchmarks/fidelity/RESULTS.md). Here the command is packed before the clock starts and only send + receive
is timed: RESP parsed by hiredis (Redis's own C parser), SQL run by libpq's PQexecPrepared through psycopg's
binding (which releases the GIL while it waits). Failures raise the libraries' own exception types, so callers
count them like any other operation error.
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Sequence
from typing import Any

import hiredis
import psycopg
import redis
from psycopg import pq

_RECV_BYTES = 65536
_statement_names = itertools.count()


class TimedRedis:
    """One Redis connection of its own (AUTH and SELECT as the given client's pool does them)."""

    def __init__(
        self, host: str, port: int, password: str | None = None, db: int = 0, timeout_s: float | None = 5.0
    ) -> None:
        self._reader = hiredis.Reader()
        self.broken = False
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as exc:
            raise redis.ConnectionError(f"cannot connect to {host}:{port} ({exc})") from None
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if password:
            self.call(self.pack("AUTH", password))
        if db:
            self.call(self.pack("SELECT", db))

    @classmethod
    def like(cls, client: redis.Redis) -> TimedRedis:
        """A connection to the server `client` talks to, with its password, database and timeout."""
        kwargs = client.connection_pool.connection_kwargs
        return cls(
            kwargs.get("host", "localhost"),
            int(kwargs.get("port", 6379)),
            kwargs.get("password"),
            int(kwargs.get("db", 0)),
            kwargs.get("socket_timeout"),
        )

    @staticmethod
    def pack(*args: str | bytes | int) -> bytes:
        """The RESP bytes of one command: pack once, call many times."""
        return hiredis.pack_command(args)

    def call(self, packed: bytes) -> tuple[Any, int]:
        """Send one packed command and read its reply: (reply, nanoseconds from send to complete reply)."""
        if self.broken:
            raise redis.ConnectionError("connection was broken by an earlier error; open a new one")
        try:
            started = time.perf_counter_ns()
            self._sock.sendall(packed)
            reply = self._reader.gets()
            while reply is False:
                chunk = self._sock.recv(_RECV_BYTES)
                if not chunk:
                    raise redis.ConnectionError("the server closed the connection")
                self._reader.feed(chunk)
                reply = self._reader.gets()
            elapsed = time.perf_counter_ns() - started
        except TimeoutError:
            self.broken = True
            raise redis.TimeoutError("no reply within the socket timeout") from None
        except OSError as exc:
            self.broken = True
            raise redis.ConnectionError(str(exc) or type(exc).__name__) from None
        except redis.ConnectionError:
            self.broken = True
            raise
        if isinstance(reply, hiredis.ReplyError):
            raise _reply_error(str(reply))
        return reply, elapsed

    def close(self) -> None:
        self._sock.close()


def _reply_error(message: str) -> redis.RedisError:
    if message.startswith(("NOAUTH", "WRONGPASS")):
        return redis.AuthenticationError(message)
    return redis.ResponseError(message)


class PreparedQuery:
    """One statement (`$1`-style parameters) prepared on a psycopg connection and run through libpq directly.

    The connection must be in autocommit mode and used by one thread; rows come back as text (None for NULL).
    """

    def __init__(self, conn: psycopg.Connection, sql: str) -> None:
        self._pgconn = conn.pgconn
        self._name = f"timed_{next(_statement_names)}".encode()
        self._encoding = conn.info.encoding
        _checked(self._pgconn.prepare(self._name, sql.encode(self._encoding)), self._encoding)

    def run(self, *params: object) -> tuple[list[tuple[str | None, ...]], int]:
        """Execute with `params`: (rows, nanoseconds from send to complete result)."""
        values: Sequence[bytes | None] = [None if p is None else str(p).encode(self._encoding) for p in params]
        started = time.perf_counter_ns()
        result = self._pgconn.exec_prepared(self._name, values)
        elapsed = time.perf_counter_ns() - started
        _checked(result, self._encoding)
        rows = [
            tuple(_text(result.get_value(row, col), self._encoding) for col in range(result.nfields))
            for row in range(result.ntuples)
        ]
        return rows, elapsed


def unusable(conn: psycopg.Connection) -> bool:
    """Closed, or broken underneath psycopg (a PreparedQuery's failure is not seen by the Connection object)."""
    return conn.closed or conn.broken or conn.pgconn.status == pq.ConnStatus.BAD


def _checked(result: pq.abc.PGresult, encoding: str) -> None:
    if result.status in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        return
    message = (result.error_message or b"").decode(encoding, "replace").strip() or "statement failed"
    sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE)
    try:
        error = psycopg.errors.lookup(sqlstate.decode()) if sqlstate else psycopg.OperationalError
    except KeyError:
        error = psycopg.OperationalError
    raise error(message)


def _text(value: bytes | None, encoding: str) -> str | None:
    return None if value is None else value.decode(encoding)
