"""`up`, `down` and `status` of the whole lab: decide what to (re)start, start it in parallel, wait until
each service is really usable, and stop only what the lab itself started."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from regression_pipelines.lab import health, services
from regression_pipelines.lab.binaries import check_binaries
from regression_pipelines.lab.errors import LabError
from regression_pipelines.lab.patroni_members import postmaster_pid
from regression_pipelines.lab.ports import claims, ensure_free
from regression_pipelines.lab.procs import is_alive, stop
from regression_pipelines.lab.settings import REPO_ROOT, LabSettings
from regression_pipelines.lab.state import (
    forget_service,
    read_state,
    record_service,
    service_alive,
    state_path,
)

DEFAULT_RABBITMQ_PORT = 5672
POLL = 0.1


@dataclass
class Timing:
    service: str
    action: str  # started | kept | reused
    seconds: float
    detail: str = ""


def member_services(s: LabSettings) -> list[str]:
    return [f"patroni-{m}" for m in s.patroni_members]


def lab_services(s: LabSettings, rabbit_by_lab: bool) -> list[str]:
    names = ["postgres", "etcd", *member_services(s), "haproxy", "redis", "alertmanager"]
    return names + (["epmd", "rabbitmq"] if rabbit_by_lab else [])


def quick_probe(s: LabSettings, service: str) -> health.Probe:
    """Is a running lab service answering? (Cluster-wide readiness is checked later by `up`.)"""
    if service == "postgres":
        return health.postgres_ok(s)
    if service == "etcd":
        return health.etcd_ok(s)
    if service.startswith("patroni-"):
        idx = s.patroni_members.index(service.removeprefix("patroni-"))
        doc = health.patroni_member(s, idx)
        return doc is not None, f"{doc.get('role')} {doc.get('state')}" if doc else "REST API not answering"
    if service == "haproxy":
        return health.port_open(s.haproxy_stats_port)
    if service == "redis":
        return health.redis_ok(s)
    if service == "alertmanager":
        return health.alertmanager_ok(s)
    if service == "epmd":
        return health.port_open(s.rabbitmq_epmd_port)
    if service == "rabbitmq":
        return health.amqp_ok(s.rabbitmq_port, s.rabbitmq_user, s.rabbitmq_password)
    raise ValueError(service)


def _probe_with_grace(s: LabSettings, service: str, grace: float) -> bool:
    deadline = time.monotonic() + grace
    while True:
        if quick_probe(s, service)[0]:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def wait_for(
    what: str, probe: Callable[[], health.Probe], timeout: float, pid: int | None = None, log: str = ""
) -> str:
    """Poll `probe` until ok; fail fast if the process we started died. Returns the probe's detail."""
    deadline = time.monotonic() + timeout
    detail = ""
    while time.monotonic() < deadline:
        ok, detail = probe()
        if ok:
            return detail
        if pid is not None and not is_alive(pid):
            raise LabError(f"{what} (pid {pid}) exited during start-up; see {log}")
        time.sleep(POLL)
    raise LabError(f"{what} not ready after {timeout:.0f}s ({detail}); see {log}")


# --- up --------------------------------------------------------------------------------------------------


def _rabbit_by_lab(s: LabSettings, state: dict[str, Any]) -> bool:
    entry = state["services"].get("rabbitmq")
    if entry and entry.get("started_by_lab") and service_alive(entry):
        return True
    if s.rabbitmq_reuse_default:
        ok, _ = health.amqp_ok(DEFAULT_RABBITMQ_PORT, "guest", "guest")
        if ok:
            return False
    return True


def plan(s: LabSettings) -> tuple[bool, set[str], set[str]]:
    """(rabbitmq started by lab?, services to keep, services to start). Stops nothing, starts nothing."""
    state = read_state(s)
    rabbit_by_lab = _rabbit_by_lab(s, state)
    names = lab_services(s, rabbit_by_lab)
    alive = [n for n in names if (e := state["services"].get(n)) and e.get("started_by_lab") and service_alive(e)]
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        healthy = dict(zip(alive, pool.map(lambda n: _probe_with_grace(s, n, 3.0), alive), strict=True))
    keep = {n for n, ok in healthy.items() if ok}
    return rabbit_by_lab, keep, set(names) - keep


