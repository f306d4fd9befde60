"""The Citus area on the lab's real Citus cluster: a clean run passes every check through the real asset,
each real fault fails exactly its check and is undone, and a mismatch is shrunk by replaying on the real
systems. Skipped, with the reason, where Citus is not installed (CI: Debian has no Citus package)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from assets.citus_sharding import AREA, scenario
from assets.citus_sharding.compare import Verdict
from assets.citus_sharding.oracle import MisplacementReplayer, Pair, minimal_sequence, misplacing_sequence, replayer
from assets.citus_sharding.scenario import DIFFERENTIAL_MATCHES
from assets.citus_sharding.shapes import mix
from assets.citus_sharding.workload import SCHEMA, Generator, Statement
from regression_pipelines.kit import RunContext, run_area
from regression_pipelines.kit.checkers import citus as cluster
from regression_pipelines.kit.nemeses.process import CITUS_WORKER
from regression_pipelines.kit.observe import citus as observe_citus
from regression_pipelines.lab import control
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.measure import ErrorTally
from regression_pipelines.perf_check import PERF_CHECK_NAME
from regression_pipelines.results import ScenarioResult, metric_values
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
    return run_area(AREA, AREA.config(**{**SMALL, **settings}), ctx)


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
    metrics = metric_values(metadata)  # name -> value, whatever unit and settings the key carries
    assert metrics["differential.statements_compared"] == 80
    assert metrics["differential.mismatches"] == 0
    for name in (
        "router.latency_p50_ms",
        "multi_shard.latency_p99_ms",
        "colocated_join.ratio_to_vanilla",
        "calibration.pgbench_router_select_p50_ms",  # pgbench's router query on the coordinator, right before
        "calibration.router.latency_p50_ratio",
    ):
        assert metrics[name] > 0
    assert metrics["copy.rows_per_s"] > 0 and metrics["shards.skew"] >= 1
    assert metadata["env/citus_version"].startswith("Citus 13.")
    _assert_clean(citus, postgres, metadata["env/schema"])


@pytest.mark.parametrize(
    ("fault", "check", "says"),
    [
        ("wrong_shard_row", cluster.ROWS_IN_RIGHT_SHARD, "1 of "),
        ("leftover_prepared", cluster.NO_ORPHANS, "prepared transaction 'regress_leftover_regress_citus_"),
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
    noise = [s for s in mix(gen, 60) if (s.query and not s.prepared and "nextval" not in s.sql)][:10]
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
            shows = replayer(pair, initial, time.monotonic() + 60)
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


# A write straight into a local shard of accounts on the worker it runs on, of a key whose hash that shard does not
# own: a real row in the wrong shard, made by a statement, so replaying the statements reproduces it.
MISPLACE = """DO $$
DECLARE shard text; low int; high int; k bigint := 1000000000000;
BEGIN
  SET LOCAL citus.enable_manual_changes_to_shards = on;
  SELECT shard_name(s.logicalrelid, s.shardid), s.shardminvalue::int, s.shardmaxvalue::int INTO shard, low, high
    FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid)
   WHERE s.logicalrelid = '@s.accounts'::regclass AND n.nodeport = inet_server_port() ORDER BY s.shardid LIMIT 1;
  WHILE worker_hash(k) BETWEEN low AND high LOOP k := k + 1; END LOOP;
  EXECUTE format('INSERT INTO %s VALUES (%s, 1, 0, %L)', shard, k, 'misplaced');
