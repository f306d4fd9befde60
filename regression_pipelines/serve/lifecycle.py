"""Start, stop and check the topology; every process is recorded by PID (with its kernel start time) in
<serve_dir>/state.json and only ever those are signalled, each with the process group it leads (run workers
the code server launched).

`start` keeps what runs and answers and starts only what is missing, so `stop daemon` then `start` restarts
just the daemon. The storage URL travels in the processes' environment; the state file never holds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from regression_pipelines.lab import procs
from regression_pipelines.lab.errors import LabError, PortConflictError
from regression_pipelines.lab.health import Probe, http_get, short
from regression_pipelines.lab.ports import port_in_use
from regression_pipelines.lab.settings import LAB_HOST
from regression_pipelines.serve.topology import (
    LOCATION_NAME,
    PG_URL_ENV,
    PROCESSES,
    ServeSettings,
    command,
    environment,
    write_files,
)

READY_TIMEOUT_S = 120.0


class ServeError(LabError):
    """The topology could not be started, checked or stopped; the message says what and where to look."""


# --- state file -----------------------------------------------------------------------------------------


def read_state(s: ServeSettings) -> dict[str, Any]:
    try:
        data = json.loads(s.state_file.read_text())
    except FileNotFoundError:
        data = {}
    data.setdefault("processes", {})
    return data


def _write_state(s: ServeSettings, data: dict[str, Any]) -> None:
    s.serve_dir.mkdir(parents=True, exist_ok=True)
    tmp = s.state_file.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(s.state_file)


def _alive(entry: dict[str, Any] | None) -> bool:
    return bool(entry) and procs.is_alive(entry.get("pid"), entry.get("start_time"))  # type: ignore[union-attr]


# --- storage --------------------------------------------------------------------------------------------


def resolve_storage(s: ServeSettings, out: Callable[[str], None] = print) -> tuple[str, str]:
    """(URL, where from): REGRESS_DAGSTER_PG_URL when set, else the lab's private `dagster_storage` server,
    started if it is not running."""
    given = os.environ.get(PG_URL_ENV, "").strip()
    if given:
        return given, PG_URL_ENV
    from regression_pipelines.lab import lifecycle
    from regression_pipelines.lab.services.dagster_storage import storage_url

    lifecycle.up(s.lab, names=["dagster_storage"], out=out)
    return storage_url(s.lab), f"lab dagster_storage on port {s.lab.dagster_storage_port}"


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def create_schema(s: ServeSettings, url: str) -> None:
    """Create Dagster's tables once, before the webserver and the daemon start together and race to."""
    import dagster as dg

    with _env({"DAGSTER_HOME": str(s.dagster_home), PG_URL_ENV: url}), dg.DagsterInstance.get():
        pass


# --- probes ---------------------------------------------------------------------------------------------


