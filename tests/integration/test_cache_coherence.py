"""The cache-coherence area against the lab's real PostgreSQL and Redis, with each fault's failing twin.

Runs go through the kit (`run_area`: the supervisor, its phases and cleanup), as the asset does."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from assets.cache_coherence import AREA, scenario
from regression_pipelines.kit import NO_LEFTOVERS, RUN_COMPLETED, RunContext, run_area
from regression_pipelines.kit.observe import postgres as pg_observe
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.measure import NO_OPERATION_ERRORS
from regression_pipelines.results import ScenarioResult
from resources.postgres import PostgresResource
from resources.redis import RedisResource

FAST = {
    "max_seconds": 1.0, "max_ops": 6000, "settle_seconds": 0.3, "latency_seconds": 0.2, "calibrate": False,
    "shrink_seconds": 3.0,
}  # fmt: skip
CHECKS = (*scenario.INVARIANTS, NO_OPERATION_ERRORS, RUN_COMPLETED, NO_LEFTOVERS)


def _pg(lab: LabSettings) -> PostgresResource:
    return PostgresResource(
        port=lab.postgres_port, user=lab.postgres_user, password=lab.postgres_password, dbname=lab.postgres_db
    )


def _run(lab: LabSettings, out: Path, **overrides: object) -> ScenarioResult:
    config = AREA.config.model_validate({**FAST, "seed": 11, **overrides})
    resources = {"postgres": _pg(lab), "redis": RedisResource(port=lab.redis_port)}
    return run_area(AREA, config, RunContext("test", resources, out))


def _passed(result: ScenarioResult) -> dict[str, bool]:
    return {inv.name: inv.passed for inv in result.invariants}


def _failed(result: ScenarioResult) -> dict[str, str]:
    return {inv.name: inv.detail for inv in result.invariants if not inv.passed}


def _leftovers(lab: LabSettings) -> tuple[int, list[bytes]]:
    with _pg(lab).connect() as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'cache_items_%'").fetchone()[0]
    keys = list(RedisResource(port=lab.redis_port).client().scan_iter(match="rp:cache:*", count=1000))
    return tables, keys


def test_clean_run_passes_every_check_reports_figures_and_coverage(lab: LabSettings, tmp_path: Path) -> None:
    tables_before, _ = _leftovers(lab)
    result = _run(lab, tmp_path, calibrate=True)
    assert _passed(result) == dict.fromkeys(CHECKS, True), _failed(result)
    assert result.metric("error_rate").value == 0
    for mode in ("cache_aside", "write_through"):
        assert result.metric(f"{mode}.reads").value > 20  # no timing asserted: the host is shared
        assert result.metric(f"{mode}.writes").value > 5
        assert result.metric(f"{mode}.reads_checked").value >= result.metric(f"{mode}.reads").value
        assert result.metric(f"{mode}.divergent_keys").value == 0
        assert result.metric(f"{mode}.cache_read_p50_ms").value > 0
    for instrument in ("redis_get", "pgbench_select"):  # the names the regression verdicts read
        assert result.metric(f"calibration.{instrument}_p50_ms").value > 0
    assert result.metric("coverage.shapes_exercised").value >= 6
    coverage = json.loads(str(result.environment["coverage"]))
    assert {"binary", "large", "resp_like", "empty"} <= set(coverage["values"]["value"])
    assert result.environment["seed"] == 11 and result.environment["redis_version"].startswith("7.")
    assert _leftovers(lab) == (tables_before, [])


def test_skipped_invalidation_fails_divergence_and_stale_reads_and_is_shrunk(lab: LabSettings, tmp_path: Path) -> None:
    # a bound, not a duration: shrinking stops when done (seconds when idle); a host at load 20 needed more than 20 s
    result = _run(lab, tmp_path, fault="skip_invalidation", modes=["cache_aside"], shrink_seconds=180)
    failed = _failed(result)
    assert {"no_divergence_after_settle", "stale_read_rate_within_bound"} <= set(failed), failed
    assert "fault=skip_invalidation was injected" in failed["stale_read_rate_within_bound"]
    assert result.metric("cache_aside.divergent_keys").value > 0
    assert "shrunk to" in failed["stale_read_rate_within_bound"], failed["stale_read_rate_within_bound"]
    case = json.loads((tmp_path / "cache_coherence_cache_aside_stale_read_rate_within_bound_shrunk.json").read_text())
    assert case["reproduced"] and 2 <= len(case["operations"]) <= 4, case["operations"]  # fill, write, stale read
    assert "shrunk to" in failed["stale_read_rate_within_bound"]
    assert not [d for d in failed.values() if "outside writer" in d], failed  # the run's own writes, all counted


def test_delayed_invalidation_fails_stale_read_check_but_converges(lab: LabSettings, tmp_path: Path) -> None:
    result = _run(lab, tmp_path, fault="delay_invalidation", delay_invalidation_ms=60, seed=3, modes=["cache_aside"])
    passed = _passed(result)
    assert not passed["stale_read_rate_within_bound"]
    assert passed["no_divergence_after_settle"], "delayed invalidations land before the settle check"
    assert result.metric("cache_aside.staleness_max_ms").value >= 30


@pytest.mark.parametrize(("fault", "expected"), [("no_ttl", "no expiry"), ("ttl_unit_mixup", "expire later than")])
def test_ttl_faults_fail_the_ttl_check(lab: LabSettings, tmp_path: Path, fault: str, expected: str) -> None:
    result = _run(lab, tmp_path, fault=fault, modes=["write_through"])
    failed = _failed(result)
    assert set(failed) == {"ttl_expiry_honoured"}, failed
    assert expected in failed["ttl_expiry_honoured"]


def test_lossy_values_fail_values_intact(lab: LabSettings, tmp_path: Path) -> None:
    """Failing twin of values_intact: a text-only cache serializer mangles binary values (UTF-8 replacement)."""
    result = _run(lab, tmp_path, fault="lossy_values", modes=["write_through"])
    failed = _failed(result)
    assert set(failed) == {"values_intact"}, failed
    assert "wrong_bytes" in failed["values_intact"] and "from cache" in failed["values_intact"]
    assert "outside writer" not in failed["values_intact"]  # write-through's upserts, all accounted for
    assert result.metric("write_through.value_mismatches").value > 0


def test_wrong_password_names_resource_and_field_without_the_password(lab: LabSettings) -> None:
    bad = PostgresResource(
        port=lab.postgres_port, user=lab.postgres_user, password="wrong-pw-4711", dbname=lab.postgres_db
    )
    with pytest.raises(Exception) as info:
        bad.connect()
    message = str(info.value)
    assert "PostgresResource.password" in message and "REGRESS_PG_PASSWORD" in message
    assert "wrong-pw-4711" not in message and lab.postgres_password not in message


def test_lab_postgres_really_enforces_passwords(lab: LabSettings) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host="127.0.0.1", port=lab.postgres_port, user=lab.postgres_user, password="nope")


@pytest.fixture
def redis_limit(lab: LabSettings) -> Iterator[object]:
    """Sets maxmemory relative to what Redis uses now; the previous settings are restored whatever happens."""
    cache = RedisResource(port=lab.redis_port).client()
    saved = {k: cache.config_get(k)[k] for k in ("maxmemory", "maxmemory-policy")}

    def limit(policy: str, headroom: int = 0, fraction: float = 1.0) -> None:
        used = int(cache.info("memory")["used_memory"])
        cache.config_set("maxmemory-policy", policy)
        cache.config_set("maxmemory", int(used * fraction) + headroom)

    try:
        yield limit
    finally:
        cache.config_set("maxmemory", saved["maxmemory"])
        cache.config_set("maxmemory-policy", saved["maxmemory-policy"])


def test_redis_out_of_memory_is_measured_not_thrown(lab: LabSettings, tmp_path: Path, redis_limit) -> None:  # noqa: ANN001
    """Failing twin of no_operation_errors: maxmemory below what Redis uses, noeviction: every cache write answers
    OOM; the run still reports its figures, and the detail names what the server showed."""
    redis_limit("noeviction", fraction=0.5)
    result = _run(lab, tmp_path, modes=["cache_aside"])
    failed = _failed(result)
    assert set(failed) == {NO_OPERATION_ERRORS}, failed
    assert "OutOfMemoryError: command not allowed when used memory > 'maxmemory'" in failed[NO_OPERATION_ERRORS]
    assert "maxmemory-policy noeviction" in failed[NO_OPERATION_ERRORS]
    assert result.metric("error_rate").value > 0.05
    assert result.metric("cache_aside.reads").value > 0  # reads were served from the database meanwhile
    assert result.metric("cache_aside.hit_ratio").value == 0


def test_maxmemory_just_above_use_ends_in_a_verdict_naming_the_cause(
    lab: LabSettings,
    tmp_path: Path,
    redis_limit,  # noqa: ANN001
) -> None:
    """Issue 17's fault: 20 kB of headroom with allkeys-random crashed the run in calibration (0 checks, 0 figures).
    Now every phase measures its errors, the instruments still run, and the detail names the server's limit."""
    redis_limit("allkeys-random", headroom=20_000)
    result = _run(lab, tmp_path, calibrate=True, modes=["cache_aside"])
    passed = _passed(result)
    assert passed[RUN_COMPLETED] and passed[NO_LEFTOVERS], _failed(result)
    assert not passed[NO_OPERATION_ERRORS]
    detail = result.invariant(NO_OPERATION_ERRORS).detail
    assert "OutOfMemoryError" in detail and "maxmemory-policy allkeys-random" in detail, detail
    assert result.metric("calibration.redis_get_available").value in (0, 1)
    assert result.metric("cache_aside.reads").value > 0


