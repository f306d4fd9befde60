"""Fire and resolve alerts once, deliver them through the outbox, retry sinks that are down with backoff.

Firing is idempotent per alert identity and ordered by evidence (`seq`, the event's storage id): the sensor
may re-evaluate materializations after a crash, and that must neither page twice nor let an old event flip
the state back. A sink failure never raises; it is logged and retried on a later tick.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from regression_pipelines.alerts.model import Alert
from regression_pipelines.alerts.outbox import AlertState, Outbox
from regression_pipelines.alerts.sinks import AlertSink, SinkError
from regression_pipelines.errors import mask_secrets

_log = logging.getLogger(__name__)


@dataclass
class FlushReport:
    sent: int = 0
    failed: int = 0
    pending: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Backoff:
    """Delay before retry n (n >= 1): base * 2^(n-1), capped; alerts are never given up on."""

    base_s: float = 30.0
    max_s: float = 3600.0

    def delay(self, attempts: int) -> float:
        return min(self.max_s, self.base_s * 2 ** max(0, attempts - 1))


class AlertDispatcher:
    def __init__(
        self,
        outbox: Outbox,
        sinks: Sequence[AlertSink],
        *,
        backoff: Backoff | None = None,
        refresh_interval_s: float = 3600.0,
        log: Any = None,
    ) -> None:
        self.outbox = outbox
        self.sinks: dict[str, AlertSink] = {s.name: s for s in sinks}
        self.backoff = backoff or Backoff()
        self.refresh_interval_s = refresh_interval_s
        self.log = log or _log

    def _enqueue(self, alert: Alert, sinks: Mapping[str, AlertSink], now: float) -> None:
        for name in sinks:
            self.outbox.enqueue(name, alert, now)

    def _stale(self, state: AlertState | None, seq: int | None) -> bool:
        return state is not None and seq is not None and state.seq is not None and seq <= state.seq

    def fire(self, alert: Alert, now: float | None = None, seq: int | None = None) -> bool:
        """Queue a firing alert unless the same problem already fires with the same labels, or `seq` is not
        newer than the evidence last acted on. True if queued."""
        ts = time.time() if now is None else now
        state = self.outbox.states().get(alert.identity)
        if self._stale(state, seq):
            return False
        if state is not None and state.firing:
            old = state.alert
            alert = replace(alert, starts_at=old.starts_at)
            if dict(old.labels) == dict(alert.labels):
                self.outbox.set_state(alert, True, state.last_sent, seq)  # fresher figures for the next refresh
                return False
            # Severity changed: Alertmanager sees a new label set, so retire the old one there.
            refreshing = {n: s for n, s in self.sinks.items() if s.needs_refresh}
            self._enqueue(old.resolve(datetime.fromtimestamp(ts, UTC)), refreshing, ts)
        self._enqueue(alert, self.sinks, ts)
        self.outbox.set_state(alert, True, ts, seq)
        self.log.info(f"alert firing: {alert.title()} ({alert.labels.get('severity', 'n/a')})")
        return True

    def resolve(self, labels: Mapping[str, str], now: float | None = None, seq: int | None = None) -> bool:
        """Resolve the firing alert with these identifying labels, if any (and `seq` is newer evidence)."""
        ts = time.time() if now is None else now
        state = self.outbox.states().get(Alert(labels=labels).identity)
        if state is None or not state.firing or self._stale(state, seq):
            return False
        resolved = state.alert.resolve(datetime.fromtimestamp(ts, UTC))
        self._enqueue(resolved, self.sinks, ts)
        self.outbox.set_state(resolved, False, ts, seq)
        self.log.info(f"alert resolved: {resolved.title()}")
        return True

    def firing(self) -> list[Alert]:
        return [state.alert for state in self.outbox.states().values() if state.firing]

    def refresh(self, now: float | None = None) -> int:
        """Re-send long-firing alerts to sinks that expire them (Alertmanager), before they lapse."""
        ts = time.time() if now is None else now
        refreshing = {n: s for n, s in self.sinks.items() if s.needs_refresh}
        count = 0
        for state in self.outbox.states().values():
            if refreshing and state.firing and ts - state.last_sent >= self.refresh_interval_s:
                self._enqueue(state.alert, refreshing, ts)
                self.outbox.set_state(state.alert, True, ts, state.seq)
                count += 1
        return count

    def flush(self, now: float | None = None) -> FlushReport:
        """Deliver due pending alerts per sink in order; a failing sink backs off and keeps its queue."""
        ts = time.time() if now is None else now
        report = FlushReport()
        by_sink: dict[str, list] = {}
        for item in self.outbox.pending():
            by_sink.setdefault(item.sink, []).append(item)
        for sink_name, items in by_sink.items():
            sink = self.sinks.get(sink_name)
            if sink is None:
                report.pending += len(items)
                self.log.warning(
                    f"{len(items)} alert(s) wait for sink '{sink_name}', which is not configured any more; "
                    "they are kept and sent once it is configured again"
                )
                continue
            if items[0].next_attempt > ts:  # backing off: keep order, try again on a later tick
                report.pending += len(items)
                continue
            for index, item in enumerate(items):
                try:
                    sink.send([item.alert])
                except SinkError as exc:
                    rest = items[index:]
                    attempts = item.attempts + 1
                    delay = self.backoff.delay(attempts)
                    message = mask_secrets(str(exc))
                    self.outbox.failed([i.id for i in rest], message, ts + delay)
                    report.failed += 1
                    report.pending += len(rest)
                    report.errors.append(message)
                    self.log.warning(
                        f"alert sink '{sink_name}' failed (attempt {attempts}): {message}; "
                        f"{len(rest)} alert(s) kept, retry in {delay:.0f}s"
                    )
                    break
                self.outbox.delivered([item.id])
                report.sent += 1
        return report
