"""A durable outbox: alerts waiting for a sink, and alerts currently firing, in one small SQLite file.

Why on disk: a sink that is down must not lose an alert, and a restarted daemon must neither forget what is
firing (it has to be resolved later) nor fire it again. Only sink *names* are stored, never URLs or tokens.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from regression_pipelines.alerts.model import Alert

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    identity TEXT NOT NULL,
    alert TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_error TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_sink ON pending (sink, id);
CREATE TABLE IF NOT EXISTS alert_state (
    identity TEXT PRIMARY KEY,
    alert TEXT NOT NULL,
    firing INTEGER NOT NULL,
    last_sent REAL NOT NULL,
    seq INTEGER
);
"""


@dataclass(frozen=True)
class PendingAlert:
    id: int
    sink: str
    alert: Alert
    attempts: int
    next_attempt: float
    last_error: str | None


@dataclass(frozen=True)
class AlertState:
    """The last thing said about one alert identity. `seq` orders evidence (the storage id of the event that
    fired/resolved it), so replaying older events after a crash cannot flip the state back."""

    alert: Alert
    firing: bool
    last_sent: float
    seq: int | None


class Outbox:
    """Pending deliveries (per sink, in order) and the set of firing alerts, keyed by alert identity."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    # pending deliveries
    def enqueue(self, sink: str, alert: Alert, now: float | None = None) -> None:
        ts = time.time() if now is None else now
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO pending (sink, identity, alert, next_attempt, created) VALUES (?, ?, ?, ?, ?)",
                (sink, alert.identity, json.dumps(alert.to_json()), ts, ts),
            )

    def pending(self, sink: str | None = None) -> list[PendingAlert]:
        query = "SELECT id, sink, alert, attempts, next_attempt, last_error FROM pending"
        args: tuple[str, ...] = ()
        if sink is not None:
            query += " WHERE sink = ?"
            args = (sink,)
        with self._connect() as conn:
            rows = conn.execute(query + " ORDER BY id", args).fetchall()
        return [
            PendingAlert(
                id=r[0],
                sink=r[1],
                alert=Alert.from_json(json.loads(r[2])),
                attempts=r[3],
                next_attempt=r[4],
                last_error=r[5],
            )
            for r in rows
        ]

    def delivered(self, ids: list[int]) -> None:
        with self._connect() as conn:
            conn.executemany("DELETE FROM pending WHERE id = ?", [(i,) for i in ids])

    def failed(self, ids: list[int], error: str, next_attempt: float) -> None:
        with self._connect() as conn:
            conn.executemany(
                "UPDATE pending SET attempts = attempts + 1, last_error = ?, next_attempt = ? WHERE id = ?",
                [(error, next_attempt, i) for i in ids],
            )

    # what each alert identity last was (firing, or resolved as a tombstone that stops stale re-fires)
    def states(self) -> dict[str, AlertState]:
        with self._connect() as conn:
            rows = conn.execute("SELECT identity, alert, firing, last_sent, seq FROM alert_state").fetchall()
        return {
            r[0]: AlertState(alert=Alert.from_json(json.loads(r[1])), firing=bool(r[2]), last_sent=r[3], seq=r[4])
            for r in rows
        }

    def set_state(self, alert: Alert, firing: bool, last_sent: float, seq: int | None) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO alert_state (identity, alert, firing, last_sent, seq) VALUES (?, ?, ?, ?, ?)",
                (alert.identity, json.dumps(alert.to_json()), int(firing), last_sent, seq),
            )
