"""Dagster's own launch paths, on the lab, end green: `dagster job launch` (the README's command), the GraphQL
launch the UI's Launchpad uses, and a forced tick of the nightly schedule. Each runs `full_regression`; each run
must be SUCCESS with no destructive area in it, Citus (not installed here, or pointed at a closed port) skipped
with its reason and NOT a green materialization, and the reports built. All three go through the queued run
coordinator and the daemon of one `dagster dev`, as on a person's machine. The same `dagster dev` then shows what
`regress run` did (runs, float metadata, check results; in Chromium: units, rounding, plots apart per setting).

Bounded: tiny area settings (SMALL) and the in-process executor; the three runs take ~1 min each on an idle
2-core machine.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from regression_pipelines.lab.settings import REPO_ROOT, LabSettings
from tests.e2e.dagster_dev import LOCATION, REPOSITORY, dagster_dev, graphql, switch_on_backdated, wait
from tests.e2e.helpers import BIN, FAST_CACHE, free_port, regress

SMALL = """
ops:
  cache_coherence: {config: {max_seconds: 0.5, settle_seconds: 0.2, latency_seconds: 0.2, calibrate: false}}
  etl_pipeline: {config: {jobs: 100}}
  delta_cdf: {config: {initial_rows: 60, serial_commits: 6, concurrent_commits: 2, read_repeats: 1,
                       replay_pairs: 2, split_triples: 2}}
  ha_health: {config: {calibrate: false, latency_statements: 20}}
