"""End to end through a real Alertmanager started from the lab's own config: the sensor's alert reaches
Alertmanager, Alertmanager notifies the lab webhook receiver, and recovery resolves it there too.

Runs on a port-shifted private lab (REGRESS_LAB_PORT_OFFSET=3000, REGRESS_LAB_DIR=/tmp/lab-alerts unless set)
so it never disturbs a lab someone else is using; reuses that lab's Alertmanager if it is already up.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from regression_pipelines.alerts.receiver import WebhookReceiver
from regression_pipelines.lab import procs, services, state
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.results import Metric, ScenarioResult, to_metadata
from regression_pipelines.sensors import ALERTING_RESOURCE_KEY, regression_sensor
from resources.alerting import AlertingResource

pytestmark = pytest.mark.lab

AREA = "am_area"


@pytest.fixture(scope="module")
def lab_settings() -> Iterator[LabSettings]:
    mp = pytest.MonkeyPatch()
    if "REGRESS_LAB_PORT_OFFSET" not in __import__("os").environ:
        mp.setenv("REGRESS_LAB_PORT_OFFSET", "3000")
        mp.setenv("REGRESS_LAB_DIR", "/tmp/lab-alerts")
    yield LabSettings.from_env()
    mp.undo()


@pytest.fixture(scope="module")
def alertmanager(lab_settings: LabSettings) -> Iterator[str]:
    """The lab's Alertmanager (rendered from deploy/local/alertmanager.yml.tmpl), started if not running."""
    pid = None
    service = services.get("alertmanager")
    if not service.ready(lab_settings)[0]:
        try:
            pid = service.start(lab_settings, "alertmanager")
        except Exception as exc:  # no binary on this machine: say so rather than fail obscurely
            pytest.skip(f"cannot start the lab Alertmanager: {exc}")
        deadline = time.monotonic() + 30
        while not service.ready(lab_settings)[0]:
            if time.monotonic() > deadline:
                procs.stop(pid)
                pytest.fail(f"Alertmanager did not become ready; see {lab_settings.lab_dir}/alertmanager")
            time.sleep(0.2)
    yield f"http://127.0.0.1:{lab_settings.alertmanager_port}"
    if pid is not None:
        procs.stop(pid)
        state.forget_service(lab_settings, "alertmanager")


@pytest.fixture
def lab_receiver(lab_settings: LabSettings) -> Iterator[WebhookReceiver]:
    """Listens where the lab's Alertmanager sends notifications (alertmanager_webhook_url)."""
    from urllib.parse import urlsplit

    url = urlsplit(lab_settings.alertmanager_webhook_url)
    with WebhookReceiver(host=url.hostname or "127.0.0.1", port=url.port or 0) as receiver:
        yield receiver


def _notified(bodies: list, status: str, metric: str) -> bool:
    return any(
        alert["status"] == status and alert["labels"].get("metric") == metric and alert["labels"]["area"] == AREA
        for body in bodies
        for alert in body.get("alerts", [])
    )


def test_regression_reaches_alertmanager_and_its_webhook(
    alertmanager: str, lab_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    metric = f"p99_ms_{random.randrange(10**6)}"  # unique, so a reused Alertmanager's old alerts do not match
    alerting = AlertingResource(alertmanager_url=alertmanager, outbox_path=str(tmp_path / "outbox.sqlite"))
    defs = dg.Definitions(
        assets=[dg.AssetSpec(AREA, group_name="areas")],
        resources={ALERTING_RESOURCE_KEY: alerting},
    )
    rng = random.Random(5)
    with dg.instance_for_test() as instance:
        cursor: str | None = None

        def record(value: float) -> None:
            result = ScenarioResult(AREA, metrics=[Metric(metric, value * (1 + rng.gauss(0, 0.01)), "ms")])
            instance.report_runless_asset_event(dg.AssetMaterialization(AREA, metadata=to_metadata(result)))

        def tick() -> dg.SensorResult:
            nonlocal cursor
            context = dg.build_sensor_context(
                instance=instance, cursor=cursor, definitions=defs, resources={ALERTING_RESOURCE_KEY: alerting}
            )
            result = regression_sensor(context)
            cursor = result.cursor
            return result

        for _ in range(12):
            record(10.0)
        tick()
        record(15.0)
        record(15.0)
        assert "alerts sent 1" in tick().skip_reason.skip_message

        bodies = lab_receiver.wait_for(lambda b: _notified(b, "firing", metric))
        [alert] = [a for body in bodies for a in body["alerts"] if a["labels"].get("metric") == metric]
        assert alert["labels"]["alertname"] == "PerformanceRegression"
        assert alert["labels"]["severity"] in ("low", "medium", "high", "critical")
        assert float(alert["annotations"]["change_pct"]) > 30
        assert alert["annotations"]["baseline"] and alert["annotations"]["first_bad_run"]
        assert alert["generatorURL"].startswith("http://127.0.0.1:3000/assets/")

        for _ in range(4):
            record(10.0)
        tick()
        lab_receiver.wait_for(lambda b: _notified(b, "resolved", metric))
