"""Where a nemesis may act, and how: the lab's own services (verified), or a command template for anything else.

A lab target is accepted only when the area's endpoint is loopback, has the port this lab's settings give that
service, and every process of it was started by this lab (`lab.control.why_not_lab_owned`); otherwise the
nemesis is refused before the workload, with the reason and the setting that would change it. Outside the lab a
nemesis acts only through the run's `nemesis_command`, split with shlex before substitution and run without a
shell, on loopback or allow-listed hosts.

Also the kit's equivalents of the per-area fault helpers: `service_restarter` (a lab service restart, e.g. the
broker mid-ETL) and `patroni_lab_control` (PIDs and restart of a Patroni member), each verified the same way.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regression_pipelines.errors import UnsafeTargetError, mask_secrets
from regression_pipelines.kit.nemeses.base import Endpoint, NemesisError, Target
from regression_pipelines.lab import control, patroni_members
from regression_pipelines.lab.procs import proc_stat
from regression_pipelines.lab.services import citus as lab_citus
from regression_pipelines.lab.settings import LAB_HOST, LabSettings
from resources._network import is_loopback

RABBITMQCTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")  # /usr/sbin/rabbitmqctl resets HOME and misses the cookie
COMMAND_TIMEOUT_S = 120.0
TEMPLATE_FIELDS = ("action", "nemesis", "service", "host", "port", "objects")


def lab_port(s: LabSettings, service: str) -> int | None:
    """The port this lab gives the service an area reaches (patroni: HAProxy's rw port; citus: coordinator)."""
    ports = {
        "postgres": s.postgres_port,
        "redis": s.redis_port,
        "rabbitmq": s.rabbitmq_port,
        "patroni": s.haproxy_rw_port,
        "citus": s.citus_ports[0],
    }
    return ports.get(service)


def why_not_the_lab(endpoint: Endpoint, s: LabSettings) -> str | None:
    """Why the endpoint is not this lab's own service (None when it is, and every process is the lab's)."""
    expected = lab_port(s, endpoint.service)
    if expected is None:
        return f"the lab runs no {endpoint.service} service a nemesis can act on"
    if not is_loopback(endpoint.host):
        return f"{endpoint.describe()} is not loopback, so not this lab's"
    if endpoint.port != expected:
        return (
            f"{endpoint.describe()} is not this lab's {endpoint.service} (127.0.0.1:{expected}, lab dir "
            f"{s.lab_dir}); set REGRESS_LAB_PORT_OFFSET/REGRESS_LAB_DIR to the lab you mean"
        )
    if endpoint.service == "patroni":
        members = {(m["name"], m["rest_port"], m["pg_port"]) for m in endpoint.extra.get("members", ())}
        lab = set(zip(s.patroni_members, s.patroni_rest_ports, s.patroni_pg_ports, strict=True))
        if members and members != lab:
            return f"the patroni members {sorted(members)} are not this lab's {sorted(lab)}"
    return control.why_not_lab_owned(s, endpoint.service)


def require_lab(nemesis: str, endpoint: Endpoint, settings: LabSettings | None = None) -> LabSettings:
    """This lab's settings when `endpoint` is its own service; else NemesisError naming the reason and the fix."""
    s = settings or LabSettings.from_env()
    why = why_not_the_lab(endpoint, s)
    if why is not None:
        raise NemesisError(
            f"nemesis {nemesis} refused, touched nothing: {why}. To act on a server outside the lab, set "
            "nemesis_command (a command per action, e.g. 'ssh {host} sudo fault {action} {service}') and add "
            "its host to allow_list"
        )
    return s


# -- outside the lab: the command template ----------------------------------------------------------------------


def check_template(nemesis: str, target: Target, endpoint: Endpoint) -> None:
    """Refuse a template with unknown placeholders, or one aimed at a host that is neither loopback nor allowed."""
    try:
        [part.format(**dict.fromkeys(TEMPLATE_FIELDS, "x")) for part in shlex.split(target.command_template)]
    except (KeyError, ValueError, IndexError) as exc:
        raise NemesisError(
            f"nemesis_command {target.command_template!r} cannot be used ({type(exc).__name__}: {exc}); its "
            f"placeholders are {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}"
        ) from None
    if not is_loopback(endpoint.host) and endpoint.host not in target.allow_list:
        raise NemesisError(
            f"nemesis {nemesis} refused: {endpoint.host} is not loopback and not in allow_list "
            f"{list(target.allow_list)}; add it only if you own that system"
        )


def run_template(template: str, values: Mapping[str, object], timeout_s: float = COMMAND_TIMEOUT_S) -> str:
    """Run the command for one action; its stdout's last line (or 'ok'); NemesisError with stderr's tail."""
    argv = [part.format(**values) for part in shlex.split(template)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NemesisError(f"nemesis_command {values.get('action')}: failed to run ({exc})") from None
    if done.returncode != 0:
        tail = mask_secrets(done.stderr.strip()[-300:])
        raise NemesisError(f"nemesis_command {values.get('action')}: exited {done.returncode}: {tail}")
    lines = done.stdout.strip().splitlines()
    return mask_secrets(lines[-1][:200]) if lines else "ok"


def template_values(action: str, nemesis: str, endpoint: Endpoint, objects: Iterable[str]) -> dict[str, object]:
    return {
        "action": action,
        "nemesis": nemesis,
        "service": endpoint.service,
        "host": endpoint.host,
        "port": endpoint.port if endpoint.port is not None else "",
        "objects": ",".join(objects),
    }


# -- the lab's tools --------------------------------------------------------------------------------------------


def pg_admin(s: LabSettings, dbname: str | None = None, socket_dir: Path | None = None, port: int | None = None) -> Any:
    """A superuser connection to a lab PostgreSQL over its trusted local socket (the operator's psql)."""
    import psycopg

    return psycopg.connect(
        host=str(socket_dir or s.lab_dir / "postgres"),
        port=port or s.postgres_port,
        user="postgres",
        dbname=dbname or s.postgres_db,
        autocommit=True,
        connect_timeout=3,
        application_name="regress_nemesis",
    )


def redis_admin(s: LabSettings) -> Any:
    import redis

    return redis.Redis(host=LAB_HOST, port=s.redis_port, socket_timeout=3, socket_connect_timeout=3)


def rabbitmqctl_command(s: LabSettings, *args: str) -> tuple[list[str], dict[str, str]]:
    """argv and environment of `rabbitmqctl ARGS` against the lab node (as LAB-NOTES describes: its cookie, env
    file, epmd), for a caller that runs it as a long-lived process of its own (kit.observe's broker watch)."""
    base = s.lab_dir / "rabbitmq"
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": str(base / "home"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        "ERL_EPMD_PORT": str(s.rabbitmq_epmd_port),
    }
    argv = [
        "setpriv", "--reuid=rabbitmq", "--regid=rabbitmq", "--init-groups",
        str(RABBITMQCTL), "-q", "-n", s.rabbitmq_nodename, *args,
    ]  # fmt: skip
    return argv, env


def rabbitmqctl(s: LabSettings, *args: str, timeout_s: float = 60.0) -> str:
    """The broker's own admin tool against the lab node (as LAB-NOTES describes: its cookie, env file, epmd)."""
    argv, env = rabbitmqctl_command(s, *args)
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NemesisError(f"rabbitmqctl {args[0]}: failed to run ({exc})") from None
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip())[-300:]
        raise NemesisError(f"rabbitmqctl {args[0]}: exited {done.returncode}: {tail}")
    return done.stdout.strip()