def graphql(s: ServeSettings, query: str, timeout: float = 10.0) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{s.webserver_url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = json.loads(response.read())
    if body.get("errors"):
        raise ServeError(f"GraphQL error: {body['errors'][0].get('message')}")
    return body["data"]


LOCATION_QUERY = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on RepositoryLocation { serverId }
    ... on PythonError { message } } } } } }"""
DAEMON_QUERY = "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"


def _code_server(s: ServeSettings) -> Probe:
    from dagster._grpc.client import DagsterGrpcClient

    try:
        DagsterGrpcClient(port=s.grpc_port, host=LAB_HOST).ping("regress serve")
        return True, f"serving on {LAB_HOST}:{s.grpc_port}"
    except Exception as exc:
        return False, short(exc)


def _webserver(s: ServeSettings) -> Probe:
    try:
        code, _ = http_get(f"{s.webserver_url}/server_info", timeout=2.0)
        if code != 200:
            return False, f"/server_info HTTP {code}"
        entries = graphql(s, LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
    except Exception as exc:
        return False, short(exc)
    entry = next((e for e in entries if e["name"] == LOCATION_NAME), None)
    if entry is None or entry["loadStatus"] != "LOADED":
        return False, f"code location {LOCATION_NAME} not loaded yet"
    loaded = entry["locationOrLoadError"] or {}
    if loaded.get("__typename") != "RepositoryLocation":
        return False, f"code location {LOCATION_NAME} failed to load: {short(Exception(loaded.get('message', '')))}"
    return True, f"{s.webserver_url} ({LOCATION_NAME} loaded)"


def _daemon(s: ServeSettings) -> Probe:
    try:
        statuses = graphql(s, DAEMON_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
    except Exception as exc:
        return False, short(exc)
    sick = [d["daemonType"] for d in statuses if d["required"] and not d["healthy"]]
    return (not sick), ("all daemons healthy" if not sick else f"not yet healthy: {', '.join(sick)}")


PROBES: dict[str, Callable[[ServeSettings], Probe]] = {
    "code_server": _code_server,
    "webserver": _webserver,
    "daemon": _daemon,
}


# --- start / stop / status ------------------------------------------------------------------------------


def _check_port(s: ServeSettings, process: str) -> None:
    claim = s.port_of(process)
    if claim and port_in_use(claim[0]):
        port, setting = claim
        raise PortConflictError(
            f"port {port} for the {process.replace('_', ' ')} is already in use by another process; "
            f"set {setting} or REGRESS_LAB_PORT_OFFSET (or stop what holds it)"
        )


def _spawn(s: ServeSettings, process: str, env: dict[str, str], state: dict[str, Any]) -> int:
    _check_port(s, process)
    pid = procs.spawn(command(s, process), s.log(process), env=env, cwd=s.serve_dir)
    port = s.port_of(process)
    state["processes"][process] = {
        "pid": pid,
        "start_time": procs.start_time(pid),
        "port": port[0] if port else None,
        "log": str(s.log(process)),
    }
    _write_state(s, state)
    return pid


def _wait(s: ServeSettings, process: str, pid: int, deadline: float) -> str:
    while True:
        ok, detail = PROBES[process](s)
        if ok:
            return detail
        if not procs.is_alive(pid):
            raise ServeError(f"the {process.replace('_', ' ')} exited ({detail}); see {s.log(process)}")
        if time.monotonic() > deadline:
            raise ServeError(f"the {process.replace('_', ' ')} is not ready ({detail}); see {s.log(process)}")
        time.sleep(0.3)


def start(s: ServeSettings, out: Callable[[str], None] = print) -> float:
    """Start what is missing (code server first, then webserver and daemon together); seconds taken."""
    t0 = time.monotonic()
    state = read_state(s)
    running = {p for p in PROCESSES if _alive(state["processes"].get(p))}
    missing = [p for p in PROCESSES if p not in running]
    if not missing:
        out(f"serve: already running ({s.webserver_url})")
        return 0.0
    for process in missing:
        _check_port(s, process)
    url, source = resolve_storage(s, out)
    write_files(s)
    env = environment(s, url)
    state["storage"] = source
    state["dagster_home"] = str(s.dagster_home)
    deadline = time.monotonic() + READY_TIMEOUT_S
    started: list[str] = []
    try:
        if "code_server" in missing:
            pid = _spawn(s, "code_server", env, state)
            started.append("code_server")
            create_schema(s, url)
            out(f"  code server  {_wait(s, 'code_server', pid, deadline)}")
        pids = {p: _spawn(s, p, env, state) for p in ("webserver", "daemon") if p in missing}
        started += list(pids)
        if "webserver" in pids:
            out(f"  webserver    {_wait(s, 'webserver', pids['webserver'], deadline)}")
        if "daemon" in pids:
            out(f"  daemon       {_wait(s, 'daemon', pids['daemon'], deadline)}")
    except BaseException:
        stop(s, started, out=lambda _line: None)
        raise
    elapsed = time.monotonic() - t0
    out(f"serve: up in {elapsed:.1f}s — UI {s.webserver_url}, storage: {source}, DAGSTER_HOME={s.dagster_home}")
    return elapsed


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _stop_group(entry: dict[str, Any], timeout: float = 20.0) -> None:
    """SIGTERM the process and the group it leads (it was started in a new session), then SIGKILL."""
    pid = entry["pid"]
    if _alive(entry):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    elif not _group_alive(pid):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs._reap(pid)
        if not procs.is_alive(pid) and not _group_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    procs.stop(pid, sig=signal.SIGKILL, timeout=5)


def stop(s: ServeSettings, processes: list[str] | None = None, out: Callable[[str], None] = print) -> None:
    """Stop the named processes (default: all), daemon first; only the PIDs the state file recorded."""
    names = processes or list(PROCESSES)
    unknown = [n for n in names if n not in PROCESSES]
    if unknown:
        raise ServeError(f"no serve process {', '.join(unknown)}; processes are {', '.join(PROCESSES)}")
    state = read_state(s)
    for process in reversed(PROCESSES):
        entry = state["processes"].get(process)
        if process not in names or entry is None:
            continue
        _stop_group(entry)
        del state["processes"][process]
        _write_state(s, state)
        out(f"  {process} stopped (pid {entry['pid']})")


def status_rows(s: ServeSettings) -> list[dict[str, Any]]:
    state = read_state(s)
    rows = []
    for process in PROCESSES:
        entry = state["processes"].get(process)
        port = s.port_of(process)
        row: dict[str, Any] = {
            "process": process,
            "port": port[0] if port else None,
            "pid": entry["pid"] if entry else None,
        }
        if not _alive(entry):
            row.update(healthy=False, detail="not running")
        else:
            ok, detail = PROBES[process](s)
            row.update(healthy=ok, detail=detail)
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'PROCESS':<12} {'PORT':>6} {'PID':>8}  {'HEALTH':<9} DETAIL"]
    for r in rows:
        health = "healthy" if r["healthy"] else "UNHEALTHY"
        lines.append(f"{r['process']:<12} {r['port'] or '-':>6} {r['pid'] or '-':>8}  {health:<9} {r['detail']}")
    return "\n".join(lines)
