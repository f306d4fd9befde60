"""`dagster dev` as a person runs it (webserver + daemon, this checkout's venv), its GraphQL API, and a schedule
switched on backdated so the daemon's scheduler finds a tick due at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from regression_pipelines.lab.settings import REPO_ROOT
from tests.e2e.helpers import BIN, free_port

LOCATION = "regression_pipelines.definitions"  # workspace.yaml's python_module location
REPOSITORY = "__repository__"


@contextmanager
def dagster_dev(home: Path, env: Mapping[str, str] | None = None, timeout_s: float = 180) -> Iterator[int]:
    """Serve the UI and run the daemon on `home`; yields the webserver's port; stops its whole process group.

    Started with default signal handling (`env --default-signal`): a `dagster dev` whose parent ignores SIGTERM
    ignores it too (LAB-NOTES).
    """
    port = free_port()
    argv = ["env", "--default-signal=INT,TERM", str(BIN / "dagster"), "dev", "-w", "workspace.yaml"]
    proc = subprocess.Popen(
        [*argv, "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(home), **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait("dagster dev to serve /server_info", lambda: _serves(port, proc), timeout_s)
        wait("the code location to load", lambda: _location_loaded(port), timeout_s)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _serves(port: int, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"dagster dev exited with {proc.returncode} before serving")
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2).read()
        return True
    except OSError:
        return False


LOCATION_STATUS = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def _location_loaded(port: int) -> bool:
    entries = graphql(port, LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
    entry = next((e for e in entries if e["name"] == LOCATION), None)
    if entry and entry["locationOrLoadError"] and entry["locationOrLoadError"]["__typename"] == "PythonError":
        raise RuntimeError(f"the code location failed to load: {entry['locationOrLoadError']['message']}")
    return bool(entry and entry["loadStatus"] == "LOADED")


def graphql(port: int, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": dict(variables or {})}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    assert not body.get("errors"), body["errors"]
    return body["data"]


def wait(what: str, probe: Callable[[], Any], timeout_s: float, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(every_s)


def switch_on_backdated(instance: Any, schedule_name: str, seconds_back: float) -> None:
    """Switch a schedule on as `dagster schedule start` does, with its start time `seconds_back` ago: the
    daemon's scheduler then finds the latest tick in that span due and launches it through its normal path
    (should_execute, run config, run coordinator)."""
    from dagster._core.scheduler.instigation import (
        InstigatorState,
        InstigatorStatus,
        InstigatorType,
        ScheduleInstigatorData,
    )
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    with WorkspaceProcessContext(instance, WorkspaceFileTarget([str(REPO_ROOT / "workspace.yaml")])) as context:
        location = context.create_request_context().get_code_location(LOCATION)
        (repository,) = location.get_repositories().values()
        schedule = repository.get_schedule(schedule_name)
        data = ScheduleInstigatorData(schedule.cron_schedule, start_timestamp=time.time() - seconds_back)
        state = InstigatorState(schedule.get_remote_origin(), InstigatorType.SCHEDULE, InstigatorStatus.RUNNING, data)
        instance.add_instigator_state(state)