# -- processes: pause and resume --------------------------------------------------------------------------------


def descendants(roots: Sequence[int]) -> list[int]:
    """The roots and every process below them, parents before children (one scan of /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], list(roots)
    while queue:
        pid = queue.pop(0)
        if pid not in found:
            found.append(pid)
            queue.extend(children.get(pid, ()))
    return found


def process_state(pid: int) -> str:
    """The state letter from /proc/PID/stat ('T' stopped), '' when gone (kill -0 is not trusted here)."""
    stat = proc_stat(pid)
    return stat[0] if stat else ""


def signal_all(pids: Iterable[int], sig: int) -> list[int]:
    """Send `sig` to each PID that still exists; the ones it reached."""
    reached = []
    for pid in pids:
        try:
            os.kill(pid, sig)
            reached.append(pid)
        except ProcessLookupError:
            continue
    return reached


GONE = "ZXx"  # zombie or dead: a child that exited while its stopped parent cannot reap it counts as done


def wait_states(pids: Iterable[int], stopped: bool, timeout_s: float = 3.0) -> list[int]:
    """Wait until each PID is stopped ('T'/'t') or not; the PIDs still in the other state at the deadline.
    Processes that are gone or zombies are done either way."""
    pending = list(pids)
    deadline = time.monotonic() + timeout_s
    while True:
        pending = [p for p in pending if (s := process_state(p)) and s not in GONE and (s in "Tt") != stopped]
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(0.02)


def pause_processes(roots: Sequence[int]) -> tuple[list[int], list[int]]:
    """SIGSTOP the roots first (so they fork nothing new), then everything below them. Returns every PID
    signalled (to resume, whatever happens next) and those not seen stopped in /proc within a few seconds."""
    signal_all(roots, signal.SIGSTOP)
    pids = descendants(roots)
    signal_all(pids, signal.SIGSTOP)
    return pids, wait_states(pids, stopped=True)


def resume_processes(pids: Sequence[int]) -> list[int]:
    """SIGCONT children first, the roots last; the PIDs still stopped afterwards (none, normally)."""
    signal_all(list(reversed(pids)), signal.SIGCONT)
    return wait_states(pids, stopped=False)


# -- the kit's equivalents of the per-area lab fault helpers ----------------------------------------------------


def service_restarter(
    service: str, host: str, port: int, allow_destructive: bool, what: str = ""
) -> Callable[[], None]:
    """A function restarting the lab service an area's resource points at; refuses anything else up front.

    Replaces etl_pipeline's `lab_faults.broker_restarter` (same checks: opt-in, this lab's port, lab-owned).
    """
    from regression_pipelines.kit.guard import require_destructive_opt_in

    require_destructive_opt_in(what or f"restarting the {service} service", allow_destructive, [host])
    s = LabSettings.from_env()
    why = why_not_the_lab(Endpoint(service, host, port), s)
    if why is not None:
        raise UnsafeTargetError(f"{what or 'restart'} refused: only the lab's own {service} is restarted; {why}")

    def restart() -> None:
        control.restart_service(s, service, timeout=60.0)

    return restart


@dataclass(frozen=True)
class PatroniLabControl:
    """PIDs and restart of the lab's Patroni members, for signals sent from this machine."""

    settings: LabSettings

    def pids(self, member: str) -> tuple[int | None, int | None]:
        """(Patroni PID, postmaster PID) of the member, None where not running."""
        return patroni_members.patroni_pid(self.settings, member), patroni_members.postmaster_pid(self.settings, member)

    def restart_member(self, member: str, wait_s: float = 60.0) -> None:
        patroni_members.start_member(self.settings, member, wait=wait_s)


def patroni_lab_control(members: Iterable[tuple[str, int, int]], host: str = LAB_HOST) -> PatroniLabControl:
    """Control of the lab whose Patroni members (name, REST port, PostgreSQL port) these are; refuses others.

    Replaces ha_failover's `lab_faults.lab_injector` checks: the members must be exactly this lab's.
    """
    s = LabSettings.from_env()
    described = [{"name": n, "rest_port": r, "pg_port": p} for n, r, p in members]
    why = why_not_the_lab(Endpoint("patroni", host, s.haproxy_rw_port, {"members": described}), s)
    if why is not None:
        raise UnsafeTargetError(f"signals to Patroni members refused: {why}")
    return PatroniLabControl(s)


def citus_node_dir(s: LabSettings, process: str) -> Path:
    return lab_citus.node_dir(s, process)
