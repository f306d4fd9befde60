"""AlertingResource: lab defaults, secrets through EnvVar, config errors that name the field."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from regression_pipelines.errors import ResourceConfigError
from regression_pipelines.resources_config import lab_alerting
from resources.alerting import AlertingResource, default_outbox_path


def test_from_env_defaults_to_lab_alertmanager(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REGRESS_ALERTMANAGER_URL", "REGRESS_WEBHOOK_URL", "REGRESS_SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REGRESS_LAB_PORT_OFFSET", "3000")
    resource = lab_alerting()
    assert resource.alertmanager_url == "http://127.0.0.1:22093"
    assert [s.name for s in resource.sinks()] == ["alertmanager"]


def test_webhook_secrets_come_through_envvar(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "https://hooks.example.com/services/T0/B0/very-secret"
    monkeypatch.setenv("REGRESS_SLACK_WEBHOOK_URL", secret)
    monkeypatch.setenv("REGRESS_WEBHOOK_URL", "http://127.0.0.1:9/hook?token=abc")
    monkeypatch.setenv("REGRESS_ALERTMANAGER_URL", "")
    resource = AlertingResource.from_env()
    assert isinstance(resource.slack_webhook_url, dg.EnvVar)  # the UI shows the variable name only
    with dg.build_resources({"alerting": resource}) as resolved:
        sinks = resolved.alerting.sinks()
    assert [s.name for s in sinks] == ["webhook", "slack"]


def test_bad_url_names_field_and_hides_secret() -> None:
    resource = AlertingResource(slack_webhook_url="hooks.example.com/secret-token")
    with pytest.raises(ResourceConfigError) as info:
        resource.sinks()
    assert "slack_webhook_url" in str(info.value) and "secret-token" not in str(info.value)


def test_outbox_lives_under_dagster_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert Path(default_outbox_path()).is_relative_to(tmp_path)


def test_links() -> None:
    resource = AlertingResource(dagster_url="http://dagster:3000/")
    assert resource.run_url("abc") == "http://dagster:3000/runs/abc"
    assert resource.asset_url(dg.AssetKey(["a", "b c"])) == "http://dagster:3000/assets/a/b%20c"
