"""`regress run` where no Citus answers (what CI sees): the area is skipped with its reason in the summary
and the report's scorecard, never passed, and the run exits 0."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.helpers import free_port, regress


def test_run_without_citus_reports_the_area_skipped_and_succeeds(dagster_home: Path) -> None:
    port = free_port()
    env = {"REGRESS_CITUS_HOST": "127.0.0.1", "REGRESS_CITUS_PORT": str(port)}
    proc = regress("run", "--areas", "citus_sharding", "--json", "-", home=dagster_home, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    (area,) = summary["areas"]
    assert summary["run_status"] == "SUCCESS" and summary["verdict"] == "skipped"
    assert area["verdict"] == "skipped" and area["invariants"] == [] and area["metrics"] == []
    assert area["skipped"].startswith(f"no Citus reachable at 127.0.0.1:{port} (")
    report = Path(summary["report"]).read_text()
    assert "citus_sharding" in report and "no Citus reachable at 127.0.0.1" in report
