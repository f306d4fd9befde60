"""Shared fixtures: the lab (brought up if needed, left running and usable) and a throwaway DAGSTER_HOME."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from regression_pipelines.lab.settings import REPO_ROOT, LabSettings
from tests.report_history import SeededHistory


@pytest.fixture(scope="session")
def lab() -> LabSettings:
    """The default lab (REGRESS_LAB_* env respected). `up` is idempotent: a healthy lab is kept as is."""
    from regression_pipelines.lab import lifecycle

    settings = LabSettings.from_env()
    lifecycle.up(settings, out=lambda _line: None)
    return settings


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private DAGSTER_HOME per test, so tests never see each other's runs or the user's."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("REGRESS_DAGSTER_PG_URL", raising=False)
    yield home


@pytest.fixture(scope="session")
def seeded_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededHistory]:
    """Four toy areas materialized round after round (clean, failed invariant, regression, skipped), once per
    session; tests materialize the reporting assets on it into their own folders."""
    import dagster as dg

    from tests.report_history import Seeder

    home = tmp_path_factory.mktemp("seeded_history")
    with dg.DagsterInstance.ephemeral(tempdir=str(home)) as instance:
        seeder = Seeder()
        areas = seeder.seed(instance)
        yield SeededHistory(instance, areas, seeder)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/integration and tests/e2e talks to real services: mark it `lab`."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts or "e2e" in parts:
            item.add_marker(pytest.mark.lab)
    os.environ.setdefault("REGRESS_TESTING", "1")
