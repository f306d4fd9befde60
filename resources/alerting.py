"""Where alerts go: Alertmanager (the lab's by default), an optional JSON webhook and Slack-compatible webhook.

Webhook URLs usually embed a token, so they come from the environment through `EnvVar` (the UI shows the
variable's name, never its value) and errors name only the sink and host.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import dagster as dg
from pydantic import Field

from regression_pipelines.alerts import (
    AlertDispatcher,
    AlertmanagerSink,
    AlertSink,
    Backoff,
    Outbox,
    SlackSink,
    WebhookSink,
)
from regression_pipelines.errors import ResourceConfigError

ENV_ALERTMANAGER = "REGRESS_ALERTMANAGER_URL"
ENV_WEBHOOK = "REGRESS_WEBHOOK_URL"
ENV_SLACK = "REGRESS_SLACK_WEBHOOK_URL"
ENV_DAGSTER_URL = "REGRESS_DAGSTER_URL"
ENV_OUTBOX = "REGRESS_ALERT_OUTBOX"


def default_outbox_path() -> str:
    """Next to Dagster's own storage, so it lives (and is backed up) with the cursor it complements."""
    home = os.environ.get("DAGSTER_HOME") or str(Path.cwd() / ".dagster_home")
    return str(Path(home) / "regress" / "alert_outbox.sqlite")


class AlertingResource(dg.ConfigurableResource):
    """Alert sinks plus the durable outbox behind them; an empty URL switches that sink off."""

    alertmanager_url: str = Field(default="", description="Alertmanager base URL, e.g. http://127.0.0.1:19093")
    webhook_url: str = Field(default="", description="Generic JSON webhook (secret: set via EnvVar)")
    slack_webhook_url: str = Field(default="", description="Slack-compatible webhook (secret: set via EnvVar)")
    dagster_url: str = Field(default="http://127.0.0.1:3000", description="Base URL of the Dagster UI for links")
    outbox_path: str = Field(default="", description="SQLite outbox file; default $DAGSTER_HOME/regress/...")
    timeout_s: float = Field(default=5.0, description="HTTP timeout per delivery")
    backoff_base_s: float = Field(default=30.0, description="First retry delay of a failing sink")
    backoff_max_s: float = Field(default=1800.0, description="Longest retry delay of a failing sink")
    refresh_interval_s: float = Field(default=1800.0, description="Re-send firing alerts to Alertmanager this often")

    @classmethod
    def from_env(cls, default_alertmanager_url: str = "") -> AlertingResource:
        """`default_alertmanager_url` unless REGRESS_ALERTMANAGER_URL says otherwise (empty: that sink is off);
        webhooks only when their variables are set."""
        env = os.environ.get
        kwargs: dict[str, Any] = {
            "alertmanager_url": dg.EnvVar(ENV_ALERTMANAGER)
            if env(ENV_ALERTMANAGER) is not None
            else default_alertmanager_url,
            "dagster_url": env(ENV_DAGSTER_URL, "http://127.0.0.1:3000"),
            "outbox_path": env(ENV_OUTBOX, ""),
        }
        if env(ENV_WEBHOOK):
            kwargs["webhook_url"] = dg.EnvVar(ENV_WEBHOOK)
        if env(ENV_SLACK):
            kwargs["slack_webhook_url"] = dg.EnvVar(ENV_SLACK)
        return cls(**kwargs)

    def _checked(self, field: str, url: str) -> str:
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ResourceConfigError(
                "alerting",
                field,
                "is not an http(s) URL",
                "set it to e.g. http://127.0.0.1:19093 or leave it empty",
                url,
            )
        return url

    def sinks(self) -> list[AlertSink]:
        sinks: list[AlertSink] = []
        if self.alertmanager_url:
            url = self._checked("alertmanager_url", self.alertmanager_url)
            sinks.append(AlertmanagerSink(url=url, timeout_s=self.timeout_s))
        if self.webhook_url:
            sinks.append(WebhookSink(url=self._checked("webhook_url", self.webhook_url), timeout_s=self.timeout_s))
        if self.slack_webhook_url:
            url = self._checked("slack_webhook_url", self.slack_webhook_url)
            sinks.append(SlackSink(url=url, timeout_s=self.timeout_s))
        return sinks

    def dispatcher(self, log: Any = None) -> AlertDispatcher:
        return AlertDispatcher(
            Outbox(self.outbox_path or default_outbox_path()),
            self.sinks(),
            backoff=Backoff(self.backoff_base_s, self.backoff_max_s),
            refresh_interval_s=self.refresh_interval_s,
            log=log,
        )

    def run_url(self, run_id: str) -> str:
        return f"{self.dagster_url.rstrip('/')}/runs/{run_id}"

    def asset_url(self, asset_key: dg.AssetKey) -> str:
        return f"{self.dagster_url.rstrip('/')}/assets/" + "/".join(quote(p, safe="") for p in asset_key.path)