def _check_ports(s: LabSettings, to_start: set[str]) -> None:
    state = read_state(s)
    ours: set[int] = set()
    for entry in state["services"].values():
        if entry.get("started_by_lab") and service_alive(entry):  # unhealthy: we stop it before restarting
            ours.update(int(p) for p in entry.get("ports", {}).values())
    for i, member in enumerate(s.patroni_members):  # an orphaned postmaster of our own member
        if postmaster_pid(s, member):
            ours.add(s.patroni_pg_ports[i])
    ensure_free([c for c in claims(s) if c.service in to_start and c.port not in ours])


def up(s: LabSettings, out: Callable[[str], None] = print, timeout: float = 60.0) -> list[Timing]:
    """Bring every lab service up and wait until it is usable; idempotent. Returns per-service timings."""
    t0 = time.monotonic()
    rabbit_by_lab, keep, to_start = plan(s)
    check_binaries(["postgres", "patroni", "haproxy", "redis", "alertmanager", *(["rabbitmq"] * rabbit_by_lab)])
    _check_ports(s, to_start)
    s.lab_dir.mkdir(parents=True, exist_ok=True)
    state = read_state(s)
    for name in to_start:  # alive but unhealthy: restart it
        entry = state["services"].get(name)
        if entry and entry.get("started_by_lab") and service_alive(entry):
            stop(entry["pid"], entry.get("start_time"))

    def elapsed() -> float:
        return time.monotonic() - t0

    def action(name: str) -> str:
        return "kept" if name in keep else "started"

    def run_postgres() -> Timing:
        pid = None
        if "postgres" in to_start:
            pid = services.start_postgres(s)
            base = services.postgres_dir(s)

            def admin() -> health.Probe:
                try:
                    services.ensure_regress_role(str(base), s.postgres_port, None, s)
                    return True, "role ok"
                except Exception as exc:
                    return False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__

            wait_for("postgres", admin, timeout, pid, str(base / "postgres.log"))
        detail = wait_for("postgres", lambda: health.postgres_ok(s), timeout, pid)
        return Timing("postgres", action("postgres"), elapsed(), detail)

    def run_patroni() -> Timing:
        log_dir = s.lab_dir / "patroni"
        etcd_pid = services.start_etcd(s) if "etcd" in to_start else None
        wait_for("etcd", lambda: health.etcd_ok(s), timeout, etcd_pid, str(s.lab_dir / "etcd" / "etcd.log"))
        pids = {}
        for i, name in enumerate(member_services(s)):
            if name in to_start:
                pids[name] = services.start_patroni_member(s, i)

        def cluster() -> health.Probe:
            for name, pid in pids.items():
                if not is_alive(pid):
                    raise LabError(f"{name} (pid {pid}) exited; see {log_dir}/{name[8:]}/patroni.log")
            return health.patroni_cluster_ok(s)

        detail = wait_for("patroni cluster", cluster, timeout, None, str(log_dir))
        leader = health.patroni_leader_index(s)
        if leader is None:
            raise LabError("patroni lost its leader right after start-up")

        def role() -> health.Probe:
            try:
                port = s.patroni_pg_ports[leader]
                services.ensure_regress_role("127.0.0.1", port, s.patroni_superuser_password, s)
                health.pg_query(port, s.postgres_user, s.postgres_password, s.postgres_db, "SELECT 1")
                return True, "role ok"
            except Exception as exc:
                return False, type(exc).__name__

        wait_for("patroni regress role", role, 15.0)
        started = any(n in to_start for n in ["etcd", *member_services(s)])
        return Timing("patroni", "started" if started else "kept", elapsed(), detail)

    def run_haproxy(patroni: Future[Timing]) -> Timing:
        pid = services.start_haproxy(s) if "haproxy" in to_start else None
        patroni.result()
        log = str(s.lab_dir / "haproxy" / "haproxy.log")
        detail = wait_for("haproxy", lambda: health.haproxy_ok(s), timeout, pid, log)
        return Timing("haproxy", action("haproxy"), elapsed(), detail)

    def run_simple(name: str, start: Callable[[LabSettings], int], probe: Callable[[], health.Probe]) -> Timing:
        pid = start(s) if name in to_start else None
        detail = wait_for(name, probe, timeout, pid, str(s.lab_dir / name / f"{name}.log"))
        return Timing(name, action(name), elapsed(), detail)

    def run_rabbitmq() -> Timing:
        if not rabbit_by_lab:
            ports = {"amqp": DEFAULT_RABBITMQ_PORT}
            record_service(s, "rabbitmq", pid=None, ports=ports, started_by_lab=False, mode="reused")
            return Timing("rabbitmq", "reused", elapsed(), f"127.0.0.1:{DEFAULT_RABBITMQ_PORT}")
        epmd_pid = services.start_epmd(s) if "epmd" in to_start else None
        wait_for("epmd", lambda: health.port_open(s.rabbitmq_epmd_port), 10.0, epmd_pid)
        pid = services.start_rabbitmq(s) if "rabbitmq" in to_start else None
        probe = lambda: health.amqp_ok(s.rabbitmq_port, s.rabbitmq_user, s.rabbitmq_password)  # noqa: E731
        detail = wait_for("rabbitmq", probe, max(timeout, 60.0), pid, str(s.lab_dir / "rabbitmq" / "rabbitmq.log"))
        return Timing("rabbitmq", action("rabbitmq"), elapsed(), detail)

    with ThreadPoolExecutor(max_workers=8) as pool:
        patroni = pool.submit(run_patroni)
        futures = [
            pool.submit(run_postgres),
            patroni,
            pool.submit(run_haproxy, patroni),
            pool.submit(run_simple, "redis", services.start_redis, lambda: health.redis_ok(s)),
            pool.submit(run_simple, "alertmanager", services.start_alertmanager, lambda: health.alertmanager_ok(s)),
            pool.submit(run_rabbitmq),
        ]
        timings, errors = [], []
        for f in futures:
            try:
                timings.append(f.result())
            except Exception as exc:
                errors.append(str(exc))
    if errors:
        raise LabError("lab up failed:\n  " + "\n  ".join(errors))
    for t in sorted(timings, key=lambda t: t.seconds):
        out(f"  {t.service:<13} {t.action:<8} ready at {t.seconds:5.2f}s  {t.detail}")
    out(f"lab up in {elapsed():.2f}s ({s.lab_dir})")
    return timings