execution: {config: {in_process: {}}}
"""
CACHE_SMALL = [
    f"--set=cache_coherence.{k}={v}"
    for k, v in {"max_seconds": 0.5, "settle_seconds": 0.2, "latency_seconds": 0.2, "calibrate": "false"}.items()
]
DESTRUCTIVE = {"ha_failover", "citus_shard_move"}
RUN_TIMEOUT_S = 600  # a loaded shared machine; ~60 s idle

# Each test waits for a real run (and the first one for `dagster dev` to start): ~1-2 min on an idle machine,
# several times that on a shared one at load 30+ (measured); the suite-wide 300 s would cut them short.
pytestmark = pytest.mark.timeout(900)

LAUNCH = """mutation($params: ExecutionParams!) { launchPipelineExecution(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }"""


@pytest.fixture(scope="module")
def launch_env(lab: LabSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One DAGSTER_HOME and one `dagster dev` (webserver + daemon) for the module's launches."""
    import dagster as dg

    root = tmp_path_factory.mktemp("launch")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    config = root / "small.yaml"
    config.write_text(SMALL)
    env = {
        "REGRESS_SCHEDULE_RUN_CONFIG": str(config),  # what the schedule's tick runs
        "REGRESS_DELTA_ROOT": str(root / "delta"),
        "REGRESS_CITUS_PORT": str(free_port()),  # skipped even where Citus is installed
        "REGRESS_ALERTMANAGER_URL": "",  # these runs pass; nothing to page anyone about
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        for name, value in env.items():
            patch.setenv(name, value)
        with dg.DagsterInstance.get() as instance:
            # Switched on before the daemon starts, so its scheduler's first iteration finds the tick due and launches
            # it while the webserver comes up; switched on later, the tick waits for the scheduler's next iteration
            # (on minute boundaries: 30 s on average). The tick's test comes first; the other runs follow its run.
            switch_on_backdated(instance, "nightly_full_regression", seconds_back=86_400 - 120)
            with dagster_dev(home, env) as port:
                yield {"home": home, "port": port, "config": config, "instance": instance, "env": env}


def _finished(instance: Any, run_id: str) -> Any:
    run = instance.get_run_by_id(run_id)
    return run if run is not None and run.is_finished else None


def _assert_green_without_destructive_areas_and_citus_skipped(instance: Any, run_id: str) -> None:
    import dagster as dg

    run = wait(f"run {run_id} to finish", lambda: _finished(instance, run_id), RUN_TIMEOUT_S, every_s=2)
    assert run.job_name == "full_regression"
    assert run.status == dg.DagsterRunStatus.SUCCESS, f"run {run_id} ended {run.status}"

    def keys(event_type: Any) -> set[str]:
        entries = instance.all_logs(run_id, of_type=event_type)
        return {e.dagster_event.asset_key.to_user_string() for e in entries if e.dagster_event.asset_key}

    planned = keys(dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
    materialized = keys(dg.DagsterEventType.ASSET_MATERIALIZATION)
    assert not DESTRUCTIVE & planned, f"destructive areas in the run: {DESTRUCTIVE & planned}"
    assert {"cache_coherence", "ha_health", "citus_sharding", "regression_scorecard"} <= planned
    assert {"cache_coherence", "etl_pipeline", "delta_cdf", "ha_health"} <= materialized
    assert {"regression_scorecard", "regression_report", "regression_exports"} <= materialized
    assert "citus_sharding" not in materialized, "a skipped area must not be a (green) materialization"
    observations = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION)
    skips = [
        e.asset_observation
        for e in observations
        if e.dagster_event.asset_key == dg.AssetKey("citus_sharding")
        and e.asset_observation.metadata["regress/status"].value == "skipped"
    ]
    assert skips and skips[0].description.startswith("skipped: no Citus reachable at 127.0.0.1:")
    assert run.tags.get("regress/verdict") in ("passed", "regressed", "failed")  # the verdict, beside the status


def test_a_forced_tick_of_the_nightly_schedule(launch_env: dict[str, Any]) -> None:
    """The nightly schedule, switched on a day back (by the fixture, before the daemon started): its 02:00 tick is
    due, the daemon launches full_regression with REGRESS_SCHEDULE_RUN_CONFIG's settings."""
    import dagster as dg

    instance = launch_env["instance"]

    def scheduled() -> Any:
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/schedule_name": "nightly_full_regression"}))
        return runs[0] if runs else None

    run = wait("the nightly schedule's tick to launch a run", scheduled, 240, every_s=2)
    _assert_green_without_destructive_areas_and_citus_skipped(instance, run.run_id)


def test_dagster_job_launch_as_the_readme_says(launch_env: dict[str, Any]) -> None:
    """`DAGSTER_HOME=... .venv/bin/dagster job launch -j full_regression -w workspace.yaml`: it queues the run
    (printing no run id, hence --run-id) and the daemon of `dagster dev` launches it."""
    run_id = str(uuid.uuid4())
    proc = subprocess.run(
        [str(BIN / "dagster"), "job", "launch", "-j", "full_regression", "-w", "workspace.yaml",
         "-c", str(launch_env["config"]), "--run-id", run_id],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_green_without_destructive_areas_and_citus_skipped(launch_env["instance"], run_id)


def test_the_graphql_launch_the_ui_uses(launch_env: dict[str, Any]) -> None:
    """The Launchpad's `launchPipelineExecution` for full_regression, with the same run config."""
    import yaml

    params = {
        "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": "full_regression"},
        "runConfigData": yaml.safe_load(launch_env["config"].read_text()),
        "mode": "default",
        "executionMetadata": {"tags": [{"key": "regress/launched_by", "value": "e2e graphql"}]},
    }
    result = graphql(launch_env["port"], LAUNCH, {"params": params})["launchPipelineExecution"]
    assert result["__typename"] == "LaunchRunSuccess", result
    _assert_green_without_destructive_areas_and_citus_skipped(launch_env["instance"], result["run"]["runId"])


def test_regress_run_says_the_two_words_the_ui_shows(launch_env: dict[str, Any]) -> None:
    """A run whose invariant fails: Dagster's status SUCCESS (the Runs page), verdict failed (its regress/verdict
    tag); `regress run` prints and writes the same two words, never "FAILED" for a successful run, exits 1 and names
    the failed check. One run: `--json FILE` writes the summary and still prints the table."""
    faulty = ["--set", "cache_coherence.fault=skip_invalidation"]
    out = launch_env["home"].parent / f"faulty-{uuid.uuid4().hex[:8]}.json"
    proc = regress(
        "run", "--areas", "cache_coherence", *CACHE_SMALL, *faulty, "--json", str(out),
        home=launch_env["home"], env=launch_env["env"],
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]  # an invariant failed: a CI job must notice
    summary = json.loads(out.read_text())
    run = launch_env["instance"].get_run_by_id(summary["run_id"])
    assert summary["run_status"] == run.status.value == "SUCCESS"
    assert summary["verdict"] == run.tags["regress/verdict"] == "failed"
    table = proc.stdout
    assert ": SUCCESS (Dagster finished every step)" in table.splitlines()[0]
    head = table.splitlines()[:2]  # (an invariant's own detail may say FAILED: that is the invariant's word)
    assert head[1].startswith("verdict: failed: 2 invariant(s) failed: ") and "FAILED" not in "".join(head)
    assert "[FAIL] no_divergence_after_settle" in table


UI_OUT = REPO_ROOT / "out" / "ui"


def _asset_page(page: Any, port: int, asset: str) -> None:
    page.goto(f"http://127.0.0.1:{port}/assets/{asset}")
    page.get_by_text("Latest materialization").wait_for(timeout=120_000)
    for _ in range(20):  # the "Join the Dagster community" dialog of a first visit
        skip = page.get_by_role("button", name="Skip")
        if skip.count():
            skip.first.click()
            break
        page.wait_for_timeout(500)


def test_an_asset_page_shows_units_and_a_faulted_setting_apart(launch_env: dict[str, Any]) -> None:
    """In Chromium: the metadata table names each figure's unit and holds rounded values; the plots draw the
    faulted run (fault=skip_invalidation, from the test above) apart from the clean ones; a skipped Citus reads
    "Never materialized" with its reason. Screenshots in out/ui/."""
    import re

    from tests.e2e.browser import chromium

    UI_OUT.mkdir(parents=True, exist_ok=True)
    clean = "metric/cache_aside.hit_ratio (ratio) [max_seconds=0.5]"
    faulted = "metric/cache_aside.hit_ratio (ratio) [fault=skip_invalidation, max_seconds=0.5]"
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})  # type: ignore[attr-defined]
        _asset_page(page, launch_env["port"], "cache_coherence")
        page.screenshot(path=str(UI_OUT / "asset_metadata_table.png"))
        table = page.inner_text("body")
        assert "metric/cache_aside.cache_read_p50_ms (ms)" in table and "(ops/s)" in table
        unrounded = [n for n in re.findall(r"\d+\.\d+", table) if len(n.replace(".", "").strip("0")) > 6]
        assert not unrounded, f"metadata values are rounded to 5 significant digits: {unrounded[:5]}"
        page.get_by_role("button", name="Plots").click()
        page.get_by_text(clean, exact=True).wait_for(timeout=60_000)
        page.get_by_text(faulted, exact=True).scroll_into_view_if_needed()
        page.screenshot(path=str(UI_OUT / "asset_plots.png"), full_page=True)
        titles = page.inner_text("body")
        assert clean in titles and faulted in titles  # one plot each: the faulted runs never join the clean line

        _asset_page(page, launch_env["port"], "citus_sharding")
        page.screenshot(path=str(UI_OUT / "skipped_citus.png"))
        text = page.inner_text("body")
        assert "Never materialized" in text and "no Citus reachable at 127.0.0.1" in text


