"""Alert sinks against a real loopback HTTP receiver; outbox durability, idempotent firing and backoff."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from regression_pipelines.alerts import (
    Alert,
    AlertDispatcher,
    AlertmanagerSink,
    Backoff,
    Outbox,
    SinkError,
    SlackSink,
    WebhookSink,
)
from regression_pipelines.alerts.receiver import WebhookReceiver

LABELS = {"alertname": "PerformanceRegression", "area": "cache", "metric": "p99_ms", "severity": "high"}


def _alert(**labels: str) -> Alert:
    return Alert(labels={**LABELS, **labels}, annotations={"summary": "p99_ms +40 %"}, generator_url="http://d/runs/1")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def receiver():
    with WebhookReceiver() as rx:
        yield rx


def test_identity_ignores_severity_and_order() -> None:
    assert _alert().identity == _alert(severity="critical").identity
    assert _alert().identity != _alert(metric="other").identity
    with pytest.raises(ValueError, match="alertname"):
        Alert(labels={"area": "x"})


def test_round_trip_json() -> None:
    alert = _alert().resolve()
    assert Alert.from_json(alert.to_json()) == alert


def test_alertmanager_payload_sets_ends_at(receiver: WebhookReceiver) -> None:
    sink = AlertmanagerSink(url=receiver.url)
    firing, resolved = _alert(), _alert().resolve()
    body = sink.payload([firing, resolved])
    assert body[0]["endsAt"] > body[0]["startsAt"]  # future expiry keeps it firing between refreshes
    assert body[1]["endsAt"] == resolved.to_json()["endsAt"]
    sink.send([firing])
    assert receiver.bodies[0][0]["labels"]["metric"] == "p99_ms"


def test_webhook_and_slack_payloads(receiver: WebhookReceiver) -> None:
    WebhookSink(url=receiver.url + "/hook").send([_alert()])
    SlackSink(url=receiver.url + "/slack").send([_alert().resolve()])
    generic, slack = receiver.bodies
    assert generic["status"] == "firing" and generic["labels"]["area"] == "cache"
    assert set(slack) == {"text"} and "RESOLVED" in slack["text"] and "http://d/runs/1" in slack["text"]


def test_sink_error_hides_token() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/hooks/T000/B000/sekrit-token"
    with pytest.raises(SinkError) as info:
        SlackSink(url=url, timeout_s=1).send([_alert()])
    assert "sekrit-token" not in str(info.value) and "slack" in str(info.value)


def test_fire_is_idempotent_and_survives_restart(tmp_path: Path, receiver: WebhookReceiver) -> None:
    path = tmp_path / "outbox.sqlite"
    sinks = [WebhookSink(url=receiver.url)]
    first = AlertDispatcher(Outbox(path), sinks)
    assert first.fire(_alert(), now=100)
    assert first.flush(now=100).sent == 1
    restarted = AlertDispatcher(Outbox(path), sinks)  # a new process reading the same file
    assert not restarted.fire(_alert(), now=200)
    assert restarted.flush(now=200).sent == 0
    assert restarted.resolve(LABELS, now=300)
    assert not restarted.resolve(LABELS, now=301)
    restarted.flush(now=300)
    assert [b["status"] for b in receiver.bodies] == ["firing", "resolved"]


def test_severity_change_retires_old_label_set_in_alertmanager(tmp_path: Path, receiver: WebhookReceiver) -> None:
    dispatcher = AlertDispatcher(Outbox(tmp_path / "o.sqlite"), [AlertmanagerSink(url=receiver.url)])
    dispatcher.fire(_alert(severity="medium"), now=1)
    assert dispatcher.fire(_alert(severity="critical"), now=2)
    dispatcher.flush(now=2)
    sent = [(b[0]["labels"]["severity"], b[0]["endsAt"] is not None) for b in receiver.bodies]
    assert [s for s, _ in sent] == ["medium", "medium", "critical"]
    assert len(dispatcher.firing()) == 1


def test_sink_down_keeps_alert_and_backs_off(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    port = _closed_port()
    dispatcher = AlertDispatcher(
        Outbox(path),
        [WebhookSink(url=f"http://127.0.0.1:{port}/x", timeout_s=1)],
        backoff=Backoff(base_s=30, max_s=100),
    )
    dispatcher.fire(_alert(), now=0)
    report = dispatcher.flush(now=0)
    assert (report.sent, report.failed, report.pending) == (0, 1, 1)
    assert "unreachable" in report.errors[0]
    assert dispatcher.flush(now=10).failed == 0  # backing off: not retried before 30 s
    assert dispatcher.flush(now=31).failed == 1
    [item] = Outbox(path).pending()
    assert item.attempts == 2 and item.next_attempt == 31 + 60
    # The sink comes back (same name, now reachable) after a restart: the alert is delivered.
    with WebhookReceiver() as rx:
        back = AlertDispatcher(Outbox(path), [WebhookSink(url=rx.url)])
        assert back.flush(now=1000).sent == 1
        assert rx.bodies[0]["labels"]["metric"] == "p99_ms"
    assert Outbox(path).pending() == []


def test_http_error_is_retried(tmp_path: Path, receiver: WebhookReceiver) -> None:
    receiver.status = 503
    dispatcher = AlertDispatcher(Outbox(tmp_path / "o.sqlite"), [AlertmanagerSink(url=receiver.url)])
    dispatcher.fire(_alert(), now=0)
    assert "HTTP 503" in dispatcher.flush(now=0).errors[0]
    receiver.status = 200
    assert dispatcher.flush(now=1000).sent == 1


def test_unconfigured_sink_keeps_its_queue(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    AlertDispatcher(Outbox(path), [SlackSink(url="http://127.0.0.1:1/x")]).fire(_alert(), now=0)
    report = AlertDispatcher(Outbox(path), []).flush(now=0)
    assert report.pending == 1 and len(Outbox(path).pending("slack")) == 1


def test_refresh_resends_only_to_alertmanager(tmp_path: Path, receiver: WebhookReceiver) -> None:
    sinks = [AlertmanagerSink(url=receiver.url), WebhookSink(url=receiver.url + "/hook")]
    dispatcher = AlertDispatcher(Outbox(tmp_path / "o.sqlite"), sinks, refresh_interval_s=60)
    dispatcher.fire(_alert(), now=0)
    assert dispatcher.refresh(now=30) == 0
    assert dispatcher.refresh(now=61) == 1
    assert dispatcher.flush(now=61).sent == 3


def test_stale_evidence_cannot_flip_state(tmp_path: Path, receiver: WebhookReceiver) -> None:
    dispatcher = AlertDispatcher(Outbox(tmp_path / "o.sqlite"), [WebhookSink(url=receiver.url)])
    assert dispatcher.fire(_alert(), now=0, seq=10)
    assert not dispatcher.resolve(LABELS, now=1, seq=9)  # an older event replayed after a crash
    assert dispatcher.resolve(LABELS, now=2, seq=12)
    assert not dispatcher.fire(_alert(), now=3, seq=10)  # the firing event replayed: no second page
    assert dispatcher.fire(_alert(), now=4, seq=13)
    dispatcher.flush(now=4)
    assert [b["status"] for b in receiver.bodies] == ["firing", "resolved", "firing"]