# --- down ------------------------------------------------------------------------------------------------

STOP_SIGNAL = {"postgres": signal.SIGINT}  # fast shutdown; SIGTERM would wait for clients


def _stop_entry(s: LabSettings, name: str, entry: dict[str, Any]) -> str | None:
    """Stop one lab-started service; returns an error message or None."""
    sig = STOP_SIGNAL.get(name, signal.SIGTERM)
    timeout = 30.0 if name.startswith("patroni-") or name == "rabbitmq" else 15.0
    if stop(entry["pid"], entry.get("start_time"), sig=sig, timeout=timeout):
        forget_service(s, name)
        return None
    return f"{name} (pid {entry['pid']}) did not stop"


def _stop_orphan_postmasters(s: LabSettings) -> list[str]:
    errors = []
    for member in s.patroni_members:
        pid = postmaster_pid(s, member)
        if pid and not stop(pid, sig=signal.SIGINT, timeout=15.0):
            errors.append(f"postmaster of {member} (pid {pid}) did not stop")
    return errors


def down(s: LabSettings, purge: bool = False, out: Callable[[str], None] = print) -> int:
    """Stop what the lab started (never a reused RabbitMQ or the machine's own servers); 0 if all stopped."""
    t0 = time.monotonic()
    entries = {n: e for n, e in read_state(s)["services"].items() if e.get("started_by_lab") and e.get("pid")}
    first = {n: e for n, e in entries.items() if n not in ("etcd", "epmd")}
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, len(first))) as pool:
        errors += [e for e in pool.map(lambda kv: _stop_entry(s, *kv), first.items()) if e]
    errors += _stop_orphan_postmasters(s)
    for name in ("etcd", "epmd"):  # after Patroni and RabbitMQ, which need them to shut down cleanly
        if name in entries and (err := _stop_entry(s, name, entries[name])):
            errors.append(err)
    if not errors:
        forget_service(s, "rabbitmq")  # a reused broker: just forget it
        state_path(s).unlink(missing_ok=True)
    for err in errors:
        out(f"error: {err}")
    out(f"stopped {len(entries) - len(errors)} lab process(es) in {time.monotonic() - t0:.2f}s")
    if purge:
        if errors:
            out("not purging: some lab processes are still running")
            return 1
        _purge(s)
        out(f"purged {s.lab_dir}")
    return 1 if errors else 0


