"""The destructive shard-move area on the lab's real Citus cluster: an online move loses and duplicates no
acknowledged row, and each real fault fails exactly its check. Skipped where Citus is not installed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from assets.citus_shard_move import AREA, scenario
from regression_pipelines.kit import RunContext, run_area
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.results import ScenarioResult
from resources.citus import CitusResource, CitusUnavailable

SMALL = {"allow_destructive": True, "initial_rows": 2000, "baseline_s": 0.5, "tail_s": 0.5}


@pytest.fixture(scope="module")
def citus(lab: LabSettings) -> CitusResource:
    resource = CitusResource(
        port=lab.citus_ports[0], user=lab.postgres_user, password=lab.postgres_password, dbname=lab.postgres_db
    )
    try:
        resource.probe()
    except CitusUnavailable as absent:
        pytest.skip(f"Citus is not installed for the lab's PostgreSQL 15 ({absent.reason})")
    return resource


def _run(citus: CitusResource, tmp_path: Path, **settings: object) -> ScenarioResult:
    ctx = RunContext(run_id=f"move{time.time_ns()}", resources={"citus": citus}, output_dir=tmp_path)
    return run_area(AREA, AREA.config(**{**SMALL, **settings}), ctx)


def _failed(result: ScenarioResult) -> dict[str, str]:
    return {inv.name: inv.detail for inv in result.invariants if not inv.passed}


def _assert_clean(citus: CitusResource, schema: str) -> None:
    """The run's schema is gone and no old placement waits for cleanup."""
    with citus.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_dist_cleanup").fetchone()[0] == 0


def test_online_move_keeps_every_acknowledged_row(citus: CitusResource, tmp_path: Path) -> None:
    result = _run(citus, tmp_path)
    assert _failed(result) == {}
    metric = {m.name: m.value for m in result.metrics}
    assert metric["move.duration_s"] > 0 and metric["ledger.acknowledged"] > 20
    assert metric["ledger.lost"] == 0 and metric["ledger.duplicates"] == 0
    assert result.environment["moved_from"] != result.environment["moved_to"]
    _assert_clean(citus, str(result.environment["schema"]))


@pytest.mark.parametrize(
    ("fault", "check", "says"),
    [
        ("lost_row", scenario.ZERO_LOST, "1 acknowledged rows missing"),
        ("duplicate_row", scenario.NO_DUPLICATES, "duplicated ids ["),
        ("lock_moved_shard", scenario.OUTAGE, "writes to the moved shard stopped for"),
    ],
)
def test_each_real_fault_fails_exactly_its_check(
    citus: CitusResource, tmp_path: Path, fault: str, check: str, says: str
) -> None:
    result = _run(citus, tmp_path, fault=fault, outage_slo_s=1.5, lock_seconds=3.0)
    failed = _failed(result)
    assert list(failed) == [check], failed
    assert says in failed[check]
    _assert_clean(citus, str(result.environment["schema"]))


def test_a_worker_restart_mid_move_is_named_in_every_failed_check(
    citus: CitusResource, lab: LabSettings, tmp_path: Path
) -> None:
    """citus_worker_restart while the ledger writes and the shard moves: a verdict, not a crash; every failed
    check names the worker that restarted (kit.observe.citus), and the run's schema is removed."""
    nemesis = {"nemesis": "citus_worker_restart", "nemesis_at_s": 0.2, "nemesis_for_s": 1.0}
    result = _run(citus, tmp_path, **nemesis)
    failed = _failed(result)
    assert result.environment["nemesis_outcome"] == "acted", result.environment
    assert "run_completed" not in failed and failed, failed  # the restart met the writer: its inserts failed
    restarted = f"worker 127.0.0.1:{lab.citus_ports[1]} restarted at"
    assert all(restarted in detail for detail in failed.values()), failed
    assert restarted in str(result.environment["observed.citus_nodes"])
    _assert_clean(citus, str(result.environment["schema"]))
