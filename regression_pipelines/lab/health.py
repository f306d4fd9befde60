"""One-shot probes that a lab service is really usable (a query, a PING, an AMQP handshake).

Each returns (ok, detail) and never raises, so `up` can poll them and `status` can print them.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.request
from typing import Any

from regression_pipelines.lab.settings import LAB_HOST, LabSettings

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


def postgres_ok(s: LabSettings) -> Probe:
    try:
        pg_query(s.postgres_port, s.postgres_user, s.postgres_password, s.postgres_db, "SELECT 1")
        return True, "query ok"
    except Exception as exc:
        return False, _short(exc)


def etcd_ok(s: LabSettings) -> Probe:
    try:
        code, body = http_get(f"http://{LAB_HOST}:{s.etcd_client_port}/health")
        ok = code == 200 and json.loads(body).get("health") in ("true", True)
        return ok, "healthy" if ok else f"HTTP {code}"
    except Exception as exc:
        return False, _short(exc)


def patroni_member(s: LabSettings, index: int) -> dict[str, Any] | None:
    """The member's GET /patroni document (role, state, ...), or None if it does not answer."""
    try:
        code, body = http_get(f"http://{LAB_HOST}:{s.patroni_rest_ports[index]}/patroni")
        return json.loads(body) if code in (200, 503) else None
    except Exception:
        return None


def patroni_member_ok(s: LabSettings, index: int) -> Probe:
    doc = patroni_member(s, index)
    if doc is None:
        return False, "REST API not answering"
    ok = doc.get("state") == "running"
    return ok, f"{doc.get('role', '?')} {doc.get('state', '?')}"


def patroni_leader_index(s: LabSettings) -> int | None:
    for i in range(len(s.patroni_members)):
        doc = patroni_member(s, i)
        if doc and doc.get("role") in ("master", "primary") and doc.get("state") == "running":
            return i
    return None


def patroni_cluster_ok(s: LabSettings) -> Probe:
    """1 leader and 2 replicas streaming (Patroni 3.0.2 has no 'streaming' state: ask the leader)."""
    leader = patroni_leader_index(s)
    if leader is None:
        return False, "no leader"
    try:
        streaming = pg_query(
            s.patroni_pg_ports[leader],
            "postgres",
            s.patroni_superuser_password,
            "postgres",
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
        )
    except Exception as exc:
        return False, _short(exc)
    want = len(s.patroni_members) - 1
    ok = streaming == want
    return ok, f"leader {s.patroni_members[leader]}, {streaming}/{want} streaming"


def parse_haproxy_csv(text: str) -> list[dict[str, str]]:
    """Rows of HAProxy's `/;csv` stats page (header line starts with '# ')."""
    text = text.lstrip()
    if text.startswith("# "):
        text = text[2:]
    return [row for row in csv.DictReader(io.StringIO(text)) if row.get("pxname")]


def up_servers(rows: list[dict[str, str]], proxy: str) -> list[str]:
    """Servers of `proxy` that are UP by a passed check (HAProxy 2.6 shows unchecked servers UP too)."""
    return [
        r["svname"]
        for r in rows
        if r["pxname"] == proxy
        and r["svname"] not in ("FRONTEND", "BACKEND")
        and r.get("status", "").startswith("UP")
        and r.get("check_status", "") in ("L7OK", "L6OK", "L4OK")
    ]


def haproxy_routing_ok(rows: list[dict[str, str]], replicas: int = 2) -> Probe:
    primary, replica = up_servers(rows, "primary"), up_servers(rows, "replicas")
    ok = len(primary) == 1 and len(replica) == replicas
    return ok, f"primary UP {primary}, replicas UP {replica}"


def haproxy_ok(s: LabSettings) -> Probe:
    try:
        code, body = http_get(f"http://{LAB_HOST}:{s.haproxy_stats_port}/;csv")
        if code != 200:
            return False, f"stats HTTP {code}"
        ok, detail = haproxy_routing_ok(parse_haproxy_csv(body), len(s.patroni_members) - 1)
        if not ok:
            return False, detail
        in_recovery = pg_query(
            s.haproxy_rw_port, "postgres", s.patroni_superuser_password, "postgres", "SELECT pg_is_in_recovery()"
        )
        return (not in_recovery), detail + ("" if not in_recovery else "; rw port reached a replica")
    except Exception as exc:
        return False, _short(exc)


def redis_ok(s: LabSettings) -> Probe:
    import redis

    try:
        client = redis.Redis(host=LAB_HOST, port=s.redis_port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping()), "PONG"
        finally:
            client.close()
    except Exception as exc:
        return False, _short(exc)


def amqp_ok(port: int, user: str, password: str) -> Probe:
    """A real AMQP handshake (not just an open port)."""
    import pika

    try:
        params = pika.ConnectionParameters(
            host=LAB_HOST,
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
        return False, _short(exc) or type(exc).__name__


def alertmanager_ok(s: LabSettings) -> Probe:
    try:
        code, _ = http_get(f"http://{LAB_HOST}:{s.alertmanager_port}/-/ready")
        return code == 200, f"HTTP {code}"
    except Exception as exc:
        return False, _short(exc)


def port_open(port: int) -> Probe:
    import socket

    try:
        with socket.create_connection((LAB_HOST, port), timeout=1):
            return True, "listening"
    except OSError as exc:
        return False, _short(exc)


def _short(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
