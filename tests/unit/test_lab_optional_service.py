"""An optional service this machine cannot run (like a future Citus cluster without its extension) is
skipped by `up` and shown by `status` with how to install it, without making the lab unhealthy."""

from __future__ import annotations

from pathlib import Path

import pytest

from regression_pipelines.lab import lifecycle, services
from regression_pipelines.lab.errors import MissingBinaryError
from regression_pipelines.lab.service import Binary, LabService, PortClaim
from regression_pipelines.lab.settings import LabSettings

HINT = "citus for PostgreSQL 15 (build it, see LAB-NOTES)"


class NotInstalled(LabService):
    name = "citus"
    binaries = (Binary(Path("/nonexistent/citus.so"), HINT),)

    def __init__(self, optional: bool) -> None:
        self.optional = optional  # type: ignore[misc]

    def port_claims(self, s: LabSettings) -> list[PortClaim]:
        return [PortClaim("citus", 1, "postgres_port")]

    def start(self, s: LabSettings, process: str) -> int:
        raise AssertionError("an unavailable service is never started")

    def probe(self, s: LabSettings, process: str) -> tuple[bool, str]:
        raise AssertionError("an unavailable service is never probed")


class CitusLike(NotInstalled):
    """Available only when the extension is installed, with its own install hint (what a Citus module does)."""

    def available(self) -> tuple[bool, str]:
        return False, "not installed (no citus.control for PostgreSQL 15; build Citus 13.2.2, see LAB-NOTES)"


@pytest.fixture
def lab_with(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    def install(service: LabService) -> LabSettings:
        monkeypatch.setattr(services, "_registry", lambda: {"citus": service})
        return LabSettings(lab_dir=tmp_path / "lab")

    return install


def test_optional_and_unavailable_is_skipped_and_does_not_make_status_unhealthy(lab_with) -> None:  # type: ignore[no-untyped-def]
    s = lab_with(CitusLike(optional=True))
    lines: list[str] = []
    [timing] = lifecycle.up(s, out=lines.append)
    assert (timing.service, timing.action) == ("citus", "skipped")
    assert timing.detail.startswith("not installed (no citus.control for PostgreSQL 15; build Citus")
    [row] = lifecycle.status_rows(s)
    assert row["service"] == "citus" and row["healthy"] is None and row["detail"].startswith("not installed")
    assert "skipped" in lifecycle.format_table([row]) and lifecycle.healthy([row])
    assert not (s.lab_dir / "state.json").exists()


def test_a_required_service_that_is_not_installed_stops_up_with_the_package_to_install(lab_with) -> None:  # type: ignore[no-untyped-def]
    s = lab_with(NotInstalled(optional=False))
    with pytest.raises(MissingBinaryError, match="/nonexistent/citus.so .Debian package citus for PostgreSQL 15"):
        lifecycle.up(s, out=lambda _line: None)
    [row] = lifecycle.status_rows(s)
    assert row["healthy"] is False and not lifecycle.healthy([row])