END $$"""


def test_a_row_in_the_wrong_shard_is_traced_to_the_statement_that_put_it_there(
    citus: CitusResource, postgres: PostgresResource
) -> None:
    """Among 40 generated statements, one writes a row into a shard that does not own its key (on a worker, as
    the known wrong-shard bugs do): one watched replay finds it, ddmin shows it needs nothing before it."""
    gen = Generator(5, 30, 1)
    initial = gen.initial_rows()
    statements = [s for s in mix(gen, 80) if "id =" not in s.sql and "SET id" not in s.sql][:40]
    culprit = Statement(500, "misplace_on_worker", MISPLACE, on_worker=True)
    statements.insert(25, culprit)
    schema = f"regress_citus_misplace{time.time_ns() % 10**6}"
    with citus.connect() as c:
        row = c.execute(
            "SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0 AND hasmetadata ORDER BY groupid LIMIT 1"
        ).fetchone()
        with citus.connect_node(row[0], row[1]) as worker:
            replay = MisplacementReplayer(c, worker, citus.connect_node, schema, 4, initial, time.monotonic() + 120)
            found = misplacing_sequence(statements, replay, budget=12)
    assert found.found is not None and found.found.steps == [culprit], found
    assert found.replays <= 4  # the watched replay, the whole sequence, the culprit alone
    _assert_clean(citus, postgres, schema)


def _terminate(postgres_connect: Callable[[], psycopg.Connection], victim: psycopg.Connection) -> None:
    with postgres_connect() as conn:
        conn.execute("SELECT pg_terminate_backend(%s::int)", (victim.info.backend_pid,))


def test_a_lost_session_is_an_unknown_step_an_operation_error_and_a_re_read(
    citus: CitusResource, postgres: PostgresResource
) -> None:
    """A side's session killed between statements: the statement is UNKNOWN (never judged), counted as an
    operation error; before the next one the pair reconnects and re-reads, rebasing PostgreSQL's copy on what
    Citus holds when they differ, so the next statement is judged from a common state."""
    gen = Generator(5, 20, 1)
    initial = gen.initial_rows()

    def insert(index: int, key: int) -> Statement:
        return Statement(index, "insert_accounts", f"INSERT INTO {SCHEMA}.accounts VALUES ({key}, 1, 1.00, 'x')")

    count = Statement(9, "router", f"SELECT count(*) FROM {SCHEMA}.accounts", query=True)
    schema = f"regress_citus_lost{time.time_ns() % 10**6}"
    sides = {"citus": citus.connect, "vanilla": lambda: postgres.connect(autocommit=False)}
    errors = ErrorTally()
    pair = Pair(sides["citus"](), sides["vanilla"](), schema, 4, errors=errors, connect=lambda side: sides[side]())
    try:
        pair.create(initial)
        _terminate(lambda: postgres.connect(), pair.vanilla)  # PostgreSQL's transaction dies: applied nowhere
        lost = pair.apply(insert(1, 900001))
        assert lost.judgement.verdict is Verdict.UNKNOWN and "PostgreSQL session lost" in lost.judgement.detail
        assert pair.apply(count).judgement.verdict is Verdict.SAME
        _terminate(citus.connect, pair.citus)  # Citus's answer is lost: did the insert take effect there?
        lost = pair.apply(insert(2, 900002))
        assert lost.judgement.verdict is Verdict.UNKNOWN and "Citus session lost" in lost.judgement.detail
        with citus.connect() as conn:  # say it did (its answer lost on the way back)
            conn.execute(insert(2, 900002).sql.replace(SCHEMA, schema))
        assert pair.apply(count).judgement.verdict is Verdict.SAME  # after the re-read rebased accounts
        assert pair.resyncs == ["-", "accounts"] and pair.reconnects == 2
        assert (errors.operations, errors.errors) == (4, 2)
        metric, check = errors.figures()
        assert not check.passed and "by phase: workload 2" in check.detail
    finally:
        pair.drop()
        pair.close()
    _assert_clean(citus, postgres, schema)


def test_a_citus_error_while_a_worker_restarted_is_not_judged_and_without_one_it_is(
    citus: CitusResource, postgres: PostgresResource, lab: LabSettings
) -> None:
    """Any Citus error raised while a node restarted, whatever its SQLSTATE (a repartition join whose worker
    restarted mid-job failed 58P01, its intermediate file gone), is the disturbance's: UNKNOWN, an operation
    error naming the restart, then a re-read. The twin: the same error with every node steady is a difference."""
    schema = f"regress_citus_disturbed{time.time_ns() % 10**6}"
    sides = {"citus": citus.connect, "vanilla": lambda: postgres.connect(autocommit=False)}
    errors = ErrorTally()
    pair = Pair(sides["citus"](), sides["vanilla"](), schema, 4, errors=errors, connect=lambda side: sides[side]())
    only_postgres = Statement(1, "router", f"SELECT {SCHEMA}.only_postgres()", query=True)  # Citus: 42883
    try:
        pair.create(Generator(5, 20, 1).initial_rows())
        pair.vanilla.execute(f"CREATE FUNCTION {schema}.only_postgres() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        pair.vanilla.commit()
        nodes = [("coordinator", citus.host, citus.port)] + [
            ("worker", str(h), int(p))
            for h, p in pair.citus.execute("SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0")
        ]
        before = observe_citus.snapshot(citus.connect_node, nodes)
        pair.disturbed = lambda s: observe_citus.disturbed(
            before, observe_citus.snapshot(citus.connect_node, nodes), s + 10
        )
        steady = pair.apply(only_postgres)
        assert steady.judgement.verdict is Verdict.MISMATCH and "42883" in steady.judgement.detail
        control.stop_service(lab, "citus", processes=(CITUS_WORKER,))
        control.start_processes(lab, "citus", processes=(CITUS_WORKER,))
        disturbed = pair.apply(only_postgres)
        assert disturbed.judgement.verdict is Verdict.UNKNOWN, disturbed.judgement
        assert "restarted" in disturbed.judgement.detail and "42883" in disturbed.judgement.detail
        assert pair.out_of_step and (errors.operations, errors.errors) == (2, 1)
        found = observe_citus.findings(before, observe_citus.snapshot(citus.connect_node, nodes))
        assert len(found) == 1 and "worker" in found[0] and "restarted at" in found[0], found
    finally:  # through fresh sessions: the pair's Citus session still holds the restarted worker's dead connection
        pair.close()
        scenario.schema_removers(citus.connect, schema, vanilla=False)[0]()
        scenario.schema_removers(lambda: postgres.connect(autocommit=False), schema, vanilla=True)[0]()
    _assert_clean(citus, postgres, schema)


def test_a_worker_restart_mid_workload_ends_in_a_verdict_with_figures(
    citus: CitusResource, postgres: PostgresResource, tmp_path: Path
) -> None:
    """citus_worker_restart while statements run: no crash; every check is judged, a lost statement is counted
    in no_operation_errors (never judged as a difference), and the run's tables are removed."""
    nemesis = {"nemesis": "citus_worker_restart", "nemesis_at_s": 0.5, "nemesis_for_s": 1.0, "allow_destructive": True}
    result = _run(citus, postgres, tmp_path, calibrate=False, **nemesis)
    failed = _failed(result)
    assert result.environment["nemesis_outcome"] == "acted", result.environment
    assert set(failed) <= {"no_operation_errors"}, failed  # run_completed passed: no phase crashed
    assert {inv.name for inv in result.invariants} >= {*scenario.INVARIANTS, "no_operation_errors", "run_completed"}
    if failed:  # the restart met a statement (it usually does): counted by phase, nemesis named by the kit
        assert "workload" in failed["no_operation_errors"] or "timed" in failed["no_operation_errors"]
    metrics = {m.name: m.value for m in result.metrics}
    assert metrics["differential.statements_compared"] == SMALL["statements"]
    assert metrics["differential.mismatches"] == 0
    _assert_clean(citus, postgres, str(result.environment["schema"]))


