"""Port-conflict detection: a taken port is named with its service and the setting to change."""

from __future__ import annotations

import socket

import pytest

from regression_pipelines.lab.errors import PortConflictError
from regression_pipelines.lab.ports import claims, conflict_message, ensure_free, find_conflicts, port_in_use
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
    assert (
        f"port {s.redis_port} for redis is already in use by another process; "
        "set REGRESS_LAB_REDIS_PORT or REGRESS_LAB_PORT_OFFSET" in msg
    )
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
