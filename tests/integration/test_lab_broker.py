"""The lab's broker against real servers: lab-owned by default (its own process on its own port), a real
crash and restart of it, and a reused broker that restart/kill refuse without touching it.

The reused broker is this session's lab broker, seen from a second lab configured with
REGRESS_LAB_RABBITMQ_REUSE: that lab must neither signal it nor stop it on `down`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from regression_pipelines.lab import control, lifecycle
from regression_pipelines.lab.errors import NotLabOwnedError
from regression_pipelines.lab.health import amqp_ok, port_open
from regression_pipelines.lab.procs import is_alive
from regression_pipelines.lab.settings import LabSettings, lab_env_defaults
from regression_pipelines.lab.state import load_endpoints, read_state
from tests.integration.lab_fixtures import free_offset, lab_env, new_lab_dir, run_lab_cli, settings_for, unhealthy_after

pytestmark = pytest.mark.lab


def _listener_pids(port: int) -> set[int]:
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return {int(p.split(",")[0]) for line in out.splitlines() for p in line.split("pid=")[1:]}


def _children(pid: int) -> set[int]:
    kids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        if int(raw[raw.rfind(")") + 2 :].split()[1]) == pid:
            kids.add(int(stat.parent.name))
    return kids


def _broker(s: LabSettings) -> tuple[int, int]:
    entry = read_state(s)["services"]["rabbitmq"]
    return entry["pid"], entry["start_time"]


def test_the_lab_runs_its_own_broker_by_default(lab: LabSettings) -> None:
    entry = read_state(lab)["services"]["rabbitmq"]
    assert entry["started_by_lab"] and entry["mode"] == "started" and lab.rabbitmq_reuse_address is None
    assert entry["ports"]["amqp"] == lab.rabbitmq_port != 5672
    assert _listener_pids(lab.rabbitmq_port) == {entry["pid"]}  # the recorded PID is the broker itself
    assert read_state(lab)["services"]["epmd"]["started_by_lab"]
    assert _listener_pids(lab.rabbitmq_epmd_port) == {read_state(lab)["services"]["epmd"]["pid"]}
    assert control.broker_is_lab_owned(lab)
    assert load_endpoints(lab)["rabbitmq"] == {
        "host": "127.0.0.1", "port": lab.rabbitmq_port, "user": lab.rabbitmq_user, "reused": False,
    }  # fmt: skip
    assert lab_env_defaults(lab)["REGRESS_RABBITMQ_PORT"] == str(lab.rabbitmq_port)
    assert amqp_ok(lab.rabbitmq_port, lab.rabbitmq_user, lab.rabbitmq_password)[0]


@pytest.mark.destructive
def test_kill_is_a_real_crash_and_restart_brings_the_broker_back(lab: LabSettings) -> None:
    pid, _ = _broker(lab)
    helpers = _children(pid)  # erl_child_setup and friends must not outlive the VM
    epmd_pid = read_state(lab)["services"]["epmd"]["pid"]
    try:
        assert control.kill_service(lab, "rabbitmq") == [pid]
        assert not is_alive(pid) and not port_open(lab.rabbitmq_port)[0]
        deadline = time.monotonic() + 5
        while any(is_alive(p) for p in helpers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(is_alive(p) for p in helpers)
        assert is_alive(epmd_pid)  # a broker crash, not a lab teardown
        assert control.kill_service(lab, "rabbitmq") == []  # nothing left to kill
        started = time.monotonic()
        new = control.restart_service(lab, "rabbitmq")
        print(f"broker restart after a kill: {time.monotonic() - started:.2f} s")
        assert new["rabbitmq"] != pid and _broker(lab)[0] == new["rabbitmq"]
        assert amqp_ok(lab.rabbitmq_port, lab.rabbitmq_user, lab.rabbitmq_password)[0]
        again = control.restart_service(lab, "rabbitmq")  # a graceful stop + start of a running broker
        assert again["rabbitmq"] != new["rabbitmq"] and not is_alive(new["rabbitmq"])
    finally:
        lifecycle.up(lab, out=lambda _line: None)  # whatever happened, leave the lab usable
    assert unhealthy_after(lambda: lifecycle.status_rows(lab)) == []


@pytest.fixture
def reusing_lab(lab: LabSettings) -> Iterator[dict[str, str]]:
    """A second lab (own dir and ports) told to reuse this session's lab broker as an outside broker."""
    path = new_lab_dir()
    env = lab_env(path, free_offset(4600), REGRESS_LAB_RABBITMQ_REUSE=f"127.0.0.1:{lab.rabbitmq_port}")
    yield env
    run_lab_cli(env, "down", "--purge")
    shutil.rmtree(path, ignore_errors=True)


