"""`regress run` end to end: real lab, real Dagster instance, exit codes a CI job can rely on."""

from __future__ import annotations

import json
from pathlib import Path

from regression_pipelines.lab.settings import LabSettings
from tests.e2e.helpers import FAST_CACHE, regress


def test_run_prints_json_summary_and_stores_the_run(lab: LabSettings, dagster_home: Path) -> None:
    proc = regress("run", "--areas", "cache_coherence", *FAST_CACHE, "--json", "-", home=dagster_home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    (area,) = summary["areas"]
    assert area["area"] == "cache_coherence" and not area["error"]
    names = {m["name"] for m in area["metrics"]}
    assert {"cache_aside.hit_ratio", "write_through.stale_read_rate", "cache_aside.db_read_p99_ms"} <= names
    assert all(inv["passed"] for inv in area["invariants"])
    assert (dagster_home / "runs" / f"{summary['run_id']}.json").exists()
    assert list(dagster_home.rglob("runs.db")), "the run is stored in DAGSTER_HOME for the UI"


def test_failed_invariant_exits_one_and_says_which(lab: LabSettings, dagster_home: Path) -> None:
    proc = regress(
        "run",
        "--areas",
        "cache_coherence",
        *FAST_CACHE,
        "--set",
        "cache_coherence.fault=skip_invalidation",
        home=dagster_home,
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "[FAIL] no_divergence_after_settle" in proc.stdout


def test_bad_setting_exits_two_naming_it(dagster_home: Path) -> None:
    proc = regress("run", "--set", "cache_coherence.faultt=none", home=dagster_home)
    assert proc.returncode == 2
    assert "cache_coherence has no setting 'faultt'" in proc.stderr


def test_bad_value_exits_two_naming_field_and_allowed_values(dagster_home: Path) -> None:
    proc = regress(
        "run", "--set", "cache_coherence.readers=0", "--set", "cache_coherence.fault=often", home=dagster_home
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "regress run: --set cache_coherence: readers: 0 is below the minimum 1; "
        "fault: 'often' is unknown; use one of none, skip_invalidation, delay_invalidation, no_ttl"
    ]


def test_delta_cdf_area_runs_clean_through_regress(dagster_home: Path, tmp_path: Path) -> None:
    root = tmp_path / "delta"
    proc = regress(
        "run", "--areas", "delta_cdf", "--json", "-", home=dagster_home, env={"REGRESS_DELTA_ROOT": str(root)}
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (area,) = json.loads(proc.stdout)["areas"]
    assert area["area"] == "delta_cdf" and all(inv["passed"] for inv in area["invariants"])
    assert list(root.iterdir()) == [], "the run's table is removed"
