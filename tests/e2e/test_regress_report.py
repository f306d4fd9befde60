"""`regress run` prints a JSON summary, stores the run and ends with a current report, also when an area fails;
`regress report` rebuilds it on demand."""

from __future__ import annotations

import json
from pathlib import Path

from regression_pipelines.lab.settings import LabSettings
from tests.e2e.helpers import FAST_CACHE, free_port, regress


def test_run_then_failed_area_then_report(lab: LabSettings, dagster_home: Path, tmp_path: Path) -> None:
    """One clean run serves two things: its JSON summary and stored run (what `regress run --json` promises a CI
    job), and the report the failed run and `regress report` then build on."""
    ok = regress("run", "--areas", "cache_coherence", *FAST_CACHE, "--json", "-", home=dagster_home)
    assert ok.returncode == 0, ok.stderr[-2000:]
    summary = json.loads(ok.stdout)
    (area,) = summary["areas"]
    assert area["area"] == "cache_coherence" and not area["error"]
    names = {m["name"] for m in area["metrics"]}
    assert {"cache_aside.hit_ratio", "write_through.stale_read_rate", "cache_aside.db_read_p99_ms"} <= names
    assert all(inv["passed"] for inv in area["invariants"])
    assert (dagster_home / "runs" / f"{summary['run_id']}.json").exists()
    assert list(dagster_home.rglob("runs.db")), "the run is stored in DAGSTER_HOME for the UI"
    report = Path(summary["report"])
    assert report == dagster_home / "reports" / "regression_report.html" and report.stat().st_size > 1_000_000

    # Nothing listens on this port: the area's step fails, Dagster skips the steps downstream of it, and the
    # reporting assets run on their own right after, so the report still shows this run.
    broken = {"REGRESS_PG_PORT": str(free_port())}
    failed = regress("run", "--areas", "cache_coherence", *FAST_CACHE, home=dagster_home, env=broken)
    assert failed.returncode == 1, failed.stdout[-2000:] + failed.stderr[-2000:]
    assert failed.stdout.strip().splitlines()[-1] == f"report: {report}"

    out = tmp_path / "mail"
    proc = regress("report", "--since", "24h", "--out", str(out), home=dagster_home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == f"report: {out / 'regression_report.html'}"
    status = {line.split()[0]: line.split()[1] for line in lines if "health" in line}
    assert status["cache_coherence"] == "error" and status["ha_failover"] == "not_run"
    assert {p.name for p in (out / "exports").iterdir()} >= {"metrics.parquet", "metrics.json", "scorecard.json"}


def test_report_refuses_a_bad_window(dagster_home: Path) -> None:
    proc = regress("report", "--since", "3x", home=dagster_home)
    assert proc.returncode == 2
    assert "--since: '3x' is not a duration" in proc.stderr
