"""The lab against real servers: up from nothing, idempotent up, port conflicts, down stops only lab PIDs.

Runs a whole separate lab (own tmp dir, a port offset from 4300 up whose ports are free) so the lab of this
session, and those of others on the machine, are untouched.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from regression_pipelines.lab import health
from regression_pipelines.lab.patroni_members import postmaster_pid
from regression_pipelines.lab.procs import is_alive
from regression_pipelines.lab.state import load_endpoints, read_state
from tests.integration.lab_fixtures import (
    free_offset,
    lab_env,
    new_lab_dir,
    run_lab_cli,
    settings_for,
    unhealthy_after,
)

pytestmark = pytest.mark.lab

FIRST_OFFSET = 4300  # above the offsets people give their own labs


def _machine_service_pids() -> set[int]:
    """PIDs listening on the machine's own PostgreSQL/Redis/RabbitMQ ports (5432, 6379, 5672), if any."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    pids = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[3].rsplit(":", 1)[-1] in ("5432", "6379", "5672"):
            pids.update(int(p.split(",")[0]) for p in fields[5].split("pid=")[1:])
    return pids


@pytest.fixture(scope="module")
def lab() -> Iterator[dict[str, str]]:
    path = new_lab_dir()
    env = lab_env(path, free_offset(FIRST_OFFSET))
    yield env
    run_lab_cli(env, "down", "--purge")
    shutil.rmtree(path, ignore_errors=True)


def test_up_from_nothing_then_status_is_healthy(lab: dict[str, str]) -> None:
    res = run_lab_cli(lab, "up")
    assert res.returncode == 0, res.stderr
    assert "lab up in" in res.stdout
    assert unhealthy_after(lambda: json.loads(run_lab_cli(lab, "status", "--json").stdout)) == []
    status = run_lab_cli(lab, "status", "--json")
    rows = json.loads(status.stdout)
    assert status.returncode == 0, status.stdout
    # healthy None = an optional service this machine cannot run (Citus where it is not installed): skipped.
    assert all(r["healthy"] for r in rows if r["service"] != "citus"), rows
    names = {r["service"] for r in rows}
    assert {"postgres", "etcd", "patroni", "patroni-pg0", "haproxy", "redis", "rabbitmq", "alertmanager"} <= names
    rabbit = next(r for r in rows if r["service"] == "rabbitmq")
    assert rabbit["started_by"] == "lab" and rabbit["ports"]["amqp"] != 5672  # the lab's own broker

    s = settings_for(lab)
    ep = load_endpoints(s)
    assert ep["redis"]["port"] == s.redis_port and ep["haproxy"]["rw_port"] == s.haproxy_rw_port
    # Password auth is real: the right password works, a wrong one is refused.
    assert health.pg_query(s.postgres_port, s.postgres_user, s.postgres_password, s.postgres_db, "SELECT 1") == 1
    with pytest.raises(Exception, match="password authentication failed"):
        health.pg_query(s.postgres_port, s.postgres_user, "wrong-password", s.postgres_db, "SELECT 1")
    # The regress role exists on the Patroni cluster too, reachable through HAProxy's rw port.
    assert health.pg_query(s.haproxy_rw_port, s.postgres_user, s.postgres_password, s.postgres_db, "SELECT 1") == 1


def test_second_up_starts_nothing_new(lab: dict[str, str]) -> None:
    s = settings_for(lab)
    before = {n: e["pid"] for n, e in read_state(s)["services"].items()}
    res = run_lab_cli(lab, "up")
    assert res.returncode == 0, res.stderr
    after = {n: e["pid"] for n, e in read_state(s)["services"].items()}
    assert after == before
    assert " started " not in res.stdout


def test_taken_port_gives_clear_error_and_starts_nothing() -> None:
    lab_tmp_dir = new_lab_dir()
    env = lab_env(lab_tmp_dir, free_offset(FIRST_OFFSET + 50))
    s = settings_for(env)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", s.redis_port))
        sock.listen()
        res = run_lab_cli(env, "up")
    assert res.returncode != 0
    assert f"port {s.redis_port} for redis is already in use by another process" in res.stderr
    assert "REGRESS_LAB_REDIS_PORT or REGRESS_LAB_PORT_OFFSET" in res.stderr
    assert not (lab_tmp_dir / "state.json").exists()
    assert not health.port_open(s.postgres_port)[0]
    shutil.rmtree(lab_tmp_dir, ignore_errors=True)


def test_down_stops_only_lab_pids_and_purge_removes_data(lab: dict[str, str]) -> None:
    s = settings_for(lab)
    lab_pids = {e["pid"] for e in read_state(s)["services"].values() if e.get("started_by_lab") and e["pid"]}
    postmasters = {pid for pid in member_pids(s).values() if pid}
    assert lab_pids and len(postmasters) == 3
    assert read_state(s)["services"]["rabbitmq"]["started_by_lab"]
    # A foreign server of the same kind as a lab one, which `down` must leave alone (no kill by name).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free_port = sock.getsockname()[1]
    sentinel = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(free_port), "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    machine = _machine_service_pids()
    try:
        res = run_lab_cli(lab, "down")
        assert res.returncode == 0, res.stdout + res.stderr
        assert not any(is_alive(pid) for pid in lab_pids | postmasters)
        assert sentinel.poll() is None and is_alive(sentinel.pid)
        assert all(is_alive(pid) for pid in machine)
        assert not health.port_open(s.rabbitmq_epmd_port)[0]  # the lab's epmd went with its broker
    finally:
        sentinel.terminate()
        sentinel.wait(10)
    assert Path(lab["REGRESS_LAB_DIR"], "postgres", "data", "PG_VERSION").exists()

    res = run_lab_cli(lab, "down", "--purge")
    assert res.returncode == 0, res.stdout + res.stderr
    assert not Path(lab["REGRESS_LAB_DIR"]).exists()


def member_pids(s) -> dict[str, int | None]:  # type: ignore[no-untyped-def]
    return {m: postmaster_pid(s, m) for m in s.patroni_members}