LAB_ENTRIES = {"postgres", "patroni", "etcd", "haproxy", "redis", "rabbitmq", "alertmanager", "state.json"}


def _purge(s: LabSettings) -> None:
    """Remove the lab dir, but only if it holds nothing but lab data (guards a mistyped REGRESS_LAB_DIR)."""
    d = s.lab_dir.resolve()
    if not d.exists():
        return
    foreign = [p.name for p in d.iterdir() if p.name not in LAB_ENTRIES and not p.name.startswith("state.")]
    if d in (REPO_ROOT, REPO_ROOT.parent) or d == d.parent or foreign:
        raise LabError(f"refusing to purge {d}: it holds non-lab files {foreign[:5]}")
    shutil.rmtree(d)


# --- status ----------------------------------------------------------------------------------------------


def status_rows(s: LabSettings) -> list[dict[str, Any]]:
    """One row per lab service: service, port(s), pid, healthy, detail, started_by."""
    state = read_state(s)["services"]
    rabbit = state.get("rabbitmq", {})
    names = ["postgres", "etcd", *member_services(s), "haproxy", "redis", "rabbitmq", "alertmanager"]
    if "epmd" in state:
        names.insert(names.index("rabbitmq"), "epmd")

    def row(name: str) -> dict[str, Any]:
        entry = state.get(name)
        by_lab = bool(entry and entry.get("started_by_lab"))
        if name == "rabbitmq" and entry and not by_lab:
            port = int(rabbit.get("ports", {}).get("amqp", DEFAULT_RABBITMQ_PORT))
            ok, detail = health.amqp_ok(port, s.rabbitmq_user, s.rabbitmq_password)
            return _row(name, {"amqp": port}, None, ok, detail, "reused")
        if not entry:
            return _row(name, {}, None, False, "not started", "-")
        alive = service_alive(entry)
        ok, detail = (False, "process not running")
        if alive:
            if name.startswith("patroni-"):
                ok, detail = health.patroni_member_ok(s, s.patroni_members.index(name[8:]))
            elif name == "haproxy":
                ok, detail = health.haproxy_ok(s)
            else:
                ok, detail = quick_probe(s, name)
        return _row(name, entry.get("ports", {}), entry.get("pid"), ok, detail, "lab" if by_lab else "other")

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        rows = list(pool.map(row, names))
    if any(r["service"].startswith("patroni-") and r["pid"] for r in rows):
        ok, detail = health.patroni_cluster_ok(s)
        rows.insert(2 + len(s.patroni_members), _row("patroni", {}, None, ok, detail, "lab"))
    return rows


def _row(name: str, ports: dict[str, int], pid: int | None, ok: bool, detail: str, by: str) -> dict[str, Any]:
    return {"service": name, "ports": ports, "pid": pid, "healthy": ok, "detail": detail, "started_by": by}


def format_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'SERVICE':<15} {'PORT':<18} {'PID':>8}  {'HEALTH':<9} {'STARTED_BY':<10} DETAIL"
    lines = [head]
    for r in rows:
        ports = ",".join(str(p) for p in r["ports"].values()) or "-"
        health_txt = "healthy" if r["healthy"] else "UNHEALTHY"
        pid = str(r["pid"]) if r["pid"] else "-"
        lines.append(f"{r['service']:<15} {ports:<18} {pid:>8}  {health_txt:<9} {r['started_by']:<10} {r['detail']}")
    return "\n".join(lines)
