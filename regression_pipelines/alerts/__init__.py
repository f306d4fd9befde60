"""Alert sinks (Alertmanager v2, JSON webhook, Slack-compatible) behind a durable outbox."""

from regression_pipelines.alerts.dispatch import AlertDispatcher, Backoff, FlushReport
from regression_pipelines.alerts.model import Alert
from regression_pipelines.alerts.outbox import Outbox
from regression_pipelines.alerts.sinks import AlertmanagerSink, AlertSink, SinkError, SlackSink, WebhookSink

__all__ = [
    "Alert",
    "AlertDispatcher",
    "AlertSink",
    "AlertmanagerSink",
    "Backoff",
    "FlushReport",
    "Outbox",
    "SinkError",
    "SlackSink",
    "WebhookSink",
]
