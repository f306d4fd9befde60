"""The production topology end to end (`regress serve`): code server, daemon and webserver on PostgreSQL.

A schedule tick of the real `hourly_non_destructive_regression` schedule launches `hourly_regression` through
the daemon; the run succeeds; the regression sensor (in the daemon) judges it and its failed-invariant alert
reaches the lab's Alertmanager (its API lists it, with this run's link) and the JSON webhook sink; a restarted
daemon sends nothing twice; a restarted code server is picked up by the webserver. (Alertmanager's own webhook
notification is not awaited here: an earlier test run's alert with the same labels may still be active there,
and Alertmanager does not notify again within repeat_interval; tests/integration/test_alertmanager.py covers
that hop with unique labels.)

The tick is forced through the instance, not the clock: the schedule is switched on with a start time one
hour back (what `dagster schedule start` records, backdated), so the scheduler finds this hour's :17 tick due
and launches it through its normal path (should_execute, run config, queued run coordinator, code server) as
soon as the daemon starts, instead of at the next :17. Every area's workload is tiny (REGRESS_SCHEDULE_RUN_CONFIG:
the test is about the topology, not the workloads) and cache_coherence carries a real fault
(fault=skip_invalidation) so an invariant fails and alerts.
Everything runs in a database of its own on the lab's `dagster_storage` server, dropped at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regression_pipelines.alerts.receiver import WebhookReceiver
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.serve.topology import LOCATION_NAME
from tests.e2e.helpers import BIN, free_port

pytestmark = pytest.mark.timeout(900)  # a hang guard: 68 s idle, 190 s at load 14

SCHEDULE = "hourly_non_destructive_regression"
TINY_FAULTY_WORKLOAD = """
ops:
  cache_coherence:
    config: {modes: [cache_aside], max_ops: 400, max_seconds: 1, settle_seconds: 0.2, fault: skip_invalidation}
  delta_cdf:
    config: {initial_rows: 10, rows_per_commit: 5, keys_per_change: 2, partitions: 1, serial_commits: 6,
             writers: 1, concurrent_commits: 0, replay_pairs: 2, split_triples: 2, read_repeats: 1, spark: "off"}
  etl_pipeline: {config: {jobs: 100}}
  ha_health: {config: {calibrate: false, latency_statements: 20}}
  citus_sharding:
    config: {accounts: 120, orders_per_account: 2, statements: 80, copy_rows: 300, router_queries: 30,
             multi_shard_queries: 6, join_queries: 3, calibrate: false}
execution:
  config: {in_process: {}}
