"""The Delta CDF area on real tables: a clean run passes, each real fault fails exactly its check, tables go away,
and the Spark engine is exercised through a Spark Connect server from PyPI (pysail) or reported unavailable."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from assets.delta_cdf import AREA, isolated, oracle, shrink, tablelog
from assets.delta_cdf.config import DeltaCdfConfig
from assets.delta_cdf.engines import SparkEngine
from regression_pipelines.kit import NO_LEFTOVERS, RUN_COMPLETED, RunContext, Supervisor, run_area
from regression_pipelines.measure import NO_OPERATION_ERRORS
from regression_pipelines.results import ScenarioResult
from resources.delta import DeltaLakeResource, SparkUnavailable
from tests.e2e.helpers import free_port

SAIL_LIFETIME_S = 600  # the server dies on its own even if this test process is killed
ENVS = Path(__file__).resolve().parents[2] / ".lab" / "envs"  # isolated deltalake environments, kept between runs


def _run(root: Path, spark_url: str = "", **settings: object) -> ScenarioResult:
    """The area through the kit's one entry (supervisor, registered table, cleanup), Spark off unless a URL."""
    from assets.delta_cdf import AREA

    delta = DeltaLakeResource(root=str(root / "delta"), spark_connect_url=spark_url)
    config = DeltaCdfConfig(**{"spark": "connect" if spark_url else "off", **settings})
    return run_area(AREA, config, RunContext("test", {"delta": delta}, root / "out"))


def _failed(result: ScenarioResult) -> dict[str, str]:
    return {inv.name: inv.detail for inv in result.invariants if not inv.passed}


def _no_tables_left(root: Path, result: ScenarioResult) -> None:
    assert list((root / "delta").iterdir()) == [], "the run's table is removed"
    assert result.invariant(NO_LEFTOVERS).passed and "delta_table" in result.invariant(NO_LEFTOVERS).detail


SMALL = {"serial_commits": 10, "concurrent_commits": 4, "checkpoint_interval": 4, "shrink_replays": 0}


