"""The failover ledger on a Patroni cluster: the kit's acknowledged-write ledger written through HAProxy's
read-write port (kit.checkers.ledger holds the writer and the judge; this module only says where and how).

A refused write on a read-only member is definitely not committed (FAILED); any other error after the insert
was sent may or may not have committed (UNKNOWN): the connection through HAProxy is cut when a member dies.
"""

from __future__ import annotations

import re
import time

import psycopg
from psycopg import sql

from regression_pipelines.kit.checkers.ledger import LedgerWriter, Outcome, Row, ledger_table_sql
from resources.patroni.client import READ_ONLY_SQLSTATE, ClusterTarget

# HAProxy routes again only after two passing checks (inter 500 ms): writes this soon after recovery may fail.
RECOVERY_GRACE_S = 3.0


def ledger_table_name(run_id: str) -> str:
    """A run-scoped, SQL-safe table name."""
    return "ha_ledger_" + (re.sub(r"[^a-z0-9]", "", run_id.lower())[:24] or "run")


def create_ledger(target: ClusterTarget, table: str) -> None:
    with target.connect(target.rw_port) as conn:
        conn.execute(ledger_table_sql(sql.Identifier(table), server_port=True))


def connect_rw(target: ClusterTarget, timeout_s: float = 20.0, statement_timeout_ms: int = 3000) -> psycopg.Connection:
    """Connect through HAProxy rw, retrying briefly: right after a healed fault HAProxy may still hold the
    primary DOWN for a couple of checks (rise 2) even though Patroni already reports it healthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return target.connect(target.rw_port, statement_timeout_ms=statement_timeout_ms)
        except psycopg.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.25)


def connect_judge(target: ClusterTarget, statement_timeout_ms: int = 10000) -> tuple[psycopg.Connection, str]:
    """A connection for reading or removing the ledger: HAProxy's read-write port, or, when HAProxy refuses
    (it died or holds every server down), the leader's own port as Patroni's REST API names it. Returns how."""
    try:
        return connect_rw(target, timeout_s=5.0, statement_timeout_ms=statement_timeout_ms), "haproxy"
    except psycopg.OperationalError as through_haproxy:
        for member in target.members:
            if target.rest(member, "/primary", timeout_s=2.0)[0] == 200:
                conn = target.connect(member.pg_port, statement_timeout_ms=statement_timeout_ms)
                return conn, f"the leader {member.name} directly (HAProxy's read-write port: {through_haproxy})"
        raise


def read_ledger(target: ClusterTarget, table: str) -> tuple[list[Row], str]:
    """The ledger's committed rows, and how they were read (through HAProxy, or from the leader directly)."""
    conn, via = connect_judge(target)
    with conn:
        cur = conn.execute(
            sql.SQL("SELECT id, extract(epoch FROM written_at)::float8, server_port FROM {} ORDER BY id").format(
                sql.Identifier(table)
            )
        )
        return [Row(int(r[0]), float(r[1]), r[2]) for r in cur], via


def drop_ledger(target: ClusterTarget, table: str) -> None:
    conn, _ = connect_judge(target)
    with conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


def ledger_exists(target: ClusterTarget, table: str) -> bool:
    conn, _ = connect_judge(target)
    with conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


def classify(exc: psycopg.Error, sent: bool) -> Outcome:
    """Not connected, or refused as read-only: FAILED; anything else once sent: UNKNOWN."""
    if not sent or exc.sqlstate == READ_ONLY_SQLSTATE:
        return Outcome.FAILED
    return Outcome.UNKNOWN


def ledger_writer(target: ClusterTarget, table: str, rate_hz: float, max_ops: int) -> LedgerWriter:
    """Inserts 1, 2, 3, ... through HAProxy rw (2 s statement timeout), recording the member that wrote each."""
    insert = sql.SQL("INSERT INTO {} (id) VALUES (%s) RETURNING inet_server_port()").format(sql.Identifier(table))
    return LedgerWriter(
        lambda: target.connect(target.rw_port, statement_timeout_ms=2000),
        insert,
        rate_hz,
        max_ops,
        classify=classify,
        describe=lambda exc: target.mask((str(exc).strip().splitlines() or [type(exc).__name__])[0]),
        returns_port=True,
        name=f"ledger-writer-{table}",
    )