"""


def _serve(env: dict[str, str], *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(BIN / "regress"), "serve", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"regress serve {' '.join(args)}: {proc.stdout}{proc.stderr}"[-3000:]
    return proc


def _graphql(port: int, query: str) -> dict[str, Any]:
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert not body.get("errors"), body["errors"]
    return body["data"]


def _wait(what: str, probe: Any, timeout_s: float, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(every_s)


@pytest.fixture
def storage_url(lab: LabSettings) -> Iterator[str]:
    """A fresh database on the lab's dagster_storage server (no ticks, cursors or runs from earlier runs)."""
    import psycopg

    db = f"dagster_e2e_{uuid.uuid4().hex[:8]}"
    admin = {"host": str(lab.lab_dir / "dagster_storage"), "port": lab.dagster_storage_port, "user": "postgres"}
    with psycopg.connect(dbname="postgres", autocommit=True, **admin) as conn:
        conn.execute(f'CREATE DATABASE "{db}" OWNER "{lab.dagster_storage_user}"')
    yield f"postgresql://{lab.dagster_storage_user}:{lab.dagster_storage_password}@127.0.0.1:{lab.dagster_storage_port}/{db}"
    with psycopg.connect(dbname="postgres", autocommit=True, **admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def topology(storage_url: str, webhook: WebhookReceiver, tmp_path: Path) -> Iterator[dict[str, str]]:
    run_config = tmp_path / "scheduled_run_config.yaml"
    run_config.write_text(TINY_FAULTY_WORKLOAD)
    env = {
        **os.environ,
        "REGRESS_SERVE_DIR": str(tmp_path / "serve"),
        "REGRESS_SERVE_WEBSERVER_PORT": str(free_port()),
        "REGRESS_SERVE_GRPC_PORT": str(free_port()),
        "REGRESS_DAGSTER_PG_URL": storage_url,
        "REGRESS_WEBHOOK_URL": webhook.url + "/alerts",
        "REGRESS_SCHEDULE_RUN_CONFIG": str(run_config),
        "REGRESS_DELTA_ROOT": str(tmp_path / "delta"),
    }
    env.pop("REGRESS_DAGSTER_URL", None)
    try:
        _serve(env)
        yield env
    finally:
        _serve(env, "stop")
        state = json.loads((tmp_path / "serve" / "state.json").read_text())
        assert state["processes"] == {}


def _instance(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The served instance, opened from this process (same DAGSTER_HOME and storage URL; undone after the test)."""
    import dagster as dg

    monkeypatch.setenv("DAGSTER_HOME", env["REGRESS_SERVE_DIR"] + "/dagster_home")
    monkeypatch.setenv("REGRESS_DAGSTER_PG_URL", env["REGRESS_DAGSTER_PG_URL"])
    return dg.DagsterInstance.get()


def _switch_on_backdated(instance: Any, workspace: Path) -> None:
    """Switch the schedule on as `dagster schedule start` does, with its start time an hour back."""
    from dagster._core.scheduler.instigation import (
        InstigatorState,
        InstigatorStatus,
        InstigatorType,
        ScheduleInstigatorData,
    )
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    with WorkspaceProcessContext(instance, WorkspaceFileTarget([str(workspace)])) as context:
        location = context.create_request_context().get_code_location(LOCATION_NAME)
        (repository,) = location.get_repositories().values()
        schedule = repository.get_schedule(SCHEDULE)
        data = ScheduleInstigatorData(schedule.cron_schedule, start_timestamp=time.time() - 3600)
        state = InstigatorState(schedule.get_remote_origin(), InstigatorType.SCHEDULE, InstigatorStatus.RUNNING, data)
        instance.add_instigator_state(state)


def _restart(env: dict[str, str], process: str) -> None:
    _serve(env, "stop", process)
    _serve(env, "start")


def _alertmanager(lab: LabSettings) -> list[dict[str, Any]]:
    """Active alerts in the lab's Alertmanager, as firing alerts."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{lab.alertmanager_port}/api/v2/alerts", timeout=5) as response:
        alerts = json.loads(response.read())
    return [{**a, "status": "firing"} for a in alerts if a["status"]["state"] == "active"]


def _firing(bodies: list[Any], run_id: str) -> list[dict[str, Any]]:
    """Firing alerts of this run's failed invariants, one entry per notification that carried one (Alertmanager
    posts `{"alerts": [...]}`, the JSON webhook sink one alert per POST)."""
    return [
        alert
        for body in bodies
        for alert in body.get("alerts", [body])
        if alert.get("status") == "firing" and run_id in alert.get("generatorURL", "")
    ]


SENSOR_TICKS = """{ sensorOrError(sensorSelector: {repositoryName: "__repository__",
  repositoryLocationName: "%s", sensorName: "regression_sensor"}) {
  ... on Sensor { sensorState { ticks(limit: 10) { status timestamp skipReason } } } } }"""
LOCATION = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on RepositoryLocation { serverId repositories { schedules { name } } } } }
} } }"""
RELOAD = """mutation { reloadRepositoryLocation(repositoryLocationName: "%s") {
  __typename ... on WorkspaceLocationEntry { loadStatus
    locationOrLoadError { __typename ... on RepositoryLocation { serverId } } } } }"""


def _location(port: int) -> dict[str, Any]:
    entries = _graphql(port, LOCATION)["workspaceOrError"]["locationEntries"]
    (entry,) = [e for e in entries if e["name"] == LOCATION_NAME]
    return entry


def test_schedule_run_sensor_alert_and_restarts_in_the_production_topology(
    lab: LabSettings, topology: dict[str, str], webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    port = int(topology["REGRESS_SERVE_WEBSERVER_PORT"])
    entry = _location(port)
    assert entry["loadStatus"] == "LOADED"
    location = entry["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation"
    assert SCHEDULE in {s["name"] for r in location["repositories"] for s in r["schedules"]}

    instance = _instance(topology, monkeypatch)
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    _switch_on_backdated(instance, Path(topology["REGRESS_SERVE_DIR"]) / "workspace.yaml")
    _restart(topology, "daemon")  # a fresh scheduler loop evaluates the schedule at once

    def scheduled_run() -> Any:
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/schedule_name": SCHEDULE}))
        return runs[0] if runs and runs[0].is_finished else None

    run = _wait("the scheduled run to finish", scheduled_run, 150)
    assert run.job_name == "hourly_regression"
    assert run.status == dg.DagsterRunStatus.SUCCESS, f"run {run.run_id} ended {run.status}"

    _wait("the alert at the JSON webhook", lambda: _firing(webhook.bodies, run.run_id), 90)
    in_alertmanager = _wait(
        "the alert in Alertmanager", lambda: _firing([{"alerts": _alertmanager(lab)}], run.run_id), 30
    )
    sent = _firing(webhook.bodies, run.run_id)
    assert {a["labels"]["area"] for a in sent + in_alertmanager} == {"cache_coherence"}

    restarted_at = time.time()
    _restart(topology, "daemon")

    server_id = _location(port)["locationOrLoadError"]["serverId"]
    _restart(topology, "code_server")
    reloaded = _graphql(port, RELOAD % LOCATION_NAME)["reloadRepositoryLocation"]
    assert reloaded["loadStatus"] == "LOADED"
    assert reloaded["locationOrLoadError"]["serverId"] not in (None, server_id)

    def sensor_tick_after_restart() -> Any:
        data = _graphql(port, SENSOR_TICKS % LOCATION_NAME)["sensorOrError"]["sensorState"]["ticks"]
        return [t for t in data if t["timestamp"] > restarted_at and t["status"] in ("SKIPPED", "SUCCESS")]

    (tick, *_) = _wait("a regression_sensor tick after the daemon restart", sensor_tick_after_restart, 90)
    assert "alerts sent 0" in (tick["skipReason"] or ""), tick
    time.sleep(1)  # Alertmanager's group_interval: anything re-sent would have arrived
    assert _firing(webhook.bodies, run.run_id) == sent, "the restarted daemon re-sent the alert"
    instance.dispose()  # on failure the fixture's DROP DATABASE ... WITH (FORCE) closes its connections