def test_postgres_refusing_connections_half_way_is_measured_not_thrown(lab: LabSettings, tmp_path: Path) -> None:
    """Failing twin of no_operation_errors: mid-run, the workers' sessions are terminated and the role's connection
    limit refuses them back; the area still reports figures and names the errors."""
    admin = psycopg.connect(
        host=str(lab.lab_dir / "postgres"), port=lab.postgres_port, user="postgres", dbname="postgres", autocommit=True
    )
    stop = threading.Event()

    workers = (
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'regression_pipelines.cache_coherence.worker'"
    )

    def refuse_half_way() -> None:
        while not stop.is_set() and not admin.execute(workers).fetchone()[0]:  # the workload has started
            time.sleep(0.02)
        time.sleep(0.2)
        admin.execute(f"ALTER ROLE {lab.postgres_user} CONNECTION LIMIT 1")
        until = time.monotonic() + 0.8  # within the 1.5 s workload; the judge phases connect again afterwards
        while not stop.wait(0.05) and time.monotonic() < until:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'regression_pipelines.cache_coherence.worker'"
            )
        admin.execute(f"ALTER ROLE {lab.postgres_user} CONNECTION LIMIT -1")

    saboteur = threading.Thread(target=refuse_half_way, daemon=True)
    saboteur.start()
    try:
        result = _run(lab, tmp_path, modes=["cache_aside"], max_seconds=1.5, max_ops=1_000_000)  # time-bound
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