def test_a_table_nemesis_acts_on_postgres_copy_and_is_named(
    citus: CitusResource, postgres: PostgresResource, tmp_path: Path
) -> None:
    """The run registers PostgreSQL's copy of its tables (the `postgres` service the table nemeses act on): a
    trigger dropping one row in ten there makes the two systems differ, and the failed check names the trigger
    the observer saw (healed on every table at the end: the nemesis window outlasts the workload)."""
    nemesis = {"nemesis": "postgres_drop_rows_trigger", "nemesis_at_s": 0.0, "nemesis_for_s": 60.0}
    result = _run(citus, postgres, tmp_path, calibrate=False, minimize_replays=2, **nemesis)
    assert result.environment["nemesis_outcome"] == "acted", result.environment
    assert "trigger removed from 5 tables" in str(result.environment["nemesis_did"])
    failed = _failed(result)
    assert DIFFERENTIAL_MATCHES in failed, failed
    assert "observed on PostgreSQL: trigger regress_nemesis_drop_rows added on" in failed[DIFFERENTIAL_MATCHES]
    _assert_clean(citus, postgres, str(result.environment["schema"]))


def test_a_lock_held_on_a_shard_from_outside_shows_as_the_slowest_statement(
    citus: CitusResource, postgres: PostgresResource, tmp_path: Path
) -> None:
    """A DBA's session (psql's application name) holds ACCESS EXCLUSIVE on one shard of the run's accounts table
    for 3 s mid-workload (nobody's nemesis): the answers still match, so every check passes, and the run names
    the lock, who held it and when (the node observer's looks). The slowest statement alone cannot show it: a
    repartition join takes 1.7-1.9 s on a clean run of this size."""
    found = (
        "SELECT s.logicalrelid::regclass::text, s.shardid, n.nodename, n.nodeport FROM pg_dist_shard s "
        "JOIN pg_dist_placement USING (shardid) JOIN pg_dist_node n USING (groupid) "
        "WHERE s.logicalrelid::regclass::text LIKE '%.accounts' ORDER BY s.shardid LIMIT 1"
    )
    locked: list[str] = []

    def lock_one_shard_once_loaded() -> None:
        deadline = time.monotonic() + 90
        with citus.connect_node(citus.host, citus.port) as coordinator:
            coordinator.autocommit = True
            while time.monotonic() < deadline:
                row = coordinator.execute(found).fetchone()
                with contextlib.suppress(psycopg.Error):  # the table may still be made, or already gone
                    if row and coordinator.execute(f"SELECT count(*) FROM {row[0]}").fetchone()[0] >= 100:
                        break  # loaded (the mix adds and removes a few rows)
                time.sleep(0.05)
            else:
                return
        table, shard, host, port = row
        dba = psycopg.connect(host=host, port=port, user=citus.superuser, password=citus.superuser_password,
                              dbname=citus.dbname, application_name="psql")  # fmt: skip
        with dba, dba.transaction():
            dba.execute("SET LOCAL citus.enable_manual_changes_to_shards = on")
            dba.execute(f"LOCK TABLE {table}_{shard} IN ACCESS EXCLUSIVE MODE")
            locked.append(f"{table}_{shard}")
            time.sleep(3.0)

    locker = threading.Thread(target=lock_one_shard_once_loaded, daemon=True)
    locker.start()
    result = _run(citus, postgres, tmp_path, statements=200, calibrate=False)
    locker.join(timeout=100)
    assert locked, "the run's shard was never found"
    assert _failed(result) == {}
    observed = str(result.environment["observed.citus_nodes"])
    assert f"(psql) as {citus.superuser} holds AccessExclusiveLock on {locked[0]}" in observed, observed
    assert "blocks the run's statements on it (seen " in observed, observed
    assert "ms on Citus" in str(result.environment["slowest_statement"])
    _assert_clean(citus, postgres, str(result.environment["schema"]))
