"""Broker ownership from configuration: the lab's own broker by default, an outside one only when
REGRESS_LAB_RABBITMQ_REUSE names it, and destructive actions on an outside broker refused before anything
is signalled (here: pointed at the machine's 5672, which must never be touched)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from regression_pipelines.lab import control
from regression_pipelines.lab.errors import NotLabOwnedError
from regression_pipelines.lab.services import rabbitmq
from regression_pipelines.lab.settings import LabSettings, lab_env_defaults
from regression_pipelines.resources_config import lab_resources


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in [k for k in os.environ if k.startswith(("REGRESS_LAB_", "REGRESS_RABBITMQ_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("REGRESS_LAB_DIR", str(tmp_path / "lab"))
    return monkeypatch


def test_lab_owns_its_broker_by_default_and_resources_point_at_it(env: pytest.MonkeyPatch) -> None:
    env.setenv("REGRESS_LAB_PORT_OFFSET", "100")
    s = LabSettings.from_env()
    assert s.rabbitmq_reuse_address is None and rabbitmq.SERVICE.outside(s) is None
    assert lab_env_defaults(s)["REGRESS_RABBITMQ_PORT"] == str(s.rabbitmq_port) == "15773"
    assert rabbitmq.SERVICE.endpoint(s) == {"host": "127.0.0.1", "port": 15773, "user": "guest", "reused": False}
    before = dict(os.environ)
    broker = lab_resources()["rabbitmq"]
    assert (broker.host, broker.port) == ("127.0.0.1", 15773)
    assert dict(os.environ) == before  # the lab profile reads the environment, never writes it


def test_reuse_only_when_configured_and_resources_follow(env: pytest.MonkeyPatch) -> None:
    env.setenv("REGRESS_LAB_RABBITMQ_REUSE", "127.0.0.1:5672")
    s = LabSettings.from_env()
    assert s.rabbitmq_reuse_address == ("127.0.0.1", 5672)
    assert lab_env_defaults(s)["REGRESS_RABBITMQ_PORT"] == "5672"
    assert rabbitmq.SERVICE.endpoint(s)["reused"] is True
    assert LabSettings(rabbitmq_reuse="5673").rabbitmq_reuse_address == ("127.0.0.1", 5673)


@pytest.mark.parametrize("value", ["localhost", "127.0.0.1:", "127.0.0.1:amqp", "host:70000"])
def test_malformed_reuse_names_the_setting(env: pytest.MonkeyPatch, value: str) -> None:
    env.setenv("REGRESS_LAB_RABBITMQ_REUSE", value)
    with pytest.raises(ValueError, match="REGRESS_LAB_RABBITMQ_REUSE=.* must be host:port .* e.g. 127.0.0.1:5672"):
        LabSettings.from_env()


def test_retired_reuse_flag_says_what_replaced_it(env: pytest.MonkeyPatch) -> None:
    env.setenv("REGRESS_LAB_RABBITMQ_REUSE_DEFAULT", "true")
    with pytest.raises(ValueError, match="set REGRESS_LAB_RABBITMQ_REUSE=127.0.0.1:5672 instead"):
        LabSettings.from_env()
    env.setenv("REGRESS_LAB_RABBITMQ_REUSE_DEFAULT", "false")  # what the lab does now anyway
    assert LabSettings.from_env().rabbitmq_reuse_address is None


def test_restart_and_kill_of_a_reused_broker_are_refused_before_any_signal(env: pytest.MonkeyPatch) -> None:
    def no_signals(pid: int, sig: int) -> None:
        raise AssertionError(f"signal {sig} sent to {pid}")

    env.setattr(os, "kill", no_signals)
    env.setenv("REGRESS_LAB_RABBITMQ_REUSE", "127.0.0.1:5672")
    s = LabSettings.from_env()
    assert not control.broker_is_lab_owned(s)
    assert "REGRESS_LAB_RABBITMQ_REUSE" in (control.why_not_lab_owned(s, "rabbitmq") or "")
    for action in (control.restart_service, control.kill_service):
        with pytest.raises(NotLabOwnedError, match="rabbitmq is the outside server 127.0.0.1:5672") as err:
            action(s, "rabbitmq")
        assert "Unset REGRESS_LAB_RABBITMQ_REUSE and run `regress lab up`" in str(err.value)


def test_a_broker_the_lab_has_not_started_is_not_lab_owned(env: pytest.MonkeyPatch) -> None:
    s = LabSettings.from_env()
    assert not control.broker_is_lab_owned(s)
    with pytest.raises(NotLabOwnedError, match="refusing to kill rabbitmq: rabbitmq not started by this lab"):
        control.kill_service(s, "rabbitmq")