def test_a_trigger_dropping_rows_is_named_in_the_failing_check(lab: LabSettings, tmp_path: Path) -> None:
    """Failing twin of the PostgreSQL observer: a trigger (the kit's nemesis) that silently skips one write in ten
    on the cache table fails no_operation_errors, and the detail names the trigger PostgreSQL showed, not a guess;
    on a clean run nothing is looked at (observed: 'not looked')."""
    nemesis = {"nemesis": "postgres_drop_rows_trigger", "nemesis_at_s": 0.0, "nemesis_for_s": 30.0}
    result = _run(lab, tmp_path, modes=["cache_aside"], max_seconds=1.5, **nemesis)
    assert result.environment["nemesis_outcome"] == "acted", result.environment
    failed = _failed(result)
    assert NO_OPERATION_ERRORS in failed, failed
    assert "observed on postgres: trigger regress_nemesis_drop_rows added on" in failed[NO_OPERATION_ERRORS]
    assert "RETURN NULL" in failed[NO_OPERATION_ERRORS]
    assert _leftovers(lab) == (0, [])


def test_an_outside_writer_behind_the_caches_back_is_named_in_the_failing_check(
    lab: LabSettings, tmp_path: Path
) -> None:
    """Failing twin of the outside-writer cause: the kit's nemesis deletes and edits rows of the cache's table from
    its own short-lived sessions; the failed check names the rows PostgreSQL counted beyond the run's own writes
    (pg_stat_user_tables), never "unexplained", and the nemesis's own tally agrees with what is named."""
    nemesis = {"nemesis": "postgres_outside_writer", "nemesis_at_s": 0.0, "nemesis_for_s": 30.0}
    result = _run(lab, tmp_path, modes=["cache_aside"], max_seconds=1.5, **nemesis)
    assert result.environment["nemesis_outcome"] == "acted", result.environment
    failed = _failed(result)
    assert failed, "rows deleted and edited behind the cache's back must fail a check"
    detail = next(iter(failed.values()))
    assert "observed on postgres: an outside writer changed rows of cache_items_" in detail, detail
    assert "beyond the run's own writes (pg_stat_user_tables counted" in detail
    assert "unexplained" not in detail.split("observed on redis")[0]
    tally = re.search(r"deleted (\d+) rows, edited (\d+)", str(result.environment["nemesis_did"]))
    assert tally is not None, result.environment["nemesis_did"]
    deleted, edited = int(tally[1]), int(tally[2])
    named = re.search(r"changed rows of cache_items_\w+: ([^(]+) beyond", detail)
    assert named is not None
    assert named[1].strip() == pg_observe.RowWrites(0, edited, deleted).describe(), (named[1], tally[0])
    seen = "sessions seen writing it (RowExclusiveLock): pid " in detail
    assert seen or "no outside session was seen holding a write lock on it" in detail
    if seen:
        assert "(regress_nemesis) as postgres" in detail
    assert _leftovers(lab) == (0, [])