UI_QUERY = """
{ runsOrError { ... on Runs { results { runId jobName status } } }
  assetNodes(assetKeys: [{path: ["cache_coherence"]}]) {
    assetMaterializations(limit: 1) { runId metadataEntries { label __typename } }
    assetChecksOrError { ... on AssetChecks { checks { name executionForLatestMaterialization { runId status } } } }
  } }
"""


def test_a_regress_run_shows_up_in_the_ui_with_metadata_and_checks(launch_env: dict[str, Any]) -> None:
    """The run made by `regress run` is visible in `dagster dev`: run, float metadata (plots) and check results.
    (It shares the module's `dagster dev`: a webserver of its own would cost a start-up and prove nothing more.)"""
    proc = regress(
        "run", "--areas", "cache_coherence", *FAST_CACHE, "--json", "-", home=launch_env["home"], env=launch_env["env"]
    )
    # Exit 1 = an invariant failed: on a loaded machine a 1 s cache run can exceed its stale-read bound (seen in
    # CI at load 8). The UI must show that run all the same; the invariants have their own tests.
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    run_id = summary["run_id"]
    passed = {i["name"]: i["passed"] for area in summary["areas"] for i in area["invariants"]}

    data = graphql(launch_env["port"], UI_QUERY)
    assert {"runId": run_id, "jobName": "full_regression", "status": "SUCCESS"} in data["runsOrError"]["results"]
    (node,) = data["assetNodes"]
    (materialization,) = node["assetMaterializations"]
    assert materialization["runId"] == run_id
    kinds = {e["label"]: e["__typename"] for e in materialization["metadataEntries"]}
    (hit_ratio,) = [label for label in kinds if label.startswith("metric/cache_aside.hit_ratio (ratio)")]
    assert kinds[hit_ratio] == "FloatMetadataEntry"  # numeric entries are what the UI plots, the unit in the key
    checks = {c["name"]: c["executionForLatestMaterialization"] for c in node["assetChecksOrError"]["checks"]}
    for name, ok in passed.items():
        assert checks[name] == {"runId": run_id, "status": "SUCCEEDED" if ok else "FAILED"}, name
