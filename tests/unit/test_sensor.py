"""regression_sensor against a real temporary Dagster instance, with history seeded as runless events and
alerts delivered over HTTP to a loopback receiver (the generic webhook sink)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from regression_pipelines.alerts.receiver import WebhookReceiver
from regression_pipelines.kit.factory import area_asset
from regression_pipelines.perf_check import PERF_CHECK_NAME, perf_check_spec
from regression_pipelines.results import Invariant, Metric, MetricKind, ScenarioResult, to_metadata
from regression_pipelines.sensors import (
    ALERTING_RESOURCE_KEY,
    load_cursor,
    regression_run_failure_sensor,
    regression_run_success_sensor,
    regression_sensor,
)
from resources.alerting import AlertingResource
from tests.areas import materialize_area, toy_area

AREA = "toy_area"
KEY = dg.AssetKey(AREA)
CHECK_KEY = dg.AssetCheckKey(KEY, PERF_CHECK_NAME)


def _toy(p99_ms: float = 10.0, invariants: tuple[str, ...] = (), policies: dict | None = None):  # noqa: ANN202
    return toy_area(lambda: ScenarioResult(AREA, metrics=[Metric("p99_ms", p99_ms, "ms")]), AREA, invariants, policies)


def _defs(alerting: AlertingResource, policies: dict | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[area_asset(_toy(policies=policies)), dg.AssetSpec("not_an_area", group_name="reports")],
        sensors=[regression_sensor],
        resources={ALERTING_RESOURCE_KEY: alerting},
    )


class Harness:
    """One instance, one outbox file, one receiver; `tick()` is a sensor evaluation as the daemon does it."""

    def __init__(self, instance: dg.DagsterInstance, receiver: WebhookReceiver, outbox: Path) -> None:
        self.instance = instance
        self.receiver = receiver
        self.outbox = outbox
        self.cursor: str | None = None
        self.policies: dict | None = None
        self.rng = random.Random(3)

    def alerting(self, url: str | None = None) -> AlertingResource:
        return AlertingResource(
            alertmanager_url="", webhook_url=url or self.receiver.url, outbox_path=str(self.outbox), timeout_s=1
        )

    def record(self, latency: float, stale_ok: bool = True, extra: tuple[Metric, ...] = ()) -> None:
        result = ScenarioResult(
            area=AREA,
            metrics=[
                Metric("p99_ms", latency * (1 + self.rng.gauss(0, 0.01)), "ms", "lower_is_better"),
                Metric("ops_per_s", 1000 * (1 + self.rng.gauss(0, 0.01)), "ops/s", "higher_is_better"),
                *extra,
            ],
            invariants=[Invariant("no_stale_reads", stale_ok, "0 stale reads" if stale_ok else "12 stale reads")],
        )
        self.instance.report_runless_asset_event(dg.AssetMaterialization(KEY, metadata=to_metadata(result)))

    def tick(self, url: str | None = None) -> dg.SensorResult:
        alerting = self.alerting(url)
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            definitions=_defs(alerting, self.policies),
            resources={ALERTING_RESOURCE_KEY: alerting},
        )
        result = regression_sensor(context)
        self.cursor = result.cursor
        return result

    def checks(self) -> list[dg.AssetCheckEvaluation]:
        history = self.instance.event_log_storage.get_asset_check_execution_history(CHECK_KEY, limit=100)
        return [r.evaluation for r in reversed(history) if r.evaluation is not None]

    def alerts(self, status: str | None = None) -> list[dict]:
        return [b for b in self.receiver.bodies if status is None or b["status"] == status]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with dg.instance_for_test() as instance, WebhookReceiver() as receiver:
        yield Harness(instance, receiver, tmp_path / "outbox.sqlite")


def _baseline(h: Harness, runs: int = 12) -> None:
    for _ in range(runs):
        h.record(10.0)


def test_clean_history_raises_nothing(harness: Harness) -> None:
    _baseline(harness)
    harness.tick()
    for _ in range(5):
        harness.record(10.0)
        harness.tick()
    assert harness.alerts() == []
    checks = harness.checks()
    assert len(checks) == 6 and all(c.passed for c in checks)


def test_first_tick_judges_only_the_newest_event(harness: Harness) -> None:
    _baseline(harness)
    harness.tick()
    assert len(harness.checks()) == 1
    assert load_cursor(harness.cursor)[AREA] > 0


def test_step_alerts_once_then_resolves_and_restart_does_not_realert(harness: Harness) -> None:
    _baseline(harness)
    harness.tick()
    harness.record(14.0)
    harness.record(14.0)
    harness.tick()

    new_checks = harness.checks()[1:]
    failed = [c for c in new_checks if not c.passed]
    assert len(new_checks) == 2 and len(failed) == 1  # the first bad run alone is an unconfirmed outlier
    meta = {k: getattr(v, "value", v) for k, v in failed[0].metadata.items()}
    assert meta["metric"] == "p99_ms"
    assert 9.5 < meta["baseline"] < 10.5 and meta["change_pct"] > 30
    assert meta["first_bad_run"].startswith("event ")  # runless seed events have no run id
    assert failed[0].severity in (dg.AssetCheckSeverity.WARN, dg.AssetCheckSeverity.ERROR)
    [alert] = harness.alerts()
    assert alert["status"] == "firing"
    expected = {"alertname": "PerformanceRegression", "area": AREA, "metric": "p99_ms"}
    assert expected.items() <= alert["labels"].items()
    assert float(alert["annotations"]["change_pct"]) > 30 and alert["annotations"]["baseline"]

    # Restart: a fresh sensor evaluation (new dispatcher, same saved cursor and outbox) sees nothing new...
    saved = harness.cursor
    harness.tick()
    assert harness.cursor == saved and len(harness.alerts()) == 1
    # ...and a third bad run keeps the one alert firing without paging again.
    harness.record(14.0)
    harness.tick()
    assert len(harness.alerts()) == 1

    for _ in range(4):
        harness.record(10.0)
    harness.tick()
    resolved = harness.alerts("resolved")
    assert len(resolved) == 1 and resolved[0]["labels"]["metric"] == "p99_ms"
    assert harness.checks()[-1].passed


def test_volume_metric_never_alerts_and_retires_the_alert_it_raised_before_it_had_a_kind(harness: Harness) -> None:
    def writes(value: float, kind: MetricKind = MetricKind.PERFORMANCE) -> tuple[Metric, ...]:
        return (Metric("writes", value, "ops", "higher_is_better", kind),)

    for _ in range(12):
        harness.record(10.0, extra=writes(300))
    harness.tick()
    harness.record(10.0, extra=writes(150))
    harness.record(10.0, extra=writes(150))
    harness.tick()
    [alert] = harness.alerts()  # judged as performance, half the work looked like a regression
    assert alert["labels"]["metric"] == "writes"

    harness.record(10.0, extra=writes(150, MetricKind.VOLUME))
    harness.tick()
    assert [(a["status"], a["labels"]["metric"]) for a in harness.alerts()] == [
        ("firing", "writes"),
        ("resolved", "writes"),
    ]
    harness.record(10.0, extra=writes(100, MetricKind.VOLUME))
    harness.tick()
    assert len(harness.alerts()) == 2  # no new alert, no second resolve
    assert harness.checks()[-1].passed


def test_replaying_a_tick_with_an_old_cursor_does_not_realert(harness: Harness) -> None:
    """A tick that alerted but died before the daemon saved its cursor is repeated: no second page."""
    _baseline(harness)
    harness.tick()
    before = harness.cursor
    harness.record(14.0)
    harness.record(14.0)
    harness.tick()
    harness.cursor = before
    harness.tick()
    assert len(harness.alerts("firing")) == 1


def test_sink_down_keeps_alert_until_it_is_back(harness: Harness, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    _baseline(harness)
    harness.tick(dead)
    harness.record(14.0)
    harness.record(14.0)
    result = harness.tick(dead)  # must not raise
    assert "pending 1" in result.skip_reason.skip_message
    harness.tick()  # the sink is reachable again (still backing off: not yet retried)
    assert harness.alerts() == []
    from regression_pipelines.alerts import Outbox

    outbox = Outbox(harness.outbox)
    [pending] = outbox.pending()
    with outbox._connect() as conn:  # let the backoff elapse
        conn.execute("UPDATE pending SET next_attempt = 0")
    harness.tick()
    assert [a["status"] for a in harness.alerts()] == ["firing"]


def test_failed_invariant_alerts_and_resolves(harness: Harness) -> None:
    _baseline(harness)
    harness.tick()
    harness.record(10.0, stale_ok=False)
    harness.tick()
    [alert] = harness.alerts()
    assert alert["labels"]["alertname"] == "InvariantFailed" and alert["labels"]["invariant"] == "no_stale_reads"
    assert "12 stale reads" in alert["annotations"]["description"]
    harness.record(10.0)
    harness.tick()
    assert [a["status"] for a in harness.alerts()] == ["firing", "resolved"]


def test_in_run_check_is_not_recorded_twice(harness: Harness, tmp_path: Path) -> None:
    """An area materialized in a run gets its verdict from the in-run check; the sensor only alerts."""
    _baseline(harness)
    harness.tick()
    outcome = materialize_area(_toy(10.0), tmp_path, instance=harness.instance)
    assert outcome.success
    in_run = [c for c in harness.checks() if c.target_materialization_data.run_id == outcome.run_id]
    assert len(in_run) == 1 and in_run[0].passed
    harness.tick()
    assert len([c for c in harness.checks() if c.target_materialization_data.run_id == outcome.run_id]) == 1


def test_run_failure_alerts_and_next_success_resolves(harness: Harness) -> None:
    @dg.op
    def boom() -> None:
        raise RuntimeError("password=hunter2 rejected by db")

    @dg.op
    def fine() -> None:
        pass

    @dg.job(name="full_regression")
    def failing() -> None:
        boom()

    @dg.job(name="full_regression")
    def passing() -> None:
        fine()

    run = failing.execute_in_process(instance=harness.instance, raise_on_error=False)
    failure = [e for e in run.all_events if e.event_type_value == "PIPELINE_FAILURE"][0]
    alerting = harness.alerting()
    context = dg.build_run_status_sensor_context(
        sensor_name="regression_run_failure_sensor",
        dagster_event=failure,
        dagster_instance=harness.instance,
        dagster_run=run.dagster_run,
        resources={ALERTING_RESOURCE_KEY: alerting},
    ).for_run_failure()
    regression_run_failure_sensor(context)
    [alert] = harness.alerts()
    assert alert["labels"] == {"alertname": "RegressionRunFailed", "job": "full_regression", "severity": "high"}
    assert run.run_id in alert["generatorURL"]
    assert "hunter2" not in str(alert)

    ok = passing.execute_in_process(instance=harness.instance)
    success = [e for e in ok.all_events if e.event_type_value == "PIPELINE_SUCCESS"][0]
    context = dg.build_run_status_sensor_context(
        sensor_name="regression_run_success_sensor",
        dagster_event=success,
        dagster_instance=harness.instance,
        dagster_run=ok.dagster_run,
        resources={ALERTING_RESOURCE_KEY: alerting},
    )
    regression_run_success_sensor(context)
    assert [a["status"] for a in harness.alerts()] == ["firing", "resolved"]


def test_in_run_check_fails_on_a_step_and_the_sensor_alerts_once(harness: Harness, tmp_path: Path) -> None:
    """Failing twin of the in-run check: the run's own verdict fails, the sensor pages once, no duplicate."""
    _baseline(harness)
    harness.tick()
    runs = [materialize_area(_toy(14.0), tmp_path, instance=harness.instance) for _ in range(2)]
    harness.tick()
    by_run = {r.run_id: [c for c in harness.checks() if c.target_materialization_data.run_id == r.run_id] for r in runs}
    assert [len(checks) for checks in by_run.values()] == [1, 1]
    assert by_run[runs[1].run_id][0].passed is False
    [alert] = harness.alerts()
    assert alert["labels"]["metric"] == "p99_ms" and runs[1].run_id in alert["generatorURL"]


