"""`regress serve` plumbing without Dagster processes: a taken port is a clear error before anything starts,
stop signals exactly the recorded PIDs (and the groups they lead), and the generated files hold no secret."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from regression_pipelines.lab import procs
from regression_pipelines.lab.errors import PortConflictError
from regression_pipelines.serve import lifecycle
from regression_pipelines.serve.topology import ServeSettings, command, write_files


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ServeSettings:
    monkeypatch.setenv("REGRESS_SERVE_DIR", str(tmp_path / "serve"))
    monkeypatch.setenv("REGRESS_LAB_PORT_OFFSET", "7")
    return ServeSettings.from_env()


def test_ports_shift_with_the_lab_offset_and_can_be_set(settings: ServeSettings, monkeypatch) -> None:
    assert (settings.webserver_port, settings.grpc_port) == (3007, 4007)
    monkeypatch.setenv("REGRESS_SERVE_GRPC_PORT", "4555")
    assert ServeSettings.from_env().grpc_port == 4555
    assert "4555" in command(ServeSettings.from_env(), "code_server")


def test_a_taken_port_names_the_process_and_the_setting(settings: ServeSettings, monkeypatch) -> None:
    monkeypatch.setattr(lifecycle, "port_in_use", lambda port: port == settings.webserver_port)
    with pytest.raises(PortConflictError) as info:
        lifecycle.start(settings, out=lambda _line: None)
    message = str(info.value)
    assert f"port {settings.webserver_port} for the webserver is already in use" in message
    assert "REGRESS_SERVE_WEBSERVER_PORT" in message
    assert not lifecycle.read_state(settings)["processes"], "nothing may start when a port is taken"


def test_stop_signals_only_what_the_state_file_recorded(settings: ServeSettings) -> None:
    ours = procs.spawn(["sh", "-c", "sleep 60 & sleep 60"], settings.serve_dir / "ours.log")
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        state = {"processes": {"daemon": {"pid": ours, "start_time": procs.start_time(ours)}}}
        lifecycle._write_state(settings, state)
        time.sleep(0.2)  # let the shell start its child in its group
        lifecycle.stop(settings, out=lambda _line: None)
        assert not procs.is_alive(ours)
        assert not lifecycle._group_alive(ours), "the child in the recorded process's group must go too"
        assert stranger.poll() is None, "a process serve did not start must be left alone"
        assert lifecycle.read_state(settings)["processes"] == {}
    finally:
        stranger.kill()
        stranger.wait()


def test_generated_files_name_the_storage_variable_not_its_value(settings: ServeSettings) -> None:
    write_files(settings)
    home = (settings.dagster_home / "dagster.yaml").read_text()
    assert "require_postgres: true" in home and "postgresql://" not in home
    workspace = settings.workspace.read_text()
    assert f"port: {settings.grpc_port}" in workspace and "grpc_server" in workspace
