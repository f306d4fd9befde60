"""Where alerts go: Alertmanager's v2 API, a generic JSON webhook, a Slack-compatible webhook.

Sinks only deliver; retrying, backoff and remembering what is pending is the outbox's job. Every error names
the sink but never its URL's secret part (webhook URLs often embed a token).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from regression_pipelines.alerts.model import Alert, iso, utcnow
from regression_pipelines.errors import mask_secrets

USER_AGENT = "regression-pipelines-alerts/1"


class SinkError(RuntimeError):
    """A sink could not take an alert (down, refused, bad URL); the outbox retries later."""


class AlertSink(Protocol):
    name: str
    # True when the receiver forgets alerts unless they are re-sent (Alertmanager expires them at endsAt).
    needs_refresh: bool

    def send(self, alerts: Sequence[Alert]) -> None: ...


def safe_url(url: str) -> str:
    """Scheme://host:port only: enough to debug, never the token in a webhook path or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{':' + str(parts.port) if parts.port else ''}"


def post_json(sink: str, url: str, body: Any, timeout_s: float) -> None:
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json", "User-Agent": USER_AGENT}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode(errors="replace")
        raise SinkError(mask_secrets(f"{sink} at {safe_url(url)} answered HTTP {exc.code}: {detail}", url)) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SinkError(mask_secrets(f"{sink} at {safe_url(url)} unreachable: {reason}", url)) from None


@dataclass(frozen=True)
class AlertmanagerSink:
    """Prometheus Alertmanager `POST /api/v2/alerts`; resolve = same labels with endsAt in the past.

    A firing alert is sent with endsAt = now + `firing_ttl` so Alertmanager keeps it firing between re-sends
    (the dispatcher refreshes it well before that) but lets it lapse if this code location disappears.
    """

    url: str
    timeout_s: float = 5.0
    firing_ttl: timedelta = timedelta(hours=6)
    name: str = "alertmanager"
    needs_refresh: bool = True

    @property
    def endpoint(self) -> str:
        return self.url.rstrip("/") + "/api/v2/alerts"

    def payload(self, alerts: Sequence[Alert]) -> list[dict[str, Any]]:
        now = utcnow()
        body = []
        for alert in alerts:
            item = alert.to_json()
            item["endsAt"] = iso(alert.ends_at) if alert.ends_at else iso(now + self.firing_ttl)
            if not item["generatorURL"]:
                del item["generatorURL"]
            body.append(item)
        return body

    def send(self, alerts: Sequence[Alert]) -> None:
        post_json(self.name, self.endpoint, self.payload(alerts), self.timeout_s)


@dataclass(frozen=True)
class WebhookSink:
    """A generic JSON webhook: one POST per alert, Alertmanager-like fields plus status and identity."""

    url: str
    timeout_s: float = 5.0
    name: str = "webhook"
    needs_refresh: bool = False

    @staticmethod
    def payload(alert: Alert) -> dict[str, Any]:
        return {
            "source": "regression_pipelines",
            "status": alert.status,
            "identity": alert.identity,
            "title": alert.title(),
            **alert.to_json(),
        }

    def send(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            post_json(self.name, self.url, self.payload(alert), self.timeout_s)


@dataclass(frozen=True)
class SlackSink:
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat): `{"text": ...}`."""

    url: str
    timeout_s: float = 5.0
    name: str = "slack"
    needs_refresh: bool = False

    @staticmethod
    def text(alert: Alert) -> str:
        icon = ":white_check_mark:" if alert.resolved else ":rotating_light:"
        severity = alert.labels.get("severity", "")
        head = f"{icon} *[{alert.status.upper()}]* {alert.title()}" + (f" ({severity})" if severity else "")
        lines = [head]
        summary = alert.annotations.get("summary") or alert.annotations.get("description")
        if summary:
            lines.append(summary)
        if alert.generator_url:
            lines.append(f"<{alert.generator_url}|open in Dagster>")
        return "\n".join(lines)

    def send(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            post_json(self.name, self.url, {"text": self.text(alert)}, self.timeout_s)
