"""The Citus area on the lab's real Citus cluster: a clean run passes every check through the real asset,
each real fault fails exactly its check and is undone, and a mismatch is shrunk by replaying on the real
systems. Skipped, with the reason, where Citus is not installed (CI: Debian has no Citus package)."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from assets.citus_sharding import AREA, cluster
from assets.citus_sharding.compare import Verdict
from assets.citus_sharding.oracle import Pair, minimal_sequence, replayer
from assets.citus_sharding.scenario import DIFFERENTIAL_MATCHES
from assets.citus_sharding.workload import SCHEMA, Generator, Statement
from regression_pipelines.kit import RunContext
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.perf_check import PERF_CHECK_NAME
from regression_pipelines.results import ScenarioResult
from resources.citus import CitusResource, CitusUnavailable
from resources.postgres import PostgresResource
from tests.areas import materialize_area

SMALL = {
    "accounts": 120,
    "orders_per_account": 2,
    "statements": 80,
    "copy_rows": 300,
    "router_queries": 30,
    "multi_shard_queries": 6,
    "join_queries": 3,
}


@pytest.fixture(scope="module")
def citus(lab: LabSettings) -> CitusResource:
    resource = CitusResource(
        port=lab.citus_ports[0],
        user=lab.postgres_user,
        password=lab.postgres_password,
        dbname=lab.postgres_db,
        superuser_password=lab.citus_superuser_password,
    )
    try:
        resource.probe()
    except CitusUnavailable as absent:
        pytest.skip(f"Citus is not installed for the lab's PostgreSQL 15 ({absent.reason})")
    return resource


@pytest.fixture(scope="module")
def postgres(lab: LabSettings) -> PostgresResource:
    return PostgresResource(
        port=lab.postgres_port, user=lab.postgres_user, password=lab.postgres_password, dbname=lab.postgres_db
    )


def _run(citus: CitusResource, postgres: PostgresResource, tmp_path: Path, **settings: object) -> ScenarioResult:
    ctx = RunContext(
        run_id=f"test{time.time_ns()}", resources={"citus": citus, "postgres": postgres}, output_dir=tmp_path
    )
    return AREA.run(AREA.config(**{**SMALL, **settings}), ctx)


def _failed(result: ScenarioResult) -> dict[str, str]:
    return {inv.name: inv.detail for inv in result.invariants if not inv.passed}


def _assert_clean(citus: CitusResource, postgres: PostgresResource, schema: str) -> None:
    """The run's schema is gone on both sides, no prepared transaction is left, and the metadata is whole."""
    query = "SELECT count(*) FROM pg_namespace WHERE nspname LIKE %s"
    with citus.connect() as conn:
        assert conn.execute(query, (f"{schema}%",)).fetchone()[0] == 0
        assert cluster.leftovers(conn).passed and cluster.hash_ranges(conn).passed
    with postgres.connect() as conn:
        assert conn.execute(query, (f"{schema}%",)).fetchone()[0] == 0


def test_clean_run_passes_every_check_through_the_asset(
    citus: CitusResource, postgres: PostgresResource, dagster_home: Path
) -> None:
    result = materialize_area(AREA, dagster_home, resources={"citus": citus, "postgres": postgres}, config=SMALL)
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {*AREA.checks, PERF_CHECK_NAME}
    assert {name for name, e in checks.items() if not e.passed} == set()
    [materialization] = result.asset_materializations_for_node("citus_sharding")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["metric/differential.statements_compared"] == 80
    assert metadata["metric/differential.mismatches"] == 0
    for name in (
        "router.latency_p50_ms",
        "multi_shard.latency_p99_ms",
        "colocated_join.ratio_to_vanilla",
        "calibration.pgbench_router_select_p50_ms",  # pgbench's router query on the coordinator, right before
        "calibration.router.latency_p50_ratio",
    ):
        assert metadata[f"metric/{name}"] > 0
    assert metadata["metric/copy.rows_per_s"] > 0 and metadata["metric/shards.skew"] >= 1
    assert metadata["env/citus_version"].startswith("Citus 13.")
    _assert_clean(citus, postgres, metadata["env/schema"])


@pytest.mark.parametrize(
    ("fault", "check", "says"),
    [
        ("wrong_shard_row", cluster.ROWS_IN_RIGHT_SHARD, "1 of "),
        ("leftover_prepared", cluster.NO_LEFTOVERS, "prepared transaction 'regress_leftover_regress_citus_"),
        ("metadata_gap", cluster.HASH_RANGES_COVER_INT32, ".accounts: gap ["),
        ("dropped_shard", cluster.PLACEMENTS_ACTIVE, "does not exist"),
        ("lost_row", DIFFERENTIAL_MATCHES, "did not come back when"),
    ],
)
def test_each_real_fault_fails_exactly_its_check_and_is_undone(
    citus: CitusResource, postgres: PostgresResource, tmp_path: Path, fault: str, check: str, says: str
) -> None:
    result = _run(citus, postgres, tmp_path, fault=fault)
    failed = _failed(result)
    assert list(failed) == [check], failed
    assert says in failed[check]
    _assert_clean(citus, postgres, str(result.environment["schema"]))


def test_a_mismatch_is_shrunk_to_the_statements_it_needs_by_replaying(
    citus: CitusResource, postgres: PostgresResource
) -> None:
    """A query that tells the servers apart (inet_server_port) only once a row exists: the minimal sequence is
    the INSERT that creates the row, then the query, out of a prefix of unrelated statements."""
    gen = Generator(3, 20, 1)
    initial = gen.initial_rows()
    noise = [s for s in gen.mix(30) if s.query or s.kind == "update_reference"][:10]
    insert = Statement(100, "insert_accounts", f"INSERT INTO {SCHEMA}.accounts VALUES (999999, 1, 1.00, 'probe')")
    target = Statement(
        101, "router", f"SELECT id, inet_server_port() FROM {SCHEMA}.accounts WHERE id = 999999", query=True
    )
    schema = f"regress_citus_replay{time.time_ns() % 10**6}"
    with citus.connect() as c, postgres.connect(autocommit=False) as v:
        pair = Pair(c, v, schema, 4)
        try:
            pair.create(initial)
            for stmt in [*noise[:5], insert, *noise[5:], target]:
                pair.apply(stmt)
            assert pair.steps[-1].judgement.verdict is Verdict.MISMATCH
            shows = replayer(c, v, schema, 4, initial, time.monotonic() + 60)
            found = minimal_sequence(pair.steps, len(pair.steps) - 1, shows, budget=16)
        finally:
            pair.drop()
    assert found.reproduced and found.complete
    assert [s.index for s in found.steps] == [100, 101]
    _assert_clean(citus, postgres, schema)


def test_a_role_that_cannot_log_in_fails_naming_the_field(citus: CitusResource) -> None:
    wrong = citus.model_copy(update={"password": "not-the-password"})
    with pytest.raises(Exception, match=r"CitusResource.password: authentication failed") as info:
        wrong.probe()
    assert "not-the-password" not in str(info.value)
    assert not isinstance(info.value, CitusUnavailable | psycopg.Error)
