"""`regress matrix` end to end on the lab: two named setting sets of cache_coherence, the second with a real fault.

One tiny matrix (1 round, 1 mode, 1 s workloads; the statistics over rounds are unit-tested): child processes per
run, the A/A control, one tagged Dagster run per variant, warehouse rows, the page, the JSON and exit code 1 because
the later set fails a check the first passes.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from regression_pipelines.cli import main
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.matrix.run import MATRIX_TAG, VARIANT_TAG

TINY = [
    "cache_coherence.modes=[cache_aside]",
    "cache_coherence.max_seconds=1",
    "cache_coherence.latency_seconds=0.3",
    "cache_coherence.calibrate=false",
    "cache_coherence.settle_seconds=0.2",
    "cache_coherence.keys=30",
    "cache_coherence.shrink_seconds=0",
    "cache_coherence.seed=3",
]


@pytest.mark.timeout(600)
def test_a_setting_set_that_breaks_a_check_fails_the_matrix(
    lab: LabSettings, dagster_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "matrix.json"
    sets = ["--settings", "clean:", "--settings", "skip:cache_coherence.fault=skip_invalidation"]
    args = ["matrix", "--areas", "cache_coherence", *sets, "--rounds", "1", "--json", str(out)]
    code = main([*args, *(x for item in TINY for x in ("--set", item))])
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert code == 1, printed
    assert any(r.startswith("cache_coherence.") and r.endswith(": skip") for r in data["regressions"]), printed
    assert "check regression(s)" in printed and "FAIL" in printed
    checks = data["checks"]["cache_coherence"]
    assert all(cell["clean"]["passed"] for cell in checks.values())
    assert not checks["no_divergence_after_settle"]["skip"]["passed"]
    comparison = next(c for c in data["comparisons"] if c["metric"] == "cache_aside.cache_read_p50_ms")
    assert comparison["aa"]["rounds"] == 1 and comparison["resolution"] is None  # one round resolves nothing
    assert comparison["ratios"]["skip"]["ratio"] > 0 and comparison["verdicts"]["skip"] == "n/a"
    # Per variant the summary `regress run --json` writes, and the runs are in Dagster with the matrix's tags.
    assert set(data["runs"]) == {"clean", "skip"}
    assert data["runs"]["skip"]["verdict"] == "failed" and data["runs"]["clean"]["verdict"] == "passed"
    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records(dg.RunsFilter(tags={MATRIX_TAG: data["matrix_id"]}))
        assert sorted(r.dagster_run.tags[VARIANT_TAG] for r in records) == ["clean", "skip"]
    with duckdb.connect(str(dagster_home / "warehouse.duckdb"), read_only=True) as conn:
        failed = conn.execute(
            "SELECT variant FROM matrix_checks WHERE matrix_id = ? AND NOT passed", [data["matrix_id"]]
        ).fetchall()
        assert {row[0] for row in failed} == {"skip"}
        runs = conn.execute(
            "SELECT count(*) FROM runs r JOIN matrix_runs m ON r.run_id = m.dagster_run_id WHERE m.matrix_id = ?",
            [data["matrix_id"]],
        ).fetchall()[0][0]
        assert runs == 2  # the scorecard copied both variants' runs; the matrix tables join them
    page = (dagster_home / "reports" / "matrix" / f"{data['matrix_id']}.html").read_text()
    assert "no_divergence_after_settle" in page and "skip" in page
    assert 'href="matrix/index.html"' in (dagster_home / "reports" / "regression_report.html").read_text()
