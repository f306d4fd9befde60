"""`up`, `down` and `status` of the lab, for whatever services the registry holds: decide what to keep or
(re)start, start each service once its dependencies are ready (in parallel otherwise), wait until it is
really usable, and stop only what the lab itself started, dependents first."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from regression_pipelines.lab.binaries import check_binaries
from regression_pipelines.lab.errors import LabError
from regression_pipelines.lab.ports import claims, ensure_free, env_var
from regression_pipelines.lab.procs import describe_listener, is_alive, listener_pid, stop
from regression_pipelines.lab.service import LabService, Outside
from regression_pipelines.lab.services import all_services, dependents, owner_of, selected
from regression_pipelines.lab.services import get as get_service
from regression_pipelines.lab.settings import REPO_ROOT, LabSettings
from regression_pipelines.lab.state import forget_service, read_state, record_service, service_alive, state_path

POLL = 0.1
KEEP_GRACE = 3.0  # a running process gets this long to answer before `up` restarts it
OUTSIDE_GRACE = 5.0  # an outside server must answer this fast: it is supposed to be up already


@dataclass
class Timing:
    service: str
    action: str  # started | kept | reused | skipped
    seconds: float
    detail: str = ""


def _lab_entry(state: dict[str, Any], process: str) -> dict[str, Any] | None:
    entry = state.get(process)
    return entry if entry and entry.get("started_by_lab") else None


def _answers_within(s: LabSettings, svc: LabService, process: str, grace: float) -> bool:
    deadline = time.monotonic() + grace
    while not svc.probe(s, process)[0]:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def wait_ready(s: LabSettings, svc: LabService, pids: dict[str, int], timeout: float) -> str:
    """Poll `svc.ready` until it passes; fail fast if a process just started died. Returns its detail."""
    deadline = time.monotonic() + timeout
    while True:
        for process, pid in pids.items():  # first: a server that died must not pass on someone else's answer
            if not is_alive(pid):
                raise LabError(f"{process} (pid {pid}) exited during start-up; see the logs in {svc.folder(s)}")
        ok, detail = svc.ready(s)
        if ok:
            return detail
        if time.monotonic() >= deadline:
            raise LabError(f"{svc.name} not ready after {timeout:.0f}s ({detail}); see the logs in {svc.folder(s)}")
        time.sleep(POLL)


# --- up --------------------------------------------------------------------------------------------------


def processes_to_start(s: LabSettings, services: list[LabService]) -> set[str]:
    """Processes of these services that are not running and answering (the rest is kept); changes nothing."""
    state = read_state(s)["services"]
    wanted = [(svc, p) for svc in services if svc.outside(s) is None for p in svc.processes(s)]
    alive = [(svc, p) for svc, p in wanted if service_alive(_lab_entry(state, p))]
    with ThreadPoolExecutor(max_workers=max(1, len(alive))) as pool:
        answers = list(pool.map(lambda sp: _answers_within(s, sp[0], sp[1], KEEP_GRACE), alive))
    keep = {p for (_, p), ok in zip(alive, answers, strict=True) if ok}
    return {p for _, p in wanted} - keep


def _stop_strays(s: LabSettings, services: list[LabService], whole_lab: bool) -> None:
    """Stop lab-started processes the lab no longer runs: those of a service now used from outside and, on
    a whole-lab `up`, those nothing needs any more (e.g. the epmd of a broker that is now reused)."""
    state = read_state(s)["services"]
    runs = {p for svc in services if svc.outside(s) is None for p in svc.processes(s)}
    for svc in all_services() if whole_lab else services:
        for process in svc.processes(s):
            entry = _lab_entry(state, process)
            if process not in runs and entry and service_alive(entry):
                stop(entry["pid"], entry.get("start_time"), sig=svc.stop_signal, timeout=svc.stop_timeout)
                forget_service(s, process)


def _check_ports(s: LabSettings, to_start: set[str]) -> None:
    """Every port of a process about to start must be free, unless the lab's own processes hold it."""
    state = read_state(s)["services"]
    ours: set[int] = set()
    for entry in state.values():
        if entry.get("started_by_lab") and service_alive(entry):  # unhealthy: stopped before it restarts
            ours.update(int(p) for p in entry.get("ports", {}).values())
    ours.update(port for svc in all_services() for left in svc.leftovers(s) for port in left.ports)
    ensure_free([c for c in claims(s) if c.service in to_start and c.port not in ours])


