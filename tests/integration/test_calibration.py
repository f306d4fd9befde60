"""The calibration probe against the lab's real Redis and PostgreSQL: figures exist and are positive, a missing
instrument is reported unavailable (never a failure), and no password reaches a figure or a description.
No timing is asserted."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from regression_pipelines import calibration
from regression_pipelines.lab.settings import LAB_HOST, LabSettings
from resources.postgres import PostgresResource


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LAB_HOST, 0))
        return int(sock.getsockname()[1])


def _pg(lab: LabSettings) -> PostgresResource:
    return PostgresResource(
        port=lab.postgres_port, user=lab.postgres_user, password=lab.postgres_password, dbname=lab.postgres_db
    )


@pytest.fixture
def point_table(lab: LabSettings) -> Iterator[str]:
    name = f"calibration_{uuid.uuid4().hex[:8]}"
    with _pg(lab).connect() as conn:
        conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, value text)")
        conn.execute(f"INSERT INTO {name} SELECT g, 'v' || g FROM generate_series(0, 9) g")
    yield name
    with _pg(lab).connect() as conn:
        conn.execute(f"DROP TABLE {name}")


@pytest.fixture
def cached_key(lab: LabSettings) -> Iterator[str]:
    key = f"rp:calibration:{uuid.uuid4().hex[:8]}"
    client = redis.Redis(host=LAB_HOST, port=lab.redis_port)
    client.set(key, "1|v|v1", px=60_000)
    yield key
    client.delete(key)
    client.close()


def _no_secret_anywhere(reading: calibration.Calibration, secret: str) -> None:
    assert secret not in reading.describe() and secret not in reading.reason
    assert all(secret not in m.name for m in reading.metrics({"x.p50": 1.0}))


def test_redis_get_reports_positive_figures_and_a_ratio(lab: LabSettings, cached_key: str) -> None:
    reading = calibration.redis_get(LAB_HOST, lab.redis_port, cached_key, concurrency=2, requests=2000)
    assert reading.available, reading.reason
    assert reading.p50_ms > 0 and reading.p99_ms >= reading.p50_ms and reading.ops == 2000
    figures = {m.name: m for m in reading.metrics({"cache_aside.cache_read_p50": 0.5})}
    assert figures["calibration.redis_get_p50_ms"].kind.value == "performance"
    assert figures["calibration.cache_aside.cache_read_p50_ratio"].kind.value == "info"
    assert figures["calibration.cache_aside.cache_read_p50_ratio"].value > 0


def test_pgbench_reports_positive_figures_without_leaking_the_password(lab: LabSettings, point_table: str) -> None:
    script = f"\\set id random(0, 9)\nSELECT value FROM {point_table} WHERE id = :id;\n"
    pg = _pg(lab)
    reading = calibration.pgbench(
        pg.host, pg.port, pg.user, pg.dbname, script, concurrency=2, seconds=1, password=lab.postgres_password
    )
    assert reading.available, reading.reason
    assert reading.p50_ms > 0 and reading.ops > 0
    _no_secret_anywhere(reading, lab.postgres_password)


def test_a_wrong_password_is_unavailable_and_masked(lab: LabSettings) -> None:
    pg = _pg(lab)
    reading = calibration.pgbench(pg.host, pg.port, pg.user, pg.dbname, "SELECT 1;\n", 1, password="s3cr3t-wrong")
    assert not reading.available and reading.reason
    _no_secret_anywhere(reading, "s3cr3t-wrong")
    assert [m.name for m in reading.metrics()] == ["calibration.pgbench_select_available"]


def test_a_missing_instrument_is_reported_unavailable(lab: LabSettings, cached_key: str) -> None:
    for reading in (
        calibration.redis_get(LAB_HOST, lab.redis_port, cached_key, 1, binary="no-such-redis-benchmark"),
        calibration.pgbench(LAB_HOST, lab.postgres_port, "u", "d", "SELECT 1;", 1, binary="no-such-pgbench"),
    ):
        assert not reading.available
        assert "not found" in reading.reason
        (figure,) = reading.metrics({"x.p50": 1.0})
        assert figure.name.endswith("_available") and figure.value == 0


def test_a_password_protected_redis_is_unavailable_rather_than_exposed_in_ps(tmp_path: Path) -> None:
    """redis-benchmark 7.0 reads no password from its environment: the probe declines instead of using argv."""
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--bind", LAB_HOST, "--port", str(port), "--save", "", "--requirepass", "s3cr3t-redis"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        reading = calibration.redis_get(LAB_HOST, port, "k", 1, password="s3cr3t-redis")
        assert not reading.available and "command line" in reading.reason
        _no_secret_anywhere(reading, "s3cr3t-redis")
    finally:
        server.terminate()
        server.wait(10)


def test_an_unreachable_server_is_unavailable_with_a_reason() -> None:
    reading = calibration.pgbench(LAB_HOST, _free_port(), "regress", "regress", "SELECT 1;\n", 1)
    assert not reading.available and reading.reason
