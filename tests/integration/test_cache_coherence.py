"""The cache-coherence area against the lab's real PostgreSQL and Redis, with each fault's failing twin."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from assets.cache_coherence import scenario
from assets.cache_coherence.config import CacheConfig
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.measure import NO_OPERATION_ERRORS
from regression_pipelines.results import ScenarioResult
from resources.postgres import PostgresResource
from resources.redis import RedisResource

FAST = {"max_seconds": 1.0, "max_ops": 6000, "settle_seconds": 0.3}


def _pg(lab: LabSettings) -> PostgresResource:
    return PostgresResource(
        port=lab.postgres_port, user=lab.postgres_user, password=lab.postgres_password, dbname=lab.postgres_db
    )


def _run(lab: LabSettings, **overrides: object) -> ScenarioResult:
    config = CacheConfig(**{**FAST, **overrides})
    return scenario.run(config, _pg(lab).connect, RedisResource(port=lab.redis_port).client())


def _passed(result: ScenarioResult) -> dict[str, bool]:
    return {inv.name: inv.passed for inv in result.invariants}


def test_clean_run_passes_every_check_and_reports_figures(lab: LabSettings) -> None:
    result = _run(lab)
    expected = dict.fromkeys((*scenario.INVARIANTS, NO_OPERATION_ERRORS), True)
    assert _passed(result) == expected, [i.detail for i in result.invariants]
    assert result.metric("error_rate").value == 0
    for mode in ("cache_aside", "write_through"):
        assert result.metric(f"{mode}.reads").value > 100
        assert result.metric(f"{mode}.writes").value > 10
        assert 0.5 < result.metric(f"{mode}.hit_ratio").value <= 1.0
        assert result.metric(f"{mode}.divergent_keys").value == 0
        assert result.metric(f"{mode}.cache_read_p50_ms").value > 0
    assert result.environment["redis_version"].startswith("7.")


def test_skipped_invalidation_fails_divergence_and_stale_read_checks(lab: LabSettings) -> None:
    result = _run(lab, fault="skip_invalidation")
    passed = _passed(result)
    assert not passed["no_divergence_after_settle"]
    assert not passed["stale_read_rate_within_bound"]
    assert passed["ttl_expiry_honoured"]
    assert result.metric("cache_aside.divergent_keys").value > 0


def test_delayed_invalidation_fails_stale_read_check_but_converges(lab: LabSettings) -> None:
    result = _run(lab, fault="delay_invalidation", delay_invalidation_ms=60)
    passed = _passed(result)
    assert not passed["stale_read_rate_within_bound"]
    assert passed["no_divergence_after_settle"], "delayed invalidations land before the settle check"
    assert result.metric("cache_aside.staleness_max_ms").value >= 30


def test_missing_ttl_fails_ttl_check(lab: LabSettings) -> None:
    result = _run(lab, fault="no_ttl", modes=("cache_aside",))
    assert not _passed(result)["ttl_expiry_honoured"]
    assert "no expiry" in result.invariant("ttl_expiry_honoured").detail


def test_run_leaves_no_tables_or_keys_behind(lab: LabSettings) -> None:
    pg, cache = _pg(lab), RedisResource(port=lab.redis_port).client()
    with pg.connect() as conn:
        before = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'cache_items_%'").fetchone()[0]
    _run(lab, fault="skip_invalidation", modes=("write_through",))
    with pg.connect() as conn:
        after = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'cache_items_%'").fetchone()[0]
    assert after == before
    assert not [k for k in cache.scan_iter(match="rp:cache:*", count=1000)]


def test_wrong_password_names_resource_and_field_without_the_password(lab: LabSettings) -> None:
    bad = PostgresResource(port=lab.postgres_port, user=lab.postgres_user, password="wrong-pw-4711")
    with pytest.raises(Exception) as info:
        bad.connect()
    message = str(info.value)
    assert "PostgresResource.password" in message and "REGRESS_PG_PASSWORD" in message
    assert "wrong-pw-4711" not in message and lab.postgres_password not in message


def test_lab_postgres_really_enforces_passwords(lab: LabSettings) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host="127.0.0.1", port=lab.postgres_port, user=lab.postgres_user, password="nope")


def _failed(result: ScenarioResult) -> dict[str, str]:
    return {inv.name: inv.detail for inv in result.invariants if not inv.passed}


@pytest.fixture
def redis_out_of_memory(lab: LabSettings) -> Iterator[None]:
    """The real misconfiguration: maxmemory below what Redis already uses, with noeviction."""
    cache = RedisResource(port=lab.redis_port).client()
    saved = {k: cache.config_get(k)[k] for k in ("maxmemory", "maxmemory-policy")}
    used = int(cache.info("memory")["used_memory"])
    cache.config_set("maxmemory-policy", "noeviction")
    cache.config_set("maxmemory", used // 2)
    try:
        yield
    finally:
        cache.config_set("maxmemory", saved["maxmemory"])
        cache.config_set("maxmemory-policy", saved["maxmemory-policy"])


@pytest.mark.usefixtures("redis_out_of_memory")
def test_redis_out_of_memory_is_measured_not_thrown(lab: LabSettings) -> None:
    """Failing twin of no_operation_errors: every cache write answers OOM; the run still reports its figures."""
    result = _run(lab)
    failed = _failed(result)
    assert set(failed) == {NO_OPERATION_ERRORS}, failed
    assert "OutOfMemoryError: command not allowed when used memory > 'maxmemory'" in failed[NO_OPERATION_ERRORS]
    assert result.metric("error_rate").value > 0.05  # every fill failed; the latency phase's GETs did not
    assert result.metric("cache_aside.reads").value > 100  # reads were served from the database meanwhile
    assert result.metric("cache_aside.hit_ratio").value == 0


def test_postgres_refusing_connections_half_way_is_measured_not_thrown(lab: LabSettings) -> None:
    """Failing twin of no_operation_errors: mid-run, the workers' sessions are terminated and the role's connection
    limit refuses them back; the area still reports figures and names the errors."""
    admin = psycopg.connect(
        host=str(lab.lab_dir / "postgres"), port=lab.postgres_port, user="postgres", dbname="postgres", autocommit=True
    )
    stop = threading.Event()

    workers = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cache_coherence.worker'"

    def refuse_half_way() -> None:
        while not stop.is_set() and not admin.execute(workers).fetchone()[0]:  # the workload has started
            time.sleep(0.02)
        time.sleep(0.2)
        admin.execute(f"ALTER ROLE {lab.postgres_user} CONNECTION LIMIT 1")  # the run's own session stays
        while not stop.wait(0.05):
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'cache_coherence.worker'"
            )

    saboteur = threading.Thread(target=refuse_half_way, daemon=True)
    saboteur.start()
    try:
        result = _run(lab, modes=["cache_aside"], max_seconds=1.5, max_ops=1_000_000)  # time-bound
    finally:
        stop.set()
        saboteur.join(5)
        admin.execute(f"ALTER ROLE {lab.postgres_user} CONNECTION LIMIT -1")
        admin.close()
    failed = _failed(result)
    assert set(failed) == {NO_OPERATION_ERRORS}, failed
    assert (
        "terminating connection" in failed[NO_OPERATION_ERRORS] or "too many connections" in failed[NO_OPERATION_ERRORS]
    )
    assert result.metric("cache_aside.reads").value > 0 and result.metric("error_rate").value > 0