def _use_outside(s: LabSettings, svc: LabService, outside: Outside) -> str:
    """Check the outside server answers and record it as reused (never as started by the lab)."""
    deadline = time.monotonic() + OUTSIDE_GRACE
    while not (probe := svc.ready(s))[0]:
        if time.monotonic() >= deadline:
            setting = env_var(outside.setting)
            raise LabError(
                f"{svc.name}: the outside server {outside.address} set by {setting} does not answer "
                f"({probe[1]}); start it, or unset {setting} so the lab starts its own"
            )
        time.sleep(0.2)
    record_service(
        s, svc.name, pid=None, ports={"port": outside.port}, started_by_lab=False, mode="reused",
        host=outside.host, setting=env_var(outside.setting),
    )  # fmt: skip
    return f"{probe[1]} at {outside.address} ({env_var(outside.setting)})"


def up(
    s: LabSettings, names: list[str] | None = None, out: Callable[[str], None] = print, timeout: float = 60.0
) -> list[Timing]:
    """Bring the named services (default: the whole lab) and what they need up, and wait until usable.

    Idempotent: a running service that answers is kept. Returns per-service timings.
    """
    t0 = time.monotonic()
    chosen = selected(s, names)
    skipped = {svc.name: reason for svc in chosen if svc.optional and not (reason := svc.available())[0]}
    services = [svc for svc in chosen if svc.name not in skipped]
    check_binaries(svc for svc in services if svc.outside(s) is None)
    _stop_strays(s, services, whole_lab=names is None)
    to_start = processes_to_start(s, services)
    _check_ports(s, to_start)
    s.lab_dir.mkdir(parents=True, exist_ok=True)
    state = read_state(s)["services"]
    for svc in services:  # alive but not answering: restart it
        for process in svc.processes(s):
            entry = _lab_entry(state, process)
            if process in to_start and entry and service_alive(entry):
                stop(entry["pid"], entry.get("start_time"), sig=svc.stop_signal, timeout=svc.stop_timeout)

    def elapsed() -> float:
        return time.monotonic() - t0

    futures: dict[str, Future[Timing]] = {}

    def bring_up(svc: LabService) -> Timing:
        for dep in svc.depends_on:
            if dep in futures and futures[dep].exception() is not None:
                raise LabError(f"{svc.name} not started: {dep} did not come up")
        if (outside := svc.outside(s)) is not None:
            return Timing(svc.name, "reused", elapsed(), _use_outside(s, svc, outside))
        pids = {p: svc.start(s, p) for p in svc.processes(s) if p in to_start}
        detail = wait_ready(s, svc, pids, timeout)
        return Timing(svc.name, "started" if pids else "kept", elapsed(), detail)

    with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
        for svc in services:  # dependencies first, so a dependency's future exists before its dependents run
            futures[svc.name] = pool.submit(bring_up, svc)
        timings, errors = [], []
        for future in futures.values():
            try:
                timings.append(future.result())
            except Exception as exc:
                errors.append(str(exc))
    if errors:
        raise LabError("lab up failed:\n  " + "\n  ".join(errors))
    timings += [Timing(name, "skipped", elapsed(), reason) for name, (_, reason) in skipped.items()]
    for t in sorted(timings, key=lambda t: t.seconds):
        out(f"  {t.service:<13} {t.action:<8} ready at {t.seconds:5.2f}s  {t.detail}")
    out(f"lab up in {elapsed():.2f}s ({s.lab_dir})")
    return timings


# --- down ------------------------------------------------------------------------------------------------


def _stop_waves(only: set[str] | None = None) -> list[list[LabService]]:
    """Services grouped so that each group's dependents are all in earlier groups (stopped first)."""
    level: dict[str, int] = {}
    for svc in reversed(all_services()):  # dependents come later in registry order: visit them first
        level[svc.name] = max((level[d.name] + 1 for d in dependents(svc.name)), default=0)
    waves = [
        [svc for svc in all_services() if level[svc.name] == n] for n in range(max(level.values(), default=-1) + 1)
    ]
    return [[svc for svc in wave if only is None or svc.name in only] for wave in waves]


