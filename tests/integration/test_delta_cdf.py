"""The Delta CDF area on real tables: a clean run passes, each real fault fails exactly its check, tables go away,
and the Spark engine is exercised through a Spark Connect server from PyPI (pysail) or reported unavailable."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from assets.delta_cdf import oracle, scenario
from assets.delta_cdf.config import DeltaCdfConfig
from assets.delta_cdf.engines import SparkEngine
from regression_pipelines.measure import NO_OPERATION_ERRORS
from regression_pipelines.results import ScenarioResult
from resources.delta import DeltaLakeResource, SparkUnavailable
from tests.e2e.helpers import free_port

SAIL_LIFETIME_S = 600  # the server dies on its own even if this test process is killed


def _run(root: Path, spark: SparkEngine | None = None, **settings: object) -> ScenarioResult:
    delta = DeltaLakeResource(root=str(root))
    return scenario.run(DeltaCdfConfig(**settings), delta.new_table_uri("cdf"), delta.remove_table, spark, "off")


def _failed(result: ScenarioResult) -> dict[str, str]:
    return {inv.name: inv.detail for inv in result.invariants if not inv.passed}


def test_clean_run_passes_every_check_and_reports_figures(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert _failed(result) == {}
    assert {inv.name for inv in result.invariants} == {*oracle.INVARIANTS, NO_OPERATION_ERRORS}
    metric = {m.name: m.value for m in result.metrics}
    assert metric["table.versions"] >= 30 and metric["error_rate"] == 0
    for kind in ("append", "update", "delete", "merge"):
        assert metric[f"write.{kind}_p50_ms"] > 0
    assert metric["write.conflicts"] >= 0 and metric["cdf.read_rows_per_s"] > 0
    assert metric["snapshot.delta-rs_rows_per_s"] > 0 and metric["snapshot.duckdb_rows_per_s"] > 0
    assert metric["table.files_after_optimize"] < metric["table.files_before_optimize"]
    assert result.environment["deltalake_version"] == "1.6.6"
    assert int(result.environment["checkpoints"]) >= 2, "the workload crosses checkpoint boundaries"
    assert result.comparable_on["engine"] == "delta-rs"
    assert list(tmp_path.iterdir()) == [], "the run's table is removed"


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
    result = _run(tmp_path, fault=fault)
    failed = _failed(result)
    assert set(failed) == {check}, failed
    assert says in failed[check]
    assert list(tmp_path.iterdir()) == []


class _CrashingSpark(SparkEngine):
    """A reader whose probe crashes: a harness failure half way through the run."""

    def probe(self, uri: str) -> dict[str, str]:
        raise RuntimeError("probe crashed")


def test_table_is_removed_when_the_run_fails(tmp_path: Path) -> None:
    delta = DeltaLakeResource(root=str(tmp_path))
    settings = DeltaCdfConfig(serial_commits=6, concurrent_commits=0)
    with pytest.raises(RuntimeError, match="probe crashed"):
        scenario.run(settings, delta.new_table_uri("cdf"), delta.remove_table, _CrashingSpark(None, "crashes"))
    assert list(tmp_path.iterdir()) == []


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


def _spark(url: str) -> SparkEngine:
    session, description = DeltaLakeResource(spark_connect_url=url).spark_session("connect")
    return SparkEngine(session, description)


def test_spark_connect_reads_every_snapshot_like_delta_rs_and_duckdb(tmp_path: Path, sail_url: str) -> None:
    """pysail as the Spark engine: three readers agree on every version; what it cannot do is said, not hidden.
    No checkpoint here: pysail 0.7.2 cannot time-travel between checkpoints (next test)."""
    spark = _spark(sail_url)
    try:
        result = _run(tmp_path, spark, checkpoint_interval=1000)
    finally:
        spark.stop()
    assert _failed(result) == {}
    assert "3 readers (delta-rs, duckdb, spark) agree on" in result.invariant(oracle.ENGINES_AGREE).detail
    assert result.environment["spark_cdf"] == "ignored readChangeFeed (returned the snapshot)"
    assert result.environment["spark_delta_table_api"].startswith("refused:")
    assert result.metric("snapshot.spark_rows_per_s").value > 0


def test_spark_connect_time_travel_across_checkpoints_is_caught(tmp_path: Path, sail_url: str) -> None:
    """A real engine disagreement, found by this area: pysail 0.7.2 fails to read versions after a checkpoint
    that are not themselves checkpoints ('Missing commit file'); delta-rs and DuckDB read them."""
    spark = _spark(sail_url)
    try:
        result = _run(tmp_path, spark, checkpoint_interval=3, serial_commits=8, concurrent_commits=0)
    finally:
        spark.stop()
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
    assert checks == {**dict.fromkeys((*oracle.INVARIANTS, NO_OPERATION_ERRORS), True), "performance_regression": True}
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    kinds = {m.name: m.kind.value for m in metrics_from_metadata(metadata)}
    assert kinds["write.update_p50_ms"] == "performance" and kinds["write.conflicts"] == "volume"
    assert metadata["env/spark_engine"].value == "unavailable: switched off (spark=off)"
    assert list((tmp_path / "delta").iterdir()) == []