def test_declared_slo_alerts_on_the_newest_run_alone(harness: Harness) -> None:
    """Policies declared on the check reach the sensor: a static bound breaks with little history."""
    harness.policies = {"p99_ms": {"upper_bound": 12.0}}
    for _ in range(3):
        harness.record(10.0)
    harness.tick()
    harness.record(13.0)
    harness.tick()
    [alert] = harness.alerts()
    assert alert["annotations"]["status"] == "slo_breach" and alert["labels"]["metric"] == "p99_ms"
    assert not harness.checks()[-1].passed


def test_unknown_policy_field_is_named() -> None:
    with pytest.raises(ValueError, match="upper_bund"):
        perf_check_spec(KEY, {"p99_ms": {"upper_bund": 1.0}})


def test_invariant_the_scenario_never_evaluated_alerts(harness: Harness, tmp_path: Path) -> None:
    """Such a failure exists only as a check result of the run (not in metadata); it must page too."""

    def produce() -> ScenarioResult:
        result = ScenarioResult(AREA, metrics=[Metric("p99_ms", 10.0, "ms")])
        result.invariants.append(Invariant("no_stale_reads", True, "0 stale reads"))
        return result

    _baseline(harness)
    harness.tick()
    materialize_area(toy_area(produce, AREA, ("no_stale_reads", "ttl")), tmp_path, instance=harness.instance)
    harness.tick()
    [alert] = harness.alerts()
    assert alert["labels"]["alertname"] == "InvariantFailed" and alert["labels"]["invariant"] == "ttl"
    assert "did not evaluate" in alert["annotations"]["description"]


def test_a_matrix_variants_run_never_alerts(harness: Harness) -> None:
    """`regress matrix` records an old version's known failures on purpose; its grid is the verdict."""
    from regression_pipelines.matrix.run import MATRIX_TAG, VARIANT_TAG

    _baseline(harness)
    harness.tick()
    broken = ScenarioResult(AREA, [Metric("p99_ms", 99.0, "ms")], [Invariant("no_stale_reads", False, "12 stale")])
    area = toy_area(lambda: broken, AREA, ("no_stale_reads",))
    tags = {MATRIX_TAG: "m1", VARIANT_TAG: "pkg==1"}
    assert dg.materialize([area_asset(area)], instance=harness.instance, tags=tags).success
    harness.tick()
    assert harness.alerts() == []
    harness.record(10.0, stale_ok=False)  # the next ordinary run is judged as before
    harness.tick()
    assert [a["labels"]["alertname"] for a in harness.alerts()] == ["InvariantFailed"]
