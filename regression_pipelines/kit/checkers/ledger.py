"""The acknowledged-write ledger (after Jepsen's set checker): numbered writes, each with what the client learned,
judged against the rows that survived.

`LedgerWriter` inserts 1, 2, 3, ... at a fixed rate through a `connect` function and records every outcome
(acknowledged, failed, unknown); `judge_ledger` compares that history with the committed rows (pure): lost
(acknowledged, absent), phantom (present, never acknowledged and not unknown), duplicated, and the write outage
as the largest gap between committed rows' server timestamps (client retry loops hide outages; the server's
clock does not). `write_history_jsonl` exports one op per line for external checkers such as Elle.

Shared by every area that promises "no acknowledged write is lost" (a Patroni failover, a Citus shard move):
what differs per area (how to connect, which error means "definitely not committed") is passed in.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from regression_pipelines.measure import describe_error


class Outcome(StrEnum):
    ACKNOWLEDGED = "acknowledged"  # COMMIT returned: the database promised the row exists
    FAILED = "failed"  # definitely not committed (no connection, or the server refused it)
    UNKNOWN = "unknown"  # the statement was sent and then the connection broke: may or may not exist


_ELLE_TYPE = {Outcome.ACKNOWLEDGED: "ok", Outcome.FAILED: "fail", Outcome.UNKNOWN: "info"}


@dataclass
class Op:
    value: int
    invoked_at: float  # epoch seconds (client clock)
    completed_at: float
    outcome: Outcome
    member_port: int | None = None  # server port that acknowledged it (when the insert returns it)
    error: str = ""


@dataclass(frozen=True)
class Row:
    value: int
    written_at: float  # epoch seconds, server clock_timestamp() at insert
    server_port: int | None = None


Connect = Callable[[], psycopg.Connection]
# (the error, whether the statement reached the server) -> its outcome
Classify = Callable[[psycopg.Error, bool], Outcome]


def classify_by_connection(exc: psycopg.Error, sent: bool) -> Outcome:
    """Default: never sent is FAILED; sent and then the connection broke is UNKNOWN; sent and refused by a live
    server (autocommit: the statement rolled back) is FAILED."""
    if not sent:
        return Outcome.FAILED
    return Outcome.UNKNOWN if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) else Outcome.FAILED


def ledger_table_sql(table: sql.Composable, server_port: bool = False) -> sql.Composed:
    """The ledger table: an id, the server's commit-time clock, and optionally the server port that wrote it."""
    port = sql.SQL(", server_port int DEFAULT inet_server_port()") if server_port else sql.SQL("")
    return sql.SQL(
        "CREATE TABLE {} (id bigint PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT clock_timestamp(){})"
    ).format(table, port)


class LedgerWriter(threading.Thread):
    """Inserts 1, 2, 3, ... at `rate_hz` through `connect()`, reconnecting after every error.

    Bounded by `max_ops` and by `stop()`. Never retries an id: every id is written at most once, so a present
    row whose op was not acknowledged can only come from an unknown outcome (or is a phantom). With
    `returns_port`, the insert must return the server port (`RETURNING inet_server_port()`), kept per op.
    """

    def __init__(
        self,
        connect: Connect,
        insert: sql.Composable,
        rate_hz: float,
        max_ops: int,
        *,
        classify: Classify = classify_by_connection,
        describe: Callable[[BaseException], str] = describe_error,
        returns_port: bool = False,
        name: str = "ledger-writer",
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.connect = connect
        self.insert = insert
        self.period = 1.0 / rate_hz
        self.max_ops = max_ops
        self.classify = classify
        self.describe = describe
        self.returns_port = returns_port
        self.ops: list[Op] = []
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        conn: psycopg.Connection | None = None
        next_at = time.monotonic()
        try:
            for value in range(1, self.max_ops + 1):
                if self._halt.is_set():
                    break
                conn = self._write(conn, value)
                next_at = self._pace(next_at)
        finally:
            if conn is not None:
                conn.close()

    def _write(self, conn: psycopg.Connection | None, value: int) -> psycopg.Connection | None:
        """One op; returns the connection to reuse (None after any error: the next op reconnects)."""
        invoked = time.time()
        sent = False
        try:
            if conn is None:
                conn = self.connect()
            sent = True
            cur = conn.execute(self.insert, (value,))
            port = cur.fetchone()[0] if self.returns_port else None  # type: ignore[index]
            self.ops.append(Op(value, invoked, time.time(), Outcome.ACKNOWLEDGED, member_port=port))
            return conn
        except psycopg.Error as exc:
            self.ops.append(Op(value, invoked, time.time(), self.classify(exc, sent), error=self.describe(exc)[:200]))
            if conn is not None:
                conn.close()
            return None

    def _pace(self, next_at: float) -> float:
        """Fixed rate without bursts: after a stall the schedule restarts from now."""
        next_at = max(next_at + self.period, time.monotonic())
        self._halt.wait(max(0.0, next_at - time.monotonic()))
        return next_at


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

    def facts(self) -> dict[str, Any]:
        return {
            "attempted": self.attempted,
            "acknowledged": self.acknowledged,
            "failed": self.failed,
            "unknown": self.unknown,
            "lost": len(self.lost),
            "phantom": len(self.phantom),
            "duplicates": len(self.duplicates),
            "outage_s": round(self.outage_s, 3),
        }


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


def writes_outside(ops: Sequence[Op], fault_at: float, healthy_at: float | None, grace_s: float) -> list[Op]:
    """Writes made while the system was meant to be fine: before the fault, or after it recovered (plus grace).

    Errors among them are operation errors (a locked table, a refused permission, a timeout on a healthy
    system); errors inside the window are the outage being measured. No recovery: nothing after the fault.
    """
    end = healthy_at + grace_s if healthy_at is not None else float("inf")
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
