"""`regress run` end to end: real lab, real Dagster instance, exit codes a CI job can rely on. Checked on runs other
tests make anyway: a clean run's JSON summary and stored run in test_regress_report.py; a failed invariant's exit 1
and its [FAIL] line in test_launch_paths.py (test_regress_run_says_the_two_words_the_ui_shows)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.helpers import regress


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
        "fault: 'often' is unknown; use one of none, skip_invalidation, delay_invalidation, no_ttl, lossy_values, "
        "ttl_unit_mixup"
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
