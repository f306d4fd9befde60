"""The real code location: every discovered area has its group, tag, checks; the jobs select the right areas and
end with the reporting assets, whose scorecard is downstream of every discovered area."""

from __future__ import annotations

import dagster as dg

from regression_pipelines.definitions import AREAS, build_definitions, defs
from regression_pipelines.kit import AREA_GROUP
from regression_pipelines.perf_check import PERF_CHECK_NAME


def test_the_code_location_loads_as_dagster_dev_loads_it() -> None:
    """Names must be unique across ops, assets and jobs (a clash only shows when the repository is built)."""
    dg.Definitions.validate_loadable(defs)


def _selected(job_name: str) -> set[str]:
    return {key.to_user_string() for key in defs.resolve_job_def(job_name).asset_layer.selected_asset_keys}


def test_every_area_is_an_asset_with_its_group_tag_and_checks() -> None:
    graph = defs.resolve_asset_graph()
    assert AREAS, "no area discovered"
    for area in AREAS:
        node = graph.get(dg.AssetKey(area.name))
        assert node.group_name == AREA_GROUP
        assert node.tags["destructive"] == ("true" if area.destructive else "false")
        assert set(area.kinds) <= node.kinds
        checks = {key.name for key in graph.asset_check_keys if key.asset_key == node.key}
        on_stages = {check for stage in area.stages for check in stage.checks}
        assert (
            checks
            == {*area.invariants, "no_operation_errors", "run_completed", "no_leftovers", PERF_CHECK_NAME} - on_stages
        ), area.name
        assert not graph.get_check_spec(dg.AssetCheckKey(node.key, PERF_CHECK_NAME)).blocking


REPORTING = {"regression_scorecard", "regression_report", "regression_exports"}


def test_default_jobs_select_only_safe_areas_and_destructive_ones_have_their_own_job() -> None:
    """With their stages: an area's assets share its op, so a job runs them together."""
    names = {area.name for area in AREAS}
    safe = {name for area in AREAS if not area.destructive for name in area.asset_names}
    destructive = {name for area in AREAS if area.destructive for name in area.asset_names}
    assert {"ha_failover", "citus_shard_move"} <= destructive
    assert _selected("full_regression") == safe | REPORTING
    assert _selected("hourly_regression") == safe | REPORTING
    assert _selected("destructive_regression") == destructive | REPORTING
    assert "ha_failover" in names - _selected("full_regression")
    assert _selected("regression_reporting") == REPORTING


def test_no_schedule_launches_a_destructive_area() -> None:
    destructive = {area.name for area in AREAS if area.destructive}
    for schedule in defs.resolve_all_schedule_defs() if hasattr(defs, "resolve_all_schedule_defs") else defs.schedules:
        assert not destructive & _selected(schedule.job_name), schedule.name


def test_lineage_reads_areas_then_scorecard_then_report_and_exports() -> None:
    graph = defs.resolve_asset_graph()
    scorecard = graph.get(dg.AssetKey("regression_scorecard"))
    assert scorecard.parent_keys == {dg.AssetKey(area.name) for area in AREAS}
    assert scorecard.child_keys == {dg.AssetKey("regression_report"), dg.AssetKey("regression_exports")}


def test_etl_lineage_reads_source_batch_then_pipeline_then_loaded_jobs() -> None:
    """Asset lineage shows where a failure entered: the input file, the run, the loaded table's quality."""
    graph = defs.resolve_asset_graph()
    source, pipeline, loaded = (dg.AssetKey(n) for n in ("etl_pipeline_source_batch", "etl_pipeline",
                                                         "etl_pipeline_loaded_jobs"))  # fmt: skip
    assert graph.get(source).parent_keys == set() and graph.get(source).child_keys == {pipeline}
    assert graph.get(pipeline).parent_keys == {source}
    assert graph.get(pipeline).child_keys == {loaded, dg.AssetKey("regression_scorecard")}
    assert graph.get(loaded).child_keys == set()
    assert {key.name for key in graph.asset_check_keys if key.asset_key == loaded} == {"data_quality_gx"}
    pipeline_checks = {key.name for key in graph.asset_check_keys if key.asset_key == pipeline}
    assert pipeline_checks == {
        "conservation_per_tenant",
        "tenant_isolation",
        "queues_drained",
        "no_operation_errors",
        "run_completed",
        "no_leftovers",
        PERF_CHECK_NAME,
    }
    assert {graph.get(k).group_name for k in (source, loaded)} == {AREA_GROUP}
    assert {"parquet"} <= graph.get(source).kinds


def test_the_scorecard_follows_discovery_not_a_list() -> None:
    """A team's extra area is upstream of the scorecard as soon as it is discovered."""
    from tests.areas import toy_area

    extra = toy_area(lambda: None, name="team_area")  # type: ignore[arg-type, return-value]
    graph = build_definitions([*AREAS, extra]).resolve_asset_graph()
    assert dg.AssetKey("team_area") in graph.get(dg.AssetKey("regression_scorecard")).parent_keys


def test_declared_policies_reach_the_performance_check() -> None:
    from regression_pipelines.perf_check import policies_for

    graph = defs.resolve_asset_graph()
    for area in AREAS:
        assert policies_for(graph, area.name) == {k: dict(v) for k, v in area.policies.items()}
