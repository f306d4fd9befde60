"""deploy/compose/dagster.yaml against a real PostgreSQL (a fresh database on the lab's dagster_storage server):
the chart-style `postgres_db` settings with credentials from the environment load, store a run and its events
(dagster-postgres NOTIFYs on every event: the psycopg2 scheme is what makes that work)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from regression_pipelines.lab.settings import REPO_ROOT, LabSettings


@pytest.fixture
def fresh_db(lab: LabSettings) -> Iterator[str]:
    name = f"deploy_{uuid.uuid4().hex[:8]}"
    admin = {"host": str(lab.lab_dir / "dagster_storage"), "port": lab.dagster_storage_port, "user": "postgres"}
    with psycopg.connect(dbname="postgres", autocommit=True, **admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{lab.dagster_storage_user}"')
    yield name
    with psycopg.connect(dbname="postgres", autocommit=True, **admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dg.op
def noop() -> int:
    return 1


@dg.job
def compose_probe() -> None:
    noop()


def test_compose_instance_config_stores_runs_in_postgres(
    lab: LabSettings, fresh_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "deploy" / "compose" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_DB", fresh_db)
    monkeypatch.setenv("DAGSTER_PG_USERNAME", lab.dagster_storage_user)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", lab.dagster_storage_password)
    text = (home / "dagster.yaml").read_text().replace("port: 5432", f"port: {lab.dagster_storage_port}")
    (home / "dagster.yaml").write_text(text)
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = compose_probe.execute_in_process(instance=instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS
    assert not list(home.rglob("*.db"))
