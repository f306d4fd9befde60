"""One-shot probes that a server is really usable (a query, an HTTP answer, an AMQP handshake).

Each returns (ok, detail) and never raises, so `up` can poll them and `status` can print them. Service
modules build their `probe`/`ready`/`healthy` from these.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from typing import Any

from regression_pipelines.lab.settings import LAB_HOST

Probe = tuple[bool, str]


def http_get(url: str, timeout: float = 1.0, method: str = "GET") -> tuple[int, str]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def pg_query(port: int, user: str, password: str, dbname: str, sql: str, host: str = LAB_HOST) -> Any:
    """Run one query over TCP with password auth and return the first column of the first row."""
    import psycopg

    with psycopg.connect(host=host, port=port, user=user, password=password, dbname=dbname, connect_timeout=2) as conn:
        row = conn.execute(sql).fetchone()
        return row[0] if row else None


def amqp_ok(port: int, user: str, password: str, host: str = LAB_HOST) -> Probe:
    """A real AMQP handshake (not just an open port)."""
    import pika

    try:
        params = pika.ConnectionParameters(
            host=host,
            port=port,
            credentials=pika.PlainCredentials(user, password),
            connection_attempts=1,
            socket_timeout=1,
            blocked_connection_timeout=2,
        )
        conn = pika.BlockingConnection(params)
        conn.close()
        return True, "AMQP ok"
    except Exception as exc:
        return False, short(exc)


def port_open(port: int, host: str = LAB_HOST) -> Probe:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True, "listening"
    except OSError as exc:
        return False, short(exc)


def short(exc: BaseException) -> str:
    """First line of an exception's message (its type when empty), at most 160 characters."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
