"""The lab's Citus service is optional: available only when a private build of the asked-for Citus version is
installed (`make citus`), otherwise `up` skips it and `status` says how to get it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from regression_pipelines.lab import lifecycle, state
from regression_pipelines.lab.services import citus
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.matrix import citus_install


def _fake_install(cache: Path, version: str, pg_version: str = "15.20") -> Path:
    """A folder shaped like a finished private install (manifest, postgres binary, citus.control)."""
    root = cache / f"{version}-0123456789ab-pg{pg_version}"
    install = citus_install.CitusInstall(version, root)
    install.bin_dir.mkdir(parents=True)
    install.postgres.write_text("")
    install.extension_dir.mkdir(parents=True)
    (install.extension_dir / "citus.control").write_text("default_version = '13.2-1'\n")
    manifest = {"version": version, "sha256": "0123456789ab" + "0" * 52, "pg_version": pg_version}
    (root / citus_install.MANIFEST).write_text(json.dumps(manifest))
    return root


def test_without_a_build_it_is_not_installed_with_a_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGRESS_CITUS_CACHE", str(tmp_path))
    monkeypatch.setenv("REGRESS_LAB_CITUS_VERSION", "13.2.0")
    ok, reason = citus.SERVICE.available()
    assert not ok and citus.SERVICE.optional
    assert reason.startswith(f"not installed (no build of citus 13.2.0 in {tmp_path}). Debian has no Citus package")
    assert "`make citus`" in reason and "REGRESS_CITUS_SOURCES" in reason
    root = _fake_install(tmp_path, "13.2.0")
    assert citus.SERVICE.available() == (True, f"citus 13.2.0 ({root})")


def test_versions_live_side_by_side_with_their_own_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGRESS_CITUS_CACHE", str(tmp_path))
    old, new = _fake_install(tmp_path, "13.2.0"), _fake_install(tmp_path, "13.2.2")
    assert citus.resolve("13.2.0").root == old and citus.resolve("13.2.2").root == new  # type: ignore[union-attr]
    assert citus.resolve("13.1.9") is None
    a, b = (LabSettings(lab_dir=tmp_path / "lab", citus_version=v) for v in ("13.2.0", "13.2.2"))
    assert citus.node_dir(a, "citus-worker1") == tmp_path / "lab" / "citus" / "13.2.0" / "worker1"
    assert citus.node_dir(a, "citus-worker1") != citus.node_dir(b, "citus-worker1")
    monkeypatch.setenv("REGRESS_LAB_CITUS_VERSION", "13.2.2")
    assert LabSettings.from_env().citus_version == "13.2.2"


def test_status_row_when_absent_is_skipped_not_unhealthy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGRESS_CITUS_CACHE", str(tmp_path))
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


def test_a_node_running_another_install_fails_its_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`up` restarts a node whose probe fails: a node of the old version is how a version switch happens."""
    monkeypatch.setenv("REGRESS_CITUS_CACHE", str(tmp_path))
    _fake_install(tmp_path, "13.2.0")
    s = LabSettings(lab_dir=tmp_path / "lab", citus_version="13.2.0")
    state.record_service(s, "citus-worker1", pid=os.getpid(), ports={"pg": 1}, started_by_lab=True)
    ok, detail = citus.SERVICE.probe(s, "citus-worker1")  # this process's binary is python, not the install
    assert not ok and detail.startswith(f"runs {Path(sys.executable).resolve()}, not citus 13.2.0 (")