def _owner_name(process: str, s: LabSettings) -> str | None:
    owner = owner_of(process, s)
    return owner.name if owner else None


def _stop_one(s: LabSettings, process: str, pid: int, started: int | None, sig: int, timeout: float) -> str | None:
    """Stop one process the lab started and forget it; returns an error message or None."""
    if stop(pid, started, sig=sig, timeout=timeout):
        forget_service(s, process)
        return None
    return f"{process} (pid {pid}) did not stop"


def with_dependents(names: list[str]) -> list[str]:
    """These services and every service that needs them, directly or not (stopped with them, first)."""
    chosen = {get_service(n).name for n in names}
    grown = True
    while grown:
        more = {d.name for n in chosen for d in dependents(n)} - chosen
        chosen |= more
        grown = bool(more)
    return [svc.name for svc in all_services() if svc.name in chosen]


def down(
    s: LabSettings, purge: bool = False, out: Callable[[str], None] = print, names: list[str] | None = None
) -> int:
    """Stop what the lab started (never a reused server or the machine's own); 0 if everything stopped.

    `names`: only these services and those that depend on them (`down patroni` also stops HAProxy).
    """
    if names and purge:
        raise LabError("--purge removes the whole lab folder: use it without naming services")
    t0 = time.monotonic()
    only = set(with_dependents(names)) if names else None
    if only is not None and len(only) > len(set(names or [])):
        out(f"stopping {', '.join(sorted(only - set(names or [])))} too: they depend on {', '.join(names or [])}")
    state = read_state(s)["services"]
    lab_started = {
        n: e
        for n, e in state.items()
        if e.get("started_by_lab") and e.get("pid") and (only is None or _owner_name(n, s) in only)
    }
    errors: list[str] = []
    for wave in _stop_waves(only):
        jobs = [
            (p, lab_started[p]["pid"], lab_started[p].get("start_time"), svc.stop_signal, svc.stop_timeout)
            for svc in wave
            for p in svc.processes(s)
            if p in lab_started
        ]
        with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
            errors += [e for e in pool.map(lambda job: _stop_one(s, *job), jobs) if e]
        for left in (left for svc in wave for left in svc.leftovers(s)):
            if not stop(left.pid, sig=left.stop_signal, timeout=15.0):
                errors.append(f"{left.what} (pid {left.pid}) did not stop")
    for name in [n for n in lab_started if owner_of(n, s) is None and only is None]:  # a service since removed
        entry = lab_started[name]
        if err := _stop_one(s, name, entry["pid"], entry.get("start_time"), signal.SIGTERM, 15.0):
            errors.append(err)
    if not errors and only is None:
        state_path(s).unlink(missing_ok=True)  # also forgets reused servers, which keep running
    for err in errors:
        out(f"error: {err}")
    out(f"stopped {len(lab_started) - len(errors)} lab process(es) in {time.monotonic() - t0:.2f}s")
    if purge:
        if errors:
            out("not purging: some lab processes are still running")
            return 1
        _purge(s)
        out(f"purged {s.lab_dir}")
    return 1 if errors else 0


# Folders areas keep their own scratch data in, under the lab (the Delta area's tables): purged with it.
AREA_SCRATCH_FOLDERS = ("delta",)


def _purge(s: LabSettings) -> None:
    """Remove the lab dir, but only if it holds nothing but lab data (guards a mistyped REGRESS_LAB_DIR)."""
    d = s.lab_dir.resolve()
    if not d.exists():
        return
    lab_entries = {svc.folder(s).name for svc in all_services()} | set(AREA_SCRATCH_FOLDERS)
    foreign = [p.name for p in d.iterdir() if p.name not in lab_entries and not p.name.startswith("state.")]
    if d in (REPO_ROOT, REPO_ROOT.parent) or d == d.parent or foreign:
        raise LabError(f"refusing to purge {d}: it holds non-lab files {foreign[:5]}")
    shutil.rmtree(d)


# --- status ----------------------------------------------------------------------------------------------