def test_a_redis_client_pause_mid_workload_shows_as_the_slowest_operation(lab: LabSettings, tmp_path: Path) -> None:
    """An operator's `CLIENT PAUSE 1500 ALL` (a failover step; nobody's nemesis) mid-workload: coherence holds, so
    every check passes, and the stall is in the figures: an operation in flight waited out the pause, while the
    latency phase's percentiles (measured later) cannot show it."""
    client = RedisResource(port=lab.redis_port).client()

    def pause_once_the_workload_writes() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not client.dbsize():  # the run's keys (values are bytes: no SCAN)
            time.sleep(0.05)
        time.sleep(0.2)
        client.execute_command("CLIENT", "PAUSE", "1500", "ALL")

    pauser = threading.Thread(target=pause_once_the_workload_writes, daemon=True)
    pauser.start()
    result = _run(lab, tmp_path, modes=["cache_aside"], max_seconds=4.0, max_ops=1_000_000)  # 4 s of workload
    pauser.join(timeout=70)
    assert _failed(result) == {}
    slowest = result.metric("cache_aside.slowest_op_ms").value
    assert slowest >= 1000, (slowest, result.environment.get("cache_aside.slowest_op"))
    assert re.fullmatch(r"\w+ \(\d+\.\d ms\)", str(result.environment["cache_aside.slowest_op"]))
    assert _leftovers(lab) == (0, [])