def test_a_reused_broker_is_recorded_refused_and_left_alone(lab: LabSettings, reusing_lab: dict[str, str]) -> None:
    broker = _broker(lab)
    res = run_lab_cli(reusing_lab, "up", "rabbitmq")
    assert res.returncode == 0, res.stderr
    assert "rabbitmq      reused" in res.stdout
    other = settings_for(reusing_lab)
    services = read_state(other)["services"]
    assert set(services) == {"rabbitmq"}  # no broker and no epmd of its own
    assert services["rabbitmq"] | {"start_time": None} == {
        "pid": None, "start_time": None, "ports": {"port": lab.rabbitmq_port}, "started_by_lab": False,
        "mode": "reused", "host": "127.0.0.1", "setting": "REGRESS_LAB_RABBITMQ_REUSE",
    }  # fmt: skip
    rows = {r["service"]: r for r in json.loads(run_lab_cli(reusing_lab, "status", "--json").stdout)}
    assert rows["rabbitmq"]["started_by"] == "reused" and rows["rabbitmq"]["healthy"]
    assert "epmd" not in rows and rows["redis"]["detail"] == "not started"  # only the broker was asked for
    assert lab_env_defaults(other)["REGRESS_RABBITMQ_PORT"] == str(lab.rabbitmq_port)

    assert not control.broker_is_lab_owned(other)
    for action in (control.restart_service, control.kill_service):
        with pytest.raises(NotLabOwnedError, match="REGRESS_LAB_RABBITMQ_REUSE"):
            action(other, "rabbitmq")
    assert _broker(lab) == broker and is_alive(*broker)

    res = run_lab_cli(reusing_lab, "down")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "stopped 0 lab process(es)" in res.stdout
    assert is_alive(*broker) and amqp_ok(lab.rabbitmq_port, lab.rabbitmq_user, lab.rabbitmq_password)[0]


def test_an_outside_broker_that_does_not_answer_is_a_clear_error(lab: LabSettings, reusing_lab: dict[str, str]) -> None:
    env = {**reusing_lab, "REGRESS_LAB_RABBITMQ_REUSE": f"127.0.0.1:{lab.rabbitmq_epmd_port}"}  # not AMQP
    res = run_lab_cli(env, "up", "rabbitmq")
    assert res.returncode == 1
    assert f"the outside server 127.0.0.1:{lab.rabbitmq_epmd_port} set by REGRESS_LAB_RABBITMQ_REUSE" in res.stderr
    assert "unset REGRESS_LAB_RABBITMQ_REUSE so the lab starts its own" in res.stderr


@pytest.mark.destructive
def test_switching_to_an_outside_broker_and_back(lab: LabSettings, reusing_lab: dict[str, str]) -> None:
    """Setting REGRESS_LAB_RABBITMQ_REUSE stops the lab's own broker and epmd at the next `up` (the lab
    started them); unsetting it starts them again. The outside broker here is a second lab's own."""
    outside_env = {**reusing_lab}
    del outside_env["REGRESS_LAB_RABBITMQ_REUSE"]
    res = run_lab_cli(outside_env, "up", "rabbitmq")
    assert res.returncode == 0, res.stderr
    outside = settings_for(outside_env)
    own_broker, own_epmd = _broker(lab), read_state(lab)["services"]["epmd"]["pid"]
    reusing = dataclasses.replace(lab, rabbitmq_reuse=f"127.0.0.1:{outside.rabbitmq_port}")
    try:
        lifecycle.up(reusing, out=lambda _line: None)
        services = read_state(lab)["services"]
        assert services["rabbitmq"]["mode"] == "reused" and "epmd" not in services
        assert not is_alive(*own_broker) and not is_alive(own_epmd)
        assert not control.broker_is_lab_owned(reusing) and is_alive(*_broker(outside))
    finally:
        lifecycle.up(lab, out=lambda _line: None)
    assert read_state(lab)["services"]["rabbitmq"]["started_by_lab"] and control.broker_is_lab_owned(lab)
    assert amqp_ok(lab.rabbitmq_port, lab.rabbitmq_user, lab.rabbitmq_password)[0]
    assert is_alive(*_broker(outside))  # the lab never stopped the broker it reused