def _row(name: str, ports: dict[str, int], pid: int | None, ok: bool | None, detail: str, by: str) -> dict[str, Any]:
    """One status row; healthy is None for an optional service this machine cannot run."""
    return {"service": name, "ports": ports, "pid": pid, "healthy": ok, "detail": detail, "started_by": by}


def _status_jobs(s: LabSettings, svc: LabService, state: dict[str, Any]) -> list[Callable[[], dict[str, Any] | None]]:
    """One callable per status row of a service, so `status` can probe every row in parallel."""
    available, reason = svc.available()
    if not available:
        return [lambda: _row(svc.name, {}, None, None if svc.optional else False, reason, "-")]
    if (outside := svc.outside(s)) is not None:

        def reused() -> dict[str, Any]:
            ok, detail = svc.ready(s)
            where = f"outside server {outside.address}, set by {env_var(outside.setting)}"
            return _row(svc.name, {"port": outside.port}, None, ok, f"{detail} ({where})", "reused")

        return [reused]

    def process_row(process: str) -> dict[str, Any]:
        entry = state.get(process)
        if entry and service_alive(entry):
            ok, detail = svc.healthy(s, process)
            by = "lab" if entry.get("started_by_lab") else "other"
            return _row(process, entry.get("ports", {}), entry.get("pid"), ok, detail, by)
        return _not_ours_row(s, svc, process, entry)

    def summary_row() -> dict[str, Any] | None:
        summary = svc.summary(s)
        return None if summary is None else _row(svc.name, {}, None, summary[0], summary[1], "lab")

    jobs: list[Callable[[], dict[str, Any] | None]] = [lambda p=p: process_row(p) for p in svc.processes(s)]
    started = any((state.get(p) or {}).get("pid") for p in svc.processes(s))
    return jobs + ([summary_row] if started else [])


def _not_ours_row(s: LabSettings, svc: LabService, process: str, entry: dict[str, Any] | None) -> dict[str, Any]:
    """A process the lab does not run (never started, or gone): probe what actually listens on its ports.

    A server restarted by hand is "serving, not started by the lab"; a port some other program holds is named
    with that program, so nobody reads "process not running" while something answers there.
    """
    ports = {c.setting: c.port for c in svc.port_claims(s) if c.service == process}
    held = {port: who for port in ports.values() if (who := describe_listener(port))}
    if not held:
        return _row(process, {}, None, False, "process not running" if entry else "not started", "-")
    port, who = next(iter(held.items()))
    pid = listener_pid(port)
    ok, detail = svc.probe(s, process)
    if ok:
        return _row(process, ports, pid, True, f"serving, not started by the lab ({who}): {detail}", "other")
    holders = "; ".join(f"port {p} held by another process ({w})" for p, w in held.items())
    return _row(process, ports, pid, False, f"{holders}; it does not answer as {svc.name} ({detail})", "other")


def status_rows(s: LabSettings) -> list[dict[str, Any]]:
    """One row per lab process (plus service-wide rows such as the Patroni cluster): service, port(s),
    pid, healthy (None: optional and not installed here), detail, started_by (lab | reused | -)."""
    state = read_state(s)["services"]
    jobs = [job for svc in selected(s) for job in _status_jobs(s, svc, state)]
    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        return [row for row in pool.map(lambda job: job(), jobs) if row is not None]


def format_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'SERVICE':<15} {'PORT':<18} {'PID':>8}  {'HEALTH':<9} {'STARTED_BY':<10} DETAIL"
    lines = [head]
    for r in rows:
        ports = ",".join(str(p) for p in r["ports"].values()) or "-"
        health_txt = {True: "healthy", False: "UNHEALTHY", None: "skipped"}[r["healthy"]]
        pid = str(r["pid"]) if r["pid"] else "-"
        lines.append(f"{r['service']:<15} {ports:<18} {pid:>8}  {health_txt:<9} {r['started_by']:<10} {r['detail']}")
    return "\n".join(lines)


def healthy(rows: list[dict[str, Any]]) -> bool:
    """True unless a row is unhealthy (a skipped optional service does not count)."""
    return all(r["healthy"] is not False for r in rows)
