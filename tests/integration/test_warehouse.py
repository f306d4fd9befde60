"""The DuckDB warehouse has one writer, the scorecard: after the hourly job (areas in parallel processes, then
the scorecard) it holds every area of the run, and concurrent syncs from separate processes queue on the
lock instead of failing."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import yaml

from regression_pipelines.kit.discovery import discover_areas
from regression_pipelines.lab.settings import REPO_ROOT, LabSettings
from regression_pipelines.reports.tables import TABLES
from tests.e2e.helpers import BIN

# Small workloads: what this test asserts (which areas and checks reach the warehouse, one run, a whole report,
# writers queueing on the lock) does not depend on workload size; each area's sizes are tested in its own tests.
SMALL: dict[str, dict[str, Any]] = {
    "cache_coherence": {"max_seconds": 1.0, "settle_seconds": 0.2, "latency_seconds": 0.2, "calibrate": False},
    "etl_pipeline": {"jobs": 100},
    "delta_cdf": {"initial_rows": 60, "serial_commits": 6, "concurrent_commits": 2, "read_repeats": 1,
                  "replay_pairs": 2, "split_triples": 2},
    "ha_health": {"calibrate": False, "latency_statements": 20},
    "citus_sharding": {"accounts": 120, "orders_per_account": 2, "statements": 80, "copy_rows": 300,
                       "router_queries": 30, "multi_shard_queries": 6, "join_queries": 3, "calibrate": False},
}  # fmt: skip


def _sync(home: str, warehouse: str, start: Any) -> None:
    """Rebuild the warehouse again and again for 2 s, starting together with the other writers."""
    os.environ["DAGSTER_HOME"] = home
    from regression_pipelines.definitions import AREAS
    from regression_pipelines.reports.scorecard import sync_warehouse
    from resources.warehouse import WarehouseResource

    with dg.DagsterInstance.get() as instance:
        start.wait(60)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            with WarehouseResource(path=warehouse).connect() as conn:
                sync_warehouse(instance, AREAS, conn, rebuild=True)


def test_hourly_job_records_every_area_through_the_scorecard(lab: LabSettings, dagster_home: Path) -> None:
    config = dagster_home / "run.yaml"
    config.write_text(yaml.safe_dump({"ops": {area: {"config": settings} for area, settings in SMALL.items()}}))
    warehouse = dagster_home / "warehouse.duckdb"
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "REGRESS_WAREHOUSE_PATH": str(warehouse)}
    proc = subprocess.run(
        [
            str(BIN / "dagster"),
            "job",
            "execute",
            "-m",
            "regression_pipelines.definitions",
            "-j",
            "hourly_regression",
            "-c",
            str(config),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "multiprocess" in log.lower(), "the default executor runs each area in its own process"
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        areas = {row[0] for row in conn.execute("SELECT DISTINCT area FROM metrics").fetchall()}
        runs = conn.execute("SELECT count(DISTINCT run_id) FROM runs").fetchall()[0][0]
        checks = {row[0] for row in conn.execute("SELECT DISTINCT invariant FROM invariants").fetchall()}
        # An area whose system is absent here (citus_sharding without Citus) is recorded as skipped, no metrics.
        skipped = {row[0] for row in conn.execute("SELECT area FROM runs WHERE status = 'skipped'").fetchall()}
    assert areas | skipped == {a.name for a in discover_areas() if not a.destructive} and runs == 1
    assert not areas & skipped
    assert {"single_leader", "no_divergence_after_settle", "no_operation_errors"} <= checks
    assert (dagster_home / "reports" / "regression_report.html").stat().st_size > 1_000_000

    # Concurrent writers (two report runs at once) queue on the lock: both finish, the tables stay whole.
    ctx = multiprocessing.get_context("spawn")
    before = _counts(warehouse)
    start = ctx.Barrier(2)
    workers = [ctx.Process(target=_sync, args=(str(dagster_home), str(warehouse), start)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    assert _counts(warehouse) == before


def _counts(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in TABLES}
