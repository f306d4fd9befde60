"""Dagster's instance on PostgreSQL (dagster-postgres), on a throwaway server that is not a lab server."""

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from regression_pipelines.instance_storage import PG_URL_ENV
from regression_pipelines.lab.settings import REPO_ROOT, LabSettings

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(*args: str) -> list[str]:
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *args]


@pytest.fixture
def storage_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private PostgreSQL 15 for Dagster's storage, removed afterwards."""
    data = Path(f"/tmp/rp-dagster-pg-{uuid.uuid4().hex[:8]}")
    data.mkdir(mode=0o700)
    shutil.chown(data, "postgres", "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"),
        check=True,
        capture_output=True,
    )
    subprocess.run(
        _as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-o",
            f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
            "-l",
            str(data / "log"),
            "start",
        ),
        check=True,
        capture_output=True,
    )
    try:
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 20
        while True:
            try:
                psycopg.connect(url).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        subprocess.run(_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"), capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


@dg.op
def say_hello() -> str:
    return "hello"


@dg.job
def storage_probe_job() -> None:
    say_hello()


@pytest.mark.lab
def test_job_runs_with_dagster_storage_on_postgres(
    storage_postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv(PG_URL_ENV, storage_postgres)
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = storage_probe_job.execute_in_process(instance=instance)
        assert result.success
    with psycopg.connect(storage_postgres) as conn:
        (status,) = conn.execute("SELECT status FROM runs WHERE run_id = %s", (result.run_id,)).fetchone()
    assert status == "SUCCESS"
    assert not list(home.rglob("*.db")), "no SQLite database may be created when PostgreSQL is selected"


def test_sqlite_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv(PG_URL_ENV, raising=False)
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert storage_probe_job.execute_in_process(instance=instance).success
    assert list(home.rglob("runs.db"))


def test_lab_server_is_refused_as_dagster_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    rw_port = LabSettings.from_env().haproxy_rw_port
    monkeypatch.setenv(PG_URL_ENV, f"postgresql://regress:topsecret@127.0.0.1:{rw_port}/regress")
    with pytest.raises(Exception, match="lab server under test") as info:
        dg.DagsterInstance.get()
    assert "topsecret" not in str(info.value)
    assert os.environ[PG_URL_ENV]  # untouched
