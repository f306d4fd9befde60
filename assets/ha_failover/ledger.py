"""The acknowledged-write ledger: numbered writes through HAProxy, each with its client-side outcome.

`LedgerWriter` inserts id n at a fixed rate and records what the client learned; `judge_ledger` compares
that history with the rows that survived (pure, unit-tested); `write_history_jsonl` exports one op per line
for external checkers such as Elle.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import psycopg
from psycopg import sql

from resources.patroni.client import READ_ONLY_SQLSTATE, ClusterTarget


class Outcome(StrEnum):
    ACKNOWLEDGED = "acknowledged"  # COMMIT returned: the database promised the row exists
    FAILED = "failed"  # definitely not committed (no connection, or the server refused it as read-only)
    UNKNOWN = "unknown"  # the statement was sent and then the connection broke: may or may not exist


_ELLE_TYPE = {Outcome.ACKNOWLEDGED: "ok", Outcome.FAILED: "fail", Outcome.UNKNOWN: "info"}


@dataclass
class Op:
    value: int
    invoked_at: float  # epoch seconds (client clock)
    completed_at: float
    outcome: Outcome
    member_port: int | None = None  # server port that acknowledged it (inet_server_port through HAProxy)
    error: str = ""


@dataclass(frozen=True)
class Row:
    value: int
    written_at: float  # epoch seconds, server clock_timestamp() at insert
    server_port: int | None


def ledger_table_name(run_id: str) -> str:
    """A run-scoped, SQL-safe table name."""
    return "ha_ledger_" + (re.sub(r"[^a-z0-9]", "", run_id.lower())[:24] or "run")


def create_ledger(target: ClusterTarget, table: str) -> None:
    with target.connect(target.rw_port) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigint PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT clock_timestamp(),"
                " server_port int DEFAULT inet_server_port())"
            ).format(sql.Identifier(table))
        )


def _connect_rw(target: ClusterTarget, timeout_s: float = 20.0, statement_timeout_ms: int = 3000) -> psycopg.Connection:
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


def read_ledger(target: ClusterTarget, table: str) -> list[Row]:
    with _connect_rw(target, statement_timeout_ms=10000) as conn:
        cur = conn.execute(
            sql.SQL("SELECT id, extract(epoch FROM written_at)::float8, server_port FROM {} ORDER BY id").format(
                sql.Identifier(table)
            )
        )
        return [Row(int(r[0]), float(r[1]), r[2]) for r in cur]


def drop_ledger(target: ClusterTarget, table: str) -> None:
    with _connect_rw(target) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


class LedgerWriter(threading.Thread):
    """Inserts 1, 2, 3, ... at `rate_hz` through the read-write port, reconnecting after every error.

    Bounded by `max_ops` and by `stop()`. Never retries an id: every id is written at most once, so a
    present row whose op was not acknowledged can only come from an unknown outcome (or is a phantom).
    """

    def __init__(self, target: ClusterTarget, table: str, rate_hz: float, max_ops: int) -> None:
        super().__init__(name=f"ledger-writer-{table}", daemon=True)
        self.target = target
        self.table = table
        self.period = 1.0 / rate_hz
        self.max_ops = max_ops
        self.ops: list[Op] = []
        self._halt = threading.Event()
        self._insert = sql.SQL("INSERT INTO {} (id) VALUES (%s) RETURNING inet_server_port()").format(
            sql.Identifier(table)
        )

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        conn: psycopg.Connection | None = None
        next_at = time.monotonic()
        try:
            for value in range(1, self.max_ops + 1):
                if self._halt.is_set():
                    break
                invoked = time.time()
                if conn is None:
                    try:
                        conn = self.target.connect(self.target.rw_port, statement_timeout_ms=2000)
                    except psycopg.Error as exc:
                        self.ops.append(Op(value, invoked, time.time(), Outcome.FAILED, error=self._short(exc)))
                        conn = None
                        next_at = self._pace(next_at)
                        continue
                try:
                    port = conn.execute(self._insert, (value,)).fetchone()[0]
                    self.ops.append(Op(value, invoked, time.time(), Outcome.ACKNOWLEDGED, member_port=port))
                except psycopg.Error as exc:
                    outcome = Outcome.FAILED if exc.sqlstate == READ_ONLY_SQLSTATE else Outcome.UNKNOWN
                    self.ops.append(Op(value, invoked, time.time(), outcome, error=self._short(exc)))
                    conn.close()
                    conn = None
                next_at = self._pace(next_at)
        finally:
            if conn is not None:
                conn.close()

    def _pace(self, next_at: float) -> float:
        """Fixed rate without bursts: after a stall the schedule restarts from now."""
        next_at = max(next_at + self.period, time.monotonic())
        self._halt.wait(max(0.0, next_at - time.monotonic()))
        return next_at

    def _short(self, exc: BaseException) -> str:
        text = str(exc).strip()
        return self.target.mask(text.splitlines()[0] if text else type(exc).__name__)[:200]


@dataclass
class LedgerVerdict:
    attempted: int
    acknowledged: int
    failed: int
    unknown: int
    lost: list[int] = field(default_factory=list)  # acknowledged but absent
    phantom: list[int] = field(default_factory=list)  # present but never acknowledged and not unknown
    unknown_present: int = 0  # present with an unknown outcome (allowed)
    duplicates: list[int] = field(default_factory=list)
    outage_s: float = 0.0  # largest gap between consecutive committed rows in the fault window
    outage_from: float | None = None
    outage_to: float | None = None
    members_in_order: list[int] = field(default_factory=list)  # server ports of acknowledged writes, runs

    @property
    def haproxy_split_brain(self) -> bool:
        """Acknowledged writes went back to a server they had left: two writable members at once."""
        return len(self.members_in_order) != len(set(self.members_in_order))


def _runs(ports: Iterable[int | None]) -> list[int]:
    runs: list[int] = []
    for port in ports:
        if port is not None and (not runs or runs[-1] != port):
            runs.append(port)
    return runs


def judge_ledger(ops: Sequence[Op], rows: Sequence[Row], fault_start: float, writer_end: float) -> LedgerVerdict:
    """Compare the client's history with the surviving rows and measure the write outage.

    The outage is the largest gap between consecutive committed rows (server timestamps) that ends after
    the fault started; if no row was committed after the fault, it runs to the writer's end (a lower bound).
    """
    counts = Counter(r.value for r in rows)
    present = set(counts)
    by_outcome = {o: {op.value for op in ops if op.outcome is o} for o in Outcome}
    acked = by_outcome[Outcome.ACKNOWLEDGED]
    verdict = LedgerVerdict(
        attempted=len(ops),
        acknowledged=len(acked),
        failed=len(by_outcome[Outcome.FAILED]),
        unknown=len(by_outcome[Outcome.UNKNOWN]),
        lost=sorted(acked - present),
        phantom=sorted(present - acked - by_outcome[Outcome.UNKNOWN]),
        unknown_present=len(present & by_outcome[Outcome.UNKNOWN]),
        duplicates=sorted(v for v, n in counts.items() if n > 1),
        members_in_order=_runs(op.member_port for op in sorted(ops, key=lambda o: o.value) if op.member_port),
    )
    times = sorted(r.written_at for r in rows)
    before = [t for t in times if t <= fault_start]
    after = [t for t in times if t > fault_start]
    start = before[-1] if before else fault_start
    candidates = [(start, after[0])] if after else [(start, writer_end)]
    candidates += list(zip(after, after[1:], strict=False))
    gap_from, gap_to = max(candidates, key=lambda p: p[1] - p[0])
    verdict.outage_s, verdict.outage_from, verdict.outage_to = max(0.0, gap_to - gap_from), gap_from, gap_to
    return verdict


# HAProxy routes again only after two passing checks (inter 500 ms): writes this soon after recovery may fail.
RECOVERY_GRACE_S = 3.0


def writes_outside_outage(ops: Sequence[Op], fault_at: float, healthy_at: float | None) -> list[Op]:
    """Writes made while the cluster was meant to be fine: before the fault, or after it recovered (plus grace).

    Errors among them are operation errors (a locked table, a refused permission, a timeout on a healthy
    cluster); errors inside the window are the outage being measured. No recovery: nothing after the fault.
    """
    end = healthy_at + RECOVERY_GRACE_S if healthy_at is not None else float("inf")
    return [op for op in ops if op.invoked_at < fault_at or op.invoked_at > end]


def write_history_jsonl(ops: Sequence[Op], path: Path, origin: float) -> Path:
    """One op per line (process, type, f, value, time in ns since origin, outcome), Elle/Jepsen style."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for op in ops:
            line = {
                "process": 0,
                "type": _ELLE_TYPE[op.outcome],
                "f": "write",
                "value": op.value,
                "time": int((op.completed_at - origin) * 1e9),
                "invoke_time": int((op.invoked_at - origin) * 1e9),
                "outcome": op.outcome.value,
                "server_port": op.member_port,
                "error": op.error,
            }
            out.write(json.dumps(line) + "\n")
    return path
