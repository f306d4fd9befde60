"""`regress lab ctl` aims each service's own admin tool at the lab's instance, and `lab down SERVICE` stops a
service with whatever depends on it (decided from the registry; no service is started here)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from regression_pipelines.lab.ctl import command
from regression_pipelines.lab.errors import LabError
from regression_pipelines.lab.health import Probe
from regression_pipelines.lab.lifecycle import _not_ours_row, with_dependents
from regression_pipelines.lab.service import LabService, PortClaim
from regression_pipelines.lab.settings import LabSettings


@pytest.fixture
def lab(tmp_path: Path) -> LabSettings:
    return LabSettings(lab_dir=tmp_path / "lab", rabbitmq_port=15773, rabbitmq_epmd_port=14469)


def test_rabbitmqctl_gets_the_lab_nodes_cookie_env_file_and_epmd_port(lab: LabSettings) -> None:
    argv, env, tool = command(lab, "rabbitmq", ["list_queues"])
    assert argv[:4] == ["/usr/bin/setpriv", "--reuid=rabbitmq", "--regid=rabbitmq", "--init-groups"]
    assert argv[4:] == ["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", "regress-lab-15773@localhost", "list_queues"]
    assert env["HOME"] == str(lab.lab_dir / "rabbitmq" / "home")  # where the lab node's .erlang.cookie is
    assert env["RABBITMQ_CONF_ENV_FILE"] == str(lab.lab_dir / "rabbitmq" / "rabbitmq-env.conf")
    assert env["ERL_EPMD_PORT"] == "14469"


def test_psql_gets_the_password_from_the_environment_never_the_command_line(lab: LabSettings) -> None:
    argv, env, _ = command(lab, "postgres", [])
    assert argv[-2:] == ["-c", "SELECT version()"]  # no ARGS: a harmless status command
    assert ["-p", str(lab.postgres_port), "-U", lab.postgres_user] == argv[3:7]
    assert env["PGPASSWORD"] == lab.postgres_password and lab.postgres_password not in argv


def test_patronictl_reads_a_members_config_and_etcdctl_the_lab_endpoint(lab: LabSettings) -> None:
    argv, _, _ = command(lab, "patroni", [])
    assert argv[-3:] == ["-c", str(lab.lab_dir / "patroni" / "pg0" / "patroni.yml"), "list"]
    argv, env, _ = command(lab, "etcd", ["member", "list"])
    assert argv[1:] == [f"--endpoints=http://127.0.0.1:{lab.etcd_client_port}", "member", "list"]
    assert env["ETCDCTL_API"] == "3"


def test_a_service_without_a_tool_names_those_with_one(lab: LabSettings) -> None:
    with pytest.raises(LabError, match="haproxy has no admin tool .* services that do: .*rabbitmq.*redis"):
        command(lab, "haproxy", [])
    with pytest.raises(LabError, match="no lab service 'mysql'"):
        command(lab, "mysql", [])


def test_an_outside_broker_is_not_the_labs_to_administer(lab: LabSettings) -> None:
    outside = LabSettings(lab_dir=lab.lab_dir, rabbitmq_reuse="127.0.0.1:5672")
    with pytest.raises(LabError, match="rabbitmq has no admin tool"):
        command(outside, "rabbitmq", [])


def test_down_a_service_also_stops_what_depends_on_it() -> None:
    assert with_dependents(["patroni"]) == ["patroni", "haproxy"]
    assert with_dependents(["etcd"]) == ["etcd", "patroni", "haproxy"]
    assert with_dependents(["redis"]) == ["redis"]


class _Stub(LabService):
    """A one-port service whose probe answers as told (the port is held by this test's socket)."""

    name = "stubsvc"

    def __init__(self, port: int, answers: bool) -> None:
        self.port, self.answers = port, answers

    def port_claims(self, s: LabSettings) -> list[PortClaim]:
        return [PortClaim("stubsvc", self.port, "redis_port")]

    def start(self, s: LabSettings, process: str) -> int:
        raise NotImplementedError

    def probe(self, s: LabSettings, process: str) -> Probe:
        return (True, "query ok") if self.answers else (False, "connection reset")


@pytest.mark.parametrize(
    ("answers", "healthy", "detail"),
    [(True, True, "serving, not started by the lab (pid "), (False, False, "held by another process (pid ")],
)
def test_status_probes_what_listens_where_the_lab_runs_nothing(
    lab: LabSettings, answers: bool, healthy: bool, detail: str
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        stub = _Stub(sock.getsockname()[1], answers)
        row = _not_ours_row(lab, stub, "stubsvc", {"pid": 999999})
    assert row["healthy"] is healthy and row["started_by"] == "other" and row["pid"] == os.getpid()
    assert detail in row["detail"]
    free = _Stub(stub.port, answers)
    assert _not_ours_row(lab, free, "stubsvc", {"pid": 999999})["detail"] == "process not running"
    assert _not_ours_row(lab, free, "stubsvc", None)["detail"] == "not started"
