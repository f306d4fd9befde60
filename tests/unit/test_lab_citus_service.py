"""The lab's Citus service is optional: available only when citus.control is installed for PostgreSQL 15,
otherwise `up` skips it and `status` says how to get it (what CI, which has no Citus, sees)."""

from __future__ import annotations

from pathlib import Path

import pytest

from regression_pipelines.lab import lifecycle
from regression_pipelines.lab.services import citus
from regression_pipelines.lab.settings import LabSettings


def test_without_the_extension_it_is_not_installed_with_a_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGRESS_LAB_CITUS_EXTENSION_DIR", str(tmp_path))
    ok, reason = citus.SERVICE.available()
    assert not ok and citus.SERVICE.optional
    assert reason.startswith(f"not installed (no {tmp_path}/citus.control). Debian has no Citus package: build")
    (tmp_path / "citus.control").write_text("default_version = '13.2-1'\n")
    assert citus.SERVICE.available() == (True, "installed")


def test_status_row_when_absent_is_skipped_not_unhealthy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGRESS_LAB_CITUS_EXTENSION_DIR", str(tmp_path))
    s = LabSettings(lab_dir=tmp_path / "lab")
    [job] = lifecycle._status_jobs(s, citus.SERVICE, {})
    row = job()
    assert row is not None and (row["service"], row["healthy"]) == ("citus", None)
    assert "citus: " not in row["detail"] and row["detail"].startswith("not installed")
    assert "skipped" in lifecycle.format_table([row]) and lifecycle.healthy([row])


def test_three_nodes_on_their_own_ports_shifted_by_the_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGRESS_LAB_PORT_OFFSET", "700")
    s = LabSettings.from_env()
    claims = citus.SERVICE.port_claims(s)
    assert [(c.service, c.port, c.setting) for c in claims] == [
        ("citus-coordinator", 16136, "citus_ports"),
        ("citus-worker1", 16137, "citus_ports"),
        ("citus-worker2", 16138, "citus_ports"),
    ]
    assert citus.SERVICE.endpoint(s)["port"] == 16136