def test_clean_run_passes_every_check_and_reports_figures_and_coverage(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert _failed(result) == {}
    assert {inv.name for inv in result.invariants} == {
        *oracle.INVARIANTS,
        NO_OPERATION_ERRORS,
        RUN_COMPLETED,
        NO_LEFTOVERS,
    }
    metric = {m.name: m.value for m in result.metrics}
    assert metric["table.versions"] >= 30 and metric["error_rate"] == 0
    for kind in ("append", "update", "delete", "merge"):
        assert metric[f"write.{kind}_p50_ms"] > 0
    assert metric["write.conflicts"] >= 0 and metric["cdf.read_rows_per_s"] > 0
    assert metric["snapshot.delta-rs_rows_per_s"] > 0 and metric["snapshot.duckdb_rows_per_s"] > 0
    assert metric["table.files_after_optimize"] <= metric["table.files_before_optimize"]
    assert metric["coverage.shapes_exercised"] >= 9 and metric["coverage.value_classes_used"] >= 25
    assert metric["write.merge_large_matched_rows"] >= 300
    assert {"phase.setup_s", "phase.workload_s", "phase.judge_s", "phase.maintenance_s"} <= set(metric)
    assert result.environment["deltalake_version"] == "1.6.6"
    assert int(result.environment["checkpoints"]) >= 2, "the workload crosses checkpoint boundaries"
    assert "cdf_partition_path_encoding" in result.environment["known_bugs_avoided"]
    assert '"merge_clauses"' in result.environment["coverage"]
    assert result.comparable_on["engine"] == "delta-rs"
    _no_tables_left(tmp_path, result)


@pytest.mark.parametrize(
    ("fault", "check", "says"),
    [
        ("drop_change_data", oracle.REPLAY, "unreadable"),
        ("cdf_off_commit", oracle.OPERATION_METRICS, "with CDF switched off: no change rows"),
        ("skewed_clock_commit", oracle.WELL_FORMED, "_commit_timestamp goes backwards"),
        ("compaction_by_rewrite", oracle.COMPACTION_TIME_TRAVEL, "(compaction by rewrite) changes no data"),
        ("wrong_row_count_stats", oracle.ENGINES_AGREE, "count(*) differs between engines"),
    ],
)
def test_each_real_fault_fails_exactly_its_check(tmp_path: Path, fault: str, check: str, says: str) -> None:
    if fault == "skewed_clock_commit" and shutil.which("faketime") is None:
        pytest.fail("faketime is missing: `make setup` installs it (apt package faketime)")
    result = _run(tmp_path, fault=fault, **SMALL)
    failed = _failed(result)
    assert set(failed) == {check}, failed
    assert says in failed[check]
    _no_tables_left(tmp_path, result)


def test_an_outside_writer_is_accounted_for_and_named(tmp_path: Path) -> None:
    """Another process commits to the run's table mid-run (issue 17: it used to crash the run). The model takes
    its effect from the table, the CDF checks still judge every version, and the ledger check names it."""
    result = _run(tmp_path, fault="outside_writer", **SMALL)
    failed = _failed(result)
    assert set(failed) == {oracle.COMMITS_ACCOUNTED}, failed
    detail = failed[oracle.COMMITS_ACCOUNTED]
    assert "not made by this workload: v" in detail and "WRITE by delta-rs" in detail
    assert "app regress-outside-backfill, userMetadata 'nightly backfill'" in detail
    assert "Cause: found on the table: 1 commit(s) not made by this workload" in detail
    assert result.metric("table.rows").value > 0
    _no_tables_left(tmp_path, result)


def test_a_deleted_commit_file_fails_the_ledger_replay_and_time_travel_with_its_cause(tmp_path: Path) -> None:
    result = _run(tmp_path, fault="delete_commit_file", **SMALL)
    failed = _failed(result)
    assert set(failed) == {oracle.COMMITS_ACCOUNTED, oracle.REPLAY, oracle.COMPACTION_TIME_TRAVEL}, failed
    assert "is missing from _delta_log" in failed[oracle.COMMITS_ACCOUNTED]
    assert "Expected contiguous commit files" in failed[oracle.REPLAY]
    for detail in failed.values():
        assert "Cause: found on the table: commit file(s) missing for version(s)" in detail
    assert result.invariant(RUN_COMPLETED).passed and result.metric("write.commits").value > 0
    _no_tables_left(tmp_path, result)


def test_a_deleted_checkpoint_ends_in_failed_checks_naming_it(tmp_path: Path) -> None:
    result = _run(tmp_path, fault="delete_checkpoint", **SMALL)
    failed = _failed(result)
    assert {oracle.REPLAY, oracle.COMPACTION_TIME_TRAVEL, NO_OPERATION_ERRORS} <= set(failed), failed
    assert "Invalid Checkpoint" in failed[oracle.REPLAY] and "Invalid Checkpoint" in failed[NO_OPERATION_ERRORS]
    assert "that _last_checkpoint names is missing" in failed[oracle.COMPACTION_TIME_TRAVEL]
    assert result.invariant(RUN_COMPLETED).passed and result.metric("write.commits").value > 0
    _no_tables_left(tmp_path, result)


def test_a_known_upstream_bug_is_reached_caught_and_shrunk_to_a_replayable_case(tmp_path: Path) -> None:
    """deltalake 1.6.6 cannot read the change feed of partitions whose value needs URL encoding. With the
    workload no longer steering around it, replay catches it and the shrinker writes a case that replays."""
    result = _run(tmp_path, avoid_known_bugs=False, serial_commits=8, concurrent_commits=0, shrink_replays=12)
    failed = _failed(result)
    assert oracle.REPLAY in failed and "unreadable" in failed[oracle.REPLAY]
    assert "Object at location" in failed[oracle.REPLAY]
    (case,) = (tmp_path / "out").glob("delta_cdf_shrunk_cdf_replay_matches_snapshots.json")
    ops = json.loads(case.read_text())["ops"]
    assert 2 <= len(ops) <= 3 and ops[0]["kind"] == "create"
    assert shrink.main([str(case)]) == 1, "the shrunk case still fails on a fresh table"
    _no_tables_left(tmp_path, result)


def test_a_read_that_blocks_forever_ends_in_a_verdict_naming_the_engine_and_the_read(tmp_path: Path) -> None:
    """A data file of the newest version replaced by a FIFO: every engine's read of it blocks in open() for good
    (DuckDB's Arrow-dataset read hung like this once, with no bound). Each read ends at its time bound, the
    checks name the engine and the version, the figures are kept, and the run ends."""
    result = _run(tmp_path, fault="blocking_data_file", read_timeout_s=2, **SMALL)
    failed = _failed(result)
    latest = int(result.metric("table.versions").value) - 1
    assert result.invariant(RUN_COMPLETED).passed, result.invariant(RUN_COMPLETED).detail
    travel = failed[oracle.COMPACTION_TIME_TRAVEL]
    assert f"time travel to v{latest} failed: TimedOut: delta-rs snapshot v{latest} gave no answer in 2 s" in travel
    assert "not regular files (a FIFO" in travel, "the cause names the file"
    errors = failed[NO_OPERATION_ERRORS]
    assert f"TimedOut: duckdb snapshot v{latest} gave no answer in 2 s (reader process killed)" in errors
    assert "Skipped: duckdb snapshot" in errors and "reads timed out, first: TimedOut" in errors
    assert oracle.REPLAY not in failed and oracle.COMMITS_ACCOUNTED not in failed, "older versions still judged"
    assert result.metric("write.commits").value > 0 and result.metric("cdf.read_rows_per_s").value > 0
    _no_tables_left(tmp_path, result)


def test_a_rust_panic_is_a_measured_error_with_every_figure_kept(tmp_path: Path) -> None:
    """deltalake 0.24 panics (pyo3 PanicException, a BaseException) reading the feed after VACUUM; it used to
    escape `timed()` and lose the whole result. Run in an isolated environment built by uv (cached)."""
    python = isolated.ensure_env("0.24.0", ENVS)
    result = isolated.run_isolated(
        python,
        {"serial_commits": 8, "concurrent_commits": 0, "shrink_replays": 0},
        tmp_path / "tables",
        tmp_path / "out",
    )
    checks = {c["name"]: c for c in result["invariants"]}
    assert checks[RUN_COMPLETED]["passed"], checks[RUN_COMPLETED]["detail"]
    errors = checks[NO_OPERATION_ERRORS]
    assert not errors["passed"] and "engine panic(s), first: CDF(" in errors["detail"]
    assert "after VACUUM: PanicException" in errors["detail"]
    assert result["environment"]["deltalake_version"] == "0.24.0"
    assert result["metrics"]["table.versions"] > 5 and result["metrics"]["write.commits"] > 5
    assert checks[NO_LEFTOVERS]["passed"] and list((tmp_path / "tables").iterdir()) == []


def test_what_was_found_on_the_table_is_named(tmp_path: Path) -> None:
    """The forensics behind every failed check's cause, on a real table tampered with from outside."""
    uri = str(tmp_path / "t")
    data = pa.table({"id": pa.array([1, 2], pa.int64()), "part": ["a", "b"]})
    write_deltalake(uri, data, partition_by=["part"], configuration={"delta.enableChangeDataFeed": "true"})
    for _ in range(3):
        write_deltalake(uri, data, mode="append")
    DeltaTable(uri).delete("id = 1")
    commits = tablelog.read_log(uri)
    assert tablelog.inspect(uri, commits, set(), "").outside and tablelog.inspect(uri, {}, set()).describe() == (
        "unexplained (nothing found on the table)"
    )
    ours = {None}  # these commits carry no workload tag: count them as ours to see the rest
    (Path(uri) / commits[1].adds[0]).write_bytes(b"PAR1")  # truncated
    (Path(uri) / commits[4].cdcs[0]).unlink()  # change data gone
    (Path(uri) / "part=a" / "stray.parquet").write_bytes(b"x")  # added from outside
    tablelog.commit_path(uri, 2).unlink()
    found = tablelog.inspect(uri, tablelog.read_log(uri), ours, "1 hour").describe()
    for text in (
        "commit file(s) missing for version(s) 2",
        "_change_data file(s) the log names are gone",
        "size on disk differs from the log's",
        "no commit references",
    ):
        assert text in found, found


class _CrashingSpark(SparkEngine):
    """A reader whose probe crashes: a harness failure half way through the run."""

    def probe(self, uri: str) -> dict[str, str]:
        raise RuntimeError("probe crashed")


def test_a_crash_is_a_verdict_with_figures_and_the_table_is_removed(tmp_path: Path) -> None:
    from assets.delta_cdf import scenario

    delta = DeltaLakeResource(root=str(tmp_path))
    uri = delta.new_table_uri("cdf")
    sup = Supervisor(area="delta_cdf", checks=AREA.checks)
    sup.created("delta_table", uri, remove=lambda: delta.remove_table(uri), exists=lambda: Path(uri).exists())
    settings = DeltaCdfConfig(serial_commits=6, concurrent_commits=0)
    result = sup.run(lambda: scenario.run(settings, sup, uri, _CrashingSpark(None, "crashes")))
    completed = result.invariant(RUN_COMPLETED)
    assert not completed.passed and "crashed in phase 'judge'" in completed.detail
    assert "RuntimeError: probe crashed" in completed.detail
    assert result.metric("write.commits").value >= 6, "figures recorded before the crash are kept"
    assert result.invariant(oracle.COMMITS_ACCOUNTED).passed
    assert "not evaluated: the run crashed in phase 'judge'" in result.invariant(oracle.REPLAY).detail
    assert result.invariant(NO_LEFTOVERS).passed and list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def sail_url() -> Iterator[str]:
    """A pysail Spark Connect server on loopback for this module, stopped afterwards (bounded by `timeout`)."""
    port = free_port()
    server = subprocess.Popen(
        [
            "timeout",
            str(SAIL_LIFETIME_S),
            sys.executable,
            "-m",
            "pysail",
            "spark",
            "server",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"pysail did not listen on {port}") from None
                time.sleep(0.2)
        yield f"sc://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def test_spark_connect_reads_every_snapshot_like_delta_rs_and_duckdb(tmp_path: Path, sail_url: str) -> None:
    """pysail as the Spark engine: three readers agree on every version; what it cannot do is said, not hidden.
    No checkpoint here: pysail 0.7.2 cannot time-travel between checkpoints (a later test). Plain numerics here:
    pysail rounds large decimals (the next test)."""
    result = _run(tmp_path, sail_url, checkpoint_interval=1000, numerics="plain")
    assert _failed(result) == {}
    assert "3 readers (delta-rs, duckdb, spark) agree on" in result.invariant(oracle.ENGINES_AGREE).detail
    assert result.environment["spark_cdf"] == "ignored readChangeFeed (returned the snapshot)"
    assert result.environment["spark_delta_table_api"].startswith("refused:")
    assert result.metric("snapshot.spark_rows_per_s").value > 0


def test_spark_connect_rounding_large_decimals_is_caught(tmp_path: Path, sail_url: str) -> None:
    """A real engine disagreement found by the adversarial numerics: pysail 0.7.2 reads decimal(38, 9) values
    beyond a double's 15-16 digits rounded (999999999999448.99 comes back as 999999999999449). Seed 7 with 6
    partitions reaches it (which of its files pysail reads through a double is not pinned down yet)."""
    result = _run(tmp_path, sail_url, checkpoint_interval=1000, shrink_replays=0, partitions=6)
    failed = _failed(result)
    assert set(failed) == {oracle.ENGINES_AGREE}, failed
    assert "spark rows != delta-rs rows" in failed[oracle.ENGINES_AGREE]
    assert "Decimal('999999999999" in failed[oracle.ENGINES_AGREE]


def test_spark_connect_time_travel_across_checkpoints_is_caught(tmp_path: Path, sail_url: str) -> None:
    """A real engine disagreement, found by this area: pysail 0.7.2 fails to read versions after a checkpoint
    that are not themselves checkpoints ('Missing commit file'); delta-rs and DuckDB read them."""
    result = _run(
        tmp_path,
        sail_url,
        checkpoint_interval=3,
        serial_commits=8,
        concurrent_commits=0,
        shrink_replays=0,
        numerics="plain",
    )
    failed = _failed(result)
    assert set(failed) == {oracle.ENGINES_AGREE}, failed
    assert "['spark'] failed: AnalysisException: Missing commit file" in failed[oracle.ENGINES_AGREE]


def test_spark_connect_endpoint_that_is_not_there_is_reported_unavailable() -> None:
    with pytest.raises(SparkUnavailable, match=r"nothing answers at sc://127.0.0.1:\d+"):
        DeltaLakeResource(spark_connect_url=f"sc://127.0.0.1:{free_port()}").spark_session("auto")


def test_local_spark_without_delta_jars_is_reported_unavailable() -> None:
    """delta-spark's configure_spark_with_delta_pip asks Maven for io.delta:delta-spark_4.2_2.13; with no Maven
    Central reachable the JVM exits and the engine says why (never pretends). In a fresh process: pyspark refuses
    a classic session in a process that already opened a Spark Connect one."""
    probe = (
        "from resources.delta import DeltaLakeResource, SparkUnavailable\n"
        "try:\n    DeltaLakeResource().spark_session('local')\n"
        "except SparkUnavailable as exc:\n    print(exc.reason)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARK_")}  # Connect sessions above set some
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    reason = done.stdout
    assert "spark.jars.packages: io.delta:delta-spark_4.2_2.13:4.4.1" in reason
    assert "JAVA_GATEWAY_EXITED" in reason and "REGRESS_SPARK_DELTA_JARS" in reason


def test_nothing_configured_says_how_to_configure_spark() -> None:
    with pytest.raises(SparkUnavailable, match="REGRESS_SPARK_CONNECT_URL=sc://host:port"):
        DeltaLakeResource().spark_session("auto")


def test_asset_records_metrics_and_checks_through_dagster(tmp_path: Path, dagster_home: Path) -> None:
    from assets.delta_cdf import AREA
    from regression_pipelines.results import metrics_from_metadata
    from tests.areas import materialize_area

    resources = {"delta": DeltaLakeResource(root=str(tmp_path / "delta"))}
    result = materialize_area(AREA, dagster_home, resources, {"spark": "off", "serial_commits": 8})
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {**dict.fromkeys(AREA.checks, True), "performance_regression": True}
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    kinds = {m.name: m.kind.value for m in metrics_from_metadata(metadata)}
    assert kinds["write.update_p50_ms"] == "performance" and kinds["write.conflicts"] == "volume"
    assert metadata["env/spark_engine"].value == "unavailable: switched off (spark=off)"
    assert list((tmp_path / "delta").iterdir()) == []


def test_a_table_folder_moved_away_mid_run_ends_in_a_verdict_naming_it(tmp_path: Path) -> None:
    """A cleanup job's mis-aimed `mv` takes the table's folder away mid-run (nobody's nemesis): the reads and writes
    after it fail, every failed check says the folder went missing and when (the folder watch; the log alone shows
    nothing), the figures are still reported, and the run completes."""
    import threading

    moved: list[Path] = []

    def move_away_once_it_commits() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not moved:
            logs = list((tmp_path / "delta").glob("*/_delta_log/*.json"))
            if len(logs) >= 3:
                table = logs[0].parent.parent
                moved.append(table.rename(tmp_path / "moved"))
            time.sleep(0.01)

    mover = threading.Thread(target=move_away_once_it_commits, daemon=True)
    mover.start()
    result = _run(tmp_path, **{**SMALL, "serial_commits": 60})
    mover.join(timeout=130)
    assert moved, "the run's table never committed"
    failed = _failed(result)
    assert failed, "writes and reads against a missing folder must fail a check"
    unnamed = {name: d for name, d in failed.items() if name != NO_OPERATION_ERRORS and " was missing at " not in d}
    assert unnamed == {}, unnamed
    assert RUN_COMPLETED not in failed and result.metric("write.commits").value >= 2  # figures still reported
    shutil.rmtree(moved[0])
    assert list((tmp_path / "delta").iterdir()) == []


def test_a_log_made_unwritable_mid_run_is_named_and_the_table_still_removed(tmp_path: Path) -> None:
    """An outside `chattr +i` on the table's _delta_log for 2 s (nobody's nemesis; root ignores permission bits,
    not the immutable flag): the commits in that window fail, no_operation_errors names the OS error under
    delta-rs's generic first line and what the folder watch saw, and the cleanup, which cannot remove the table
    while the flag is set, retries until it can: nothing is left behind."""
    import threading

    shut: list[Path] = []

    def immutable_once_it_commits() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not shut:
            logs = list((tmp_path / "delta").glob("*/_delta_log/*.json"))
            if len(logs) >= 3:
                log = logs[0].parent
                if subprocess.run(["chattr", "+i", str(log)], check=False).returncode == 0:
                    shut.append(log)
                    time.sleep(2.0)
                    subprocess.run(["chattr", "-i", str(log)], check=True)
                return
            time.sleep(0.01)

    fault = threading.Thread(target=immutable_once_it_commits, daemon=True)
    fault.start()
    result = _run(tmp_path, **{**SMALL, "serial_commits": 60})
    fault.join(timeout=130)
    if not shut:
        pytest.skip("chattr +i is not possible here (not root, or the filesystem has no immutable flag)")
    failed = _failed(result)
    errors = failed[NO_OPERATION_ERRORS]
    assert "Operation not permitted (os error 1)" in errors, errors
    assert f"{shut[0]} could not be written (permissions, an immutable flag or a read-only mount) at " in errors
    assert NO_LEFTOVERS not in failed and RUN_COMPLETED not in failed, failed
    assert list((tmp_path / "delta").iterdir()) == []
