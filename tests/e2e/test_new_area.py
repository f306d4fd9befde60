"""Adding an area is one folder: a new package with a trivial area appears in the definitions, both jobs and
`regress run`, with all its checks, without editing any other file (REGRESS_AREA_PACKAGES points at it)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.e2e.helpers import regress

AREA_INIT = '''
"""A trivial area: counts to a number and reports how long it took."""
from pydantic import Field
from regression_pipelines.kit import Area, AreaConfig
from team_areas.counting import scenario


class CountingConfig(AreaConfig):
    up_to: int = Field(default=1000, ge=1, le=10_000_000, description="How far to count")


AREA = Area(
    name="counting",
    description="Counts; a stand-in for a real workload.",
    config=CountingConfig,
    run=lambda config, ctx: scenario.run(config.up_to),
    invariants=("counted_to_the_end",),
)
'''

SCENARIO = """
import time

from regression_pipelines.measure import ErrorTally
from regression_pipelines.results import Invariant, Metric, ScenarioResult


def run(up_to: int) -> ScenarioResult:
    started = time.perf_counter()
    total = sum(range(up_to))
    tally = ErrorTally()
    tally.ok(up_to)
    error_rate, no_errors = tally.figures()
    return ScenarioResult(
        "counting",
        metrics=[Metric("count_s", time.perf_counter() - started, "s"), error_rate],
        invariants=[Invariant("counted_to_the_end", total == up_to * (up_to - 1) // 2, f"sum {total}"), no_errors],
    )
"""

PROBE = """
from regression_pipelines.definitions import defs
graph = defs.resolve_asset_graph()
import dagster as dg, json
key = dg.AssetKey("counting")
print(json.dumps({
    "group": graph.get(key).group_name,
    "tags": graph.get(key).tags,
    "checks": sorted(k.name for k in graph.asset_check_keys if k.asset_key == key),
    "jobs": {j: "counting" in {k.to_user_string() for k in defs.resolve_job_def(j).asset_layer.selected_asset_keys}
             for j in ("full_regression", "hourly_regression")},
}))
"""


def _team_package(root: Path) -> dict[str, str]:
    folder = root / "team_areas" / "counting"
    folder.mkdir(parents=True)
    (root / "team_areas" / "__init__.py").write_text("")
    (folder / "__init__.py").write_text(textwrap.dedent(AREA_INIT))
    (folder / "scenario.py").write_text(textwrap.dedent(SCENARIO))
    return {"REGRESS_AREA_PACKAGES": "team_areas", "PYTHONPATH": str(root)}


def test_one_folder_makes_an_area_everywhere(tmp_path: Path, dagster_home: Path) -> None:
    env = _team_package(tmp_path / "src")
    probe = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**__import__("os").environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    assert seen["group"] == "areas" and seen["tags"]["destructive"] == "false"
    # the area's own invariants, the kit's (every area: the run completed, nothing left behind) and the perf check
    assert seen["checks"] == [
        "counted_to_the_end",
        "no_leftovers",
        "no_operation_errors",
        "performance_regression",
        "run_completed",
    ]
    assert seen["jobs"] == {"full_regression": True, "hourly_regression": True}

    proc = regress(
        "run", "--areas", "counting", "--set", "counting.up_to=5000", "--json", "-", home=dagster_home, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (area,) = json.loads(proc.stdout)["areas"]
    assert area["verdict"] == "passed"
    assert {i["name"]: i["passed"] for i in area["invariants"]} == {
        "counted_to_the_end": True,
        "no_operation_errors": True,
        "run_completed": True,
        "no_leftovers": True,
    }
    # the area's figures, plus the host context the kit records with every run (load, CPUs: read by the verdicts)
    names = {m["name"] for m in area["metrics"]}
    assert {n for n in names if not n.startswith("host.")} == {"count_s", "error_rate"}
    assert {"host.load1", "host.cpus"} <= names

    bad = regress("run", "--areas", "counting", "--set", "counting.up_to=0", home=dagster_home, env=env)
    assert bad.returncode == 2 and "counting: up_to: 0 is below the minimum 1" in bad.stderr
