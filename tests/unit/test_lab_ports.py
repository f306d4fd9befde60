"""Port-conflict detection: a taken port is named with its service and the setting to change."""

from __future__ import annotations

import os
import re
import socket

import pytest

from regression_pipelines.lab.errors import PortConflictError, PortLayoutError
from regression_pipelines.lab.ports import claims, conflict_message, ensure_free, find_conflicts, port_in_use
from regression_pipelines.lab.procs import describe_listener
from regression_pipelines.lab.settings import LabSettings


def test_claims_cover_every_service_port() -> None:
    s = LabSettings()
    ports = {c.port for c in claims(s)}
    assert {s.postgres_port, s.redis_port, s.haproxy_rw_port, s.alertmanager_port, *s.patroni_pg_ports} <= ports
    assert {c.service for c in claims(s)} >= {"postgres", "etcd", "patroni-pg0", "haproxy", "redis", "epmd"}


def test_message_names_port_service_and_env_var() -> None:
    s = LabSettings()
    taken = {s.redis_port, s.patroni_rest_ports[1]}
    conflicts = find_conflicts(claims(s), lambda p: p in taken)
    msg = conflict_message(conflicts)
    # the holder is named when something really listens there (the running lab's Redis under `make test`)
    assert re.search(
        rf"port {s.redis_port} for redis is already in use by another process( \(.*\))?; "
        "set REGRESS_LAB_REDIS_PORT or REGRESS_LAB_PORT_OFFSET",
        msg,
    ), msg
    assert f"port {s.patroni_rest_ports[1]} for patroni-pg1" in msg and "REGRESS_LAB_PATRONI_REST_PORTS" in msg


def test_real_listening_socket_is_detected() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_in_use(port)
        s = LabSettings(redis_port=port)
        with pytest.raises(PortConflictError, match=f"port {port} for redis"):
            ensure_free([c for c in claims(s) if c.service == "redis"])
    assert not port_in_use(port)


@pytest.mark.parametrize("offset", [0, 100, 200, 300])
def test_usual_offsets_are_accepted(offset: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGRESS_LAB_PORT_OFFSET", str(offset))
    assert LabSettings.from_env().redis_port == 16379 + offset


def test_an_offset_onto_the_default_labs_ports_is_refused_naming_both_services(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """2000 puts HAProxy's rw port on 17000, the default lab's stats port: two labs on one machine collide."""
    monkeypatch.setenv("REGRESS_LAB_PORT_OFFSET", "2000")
    with pytest.raises(PortLayoutError) as info:
        LabSettings.from_env()
    message = str(info.value)
    assert "haproxy (haproxy_rw_port) port 17000 is the default lab's haproxy (haproxy_stats_port) port" in message
    assert "choose another REGRESS_LAB_PORT_OFFSET (e.g. 100)" in message


def test_an_offset_is_checked_against_regress_serve_and_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGRESS_LAB_PORT_OFFSET", "1000")  # the webserver would take the default code server's 4000
    with pytest.raises(PortLayoutError, match="webserver .* port 4000 is the default lab's regress serve code server"):
        LabSettings.from_env()
    monkeypatch.setenv("REGRESS_LAB_PORT_OFFSET", "0")
    monkeypatch.setenv("REGRESS_LAB_REDIS_PORT", "15432")  # one lab, two services on one port
    with pytest.raises(PortLayoutError, match=r"port 15432 would be both postgres \(postgres_port\) and redis"):
        LabSettings.from_env()


def test_the_process_holding_a_port_is_named() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert describe_listener(port).startswith(f"pid {os.getpid()}: ")
        s = LabSettings(redis_port=port)
        with pytest.raises(
            PortConflictError, match=f"port {port} for redis is already in use by another process \\(pid"
        ):
            ensure_free([c for c in claims(s) if c.service == "redis"])
    assert describe_listener(port) == ""
