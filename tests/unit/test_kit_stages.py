"""An area's stages: declared in plain Python, made into assets of the area's one op, wired upstream -> area ->
downstream, each check on the asset it judges; the run summary, sensor and scorecard still see one area."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from regression_pipelines.kit import Area, AreaSkipped, RunContext, Stage
from regression_pipelines.kit.discovery import AreaDiscoveryError, check_asset_names
from regression_pipelines.kit.factory import area_asset
from regression_pipelines.kit.supervisor import NO_LEFTOVERS, RUN_COMPLETED
from regression_pipelines.measure import NO_OPERATION_ERRORS
from regression_pipelines.reports.history import read_area
from regression_pipelines.reports.scorecard import newest_invariants
from regression_pipelines.results import Invariant, Metric, ScenarioResult
from regression_pipelines.running.execute import _outcomes, stage_owners
from regression_pipelines.sensors import _area_keys
from tests.areas import ToyConfig, step_failure

STAGES = (
    Stage("source", "the input", upstream=True, kinds=("parquet",)),
    Stage("sink", "the output", checks=("sink_ok",)),
)


def _area(run: Any = None, name: str = "staged", **changes: Any) -> Area:
    fields = {
        "name": name,
        "description": "toy with stages",
        "config": ToyConfig,
        "run": run or (lambda config, ctx: None),
        "invariants": ("fed", "sink_ok"),
        "stages": STAGES,
    }
    return Area(**{**fields, **changes})


def _result(invariants: tuple[Invariant, ...] | None = None, **stages: dict[str, Any]) -> ScenarioResult:
    return ScenarioResult(
        "staged",
        [Metric("p99_ms", 1.0, "ms")],
        list(
            invariants
            if invariants is not None
            else (Invariant("fed", True, "fed"), Invariant("sink_ok", False, "2 bad rows"))
        )
        + [Invariant(NO_OPERATION_ERRORS, True, "0 errors")],
        stages=stages
        or {
            "source": {"path": Path("/data/in.parquet"), "rows": 3, "rows_per_tenant": {"a": 2, "b": 1}},
            "sink": {"rows": 2},
        },  # fmt: skip
    )


class Counting:
    """A run function that counts its calls (the workload must run once per step, whatever is selected)."""

    def __init__(self, produce: Any) -> None:
        self.produce, self.calls = produce, 0

    def __call__(self, config: ToyConfig, ctx: RunContext) -> ScenarioResult:
        self.calls += 1
        return self.produce()


def _materialize(area: Area, tmp_path: Path, selection: Any = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [area_asset(area)],
        instance=dg.DagsterInstance.ephemeral(tempdir=str(tmp_path)),
        selection=selection,
        raise_on_error=False,
    )


# --- declaration ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ((Stage("x", ""), Stage("x", "")), "stage names must be unique"),
        ((Stage("staged", ""),), "other than the area's name"),
        ((Stage("bad-name", ""),), "must be a Python identifier"),
        ((Stage("x", "", checks=("typo",)),), r"checks \['typo'\] are not invariants of the area"),
        ((Stage("x", "", checks=("fed",)), Stage("y", "", checks=("fed",))), "a check belongs to one asset only"),
        ((Stage("x", "", kinds=("a", "b", "c", "d")),), "at most 3 kinds"),
    ],
)
def test_bad_stage_declarations_are_refused(stages: tuple[Stage, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _area(stages=stages)


def test_assets_in_lineage_order_and_checks_on_their_stage() -> None:
    area = _area()
    assert area.asset_names == ("staged_source", "staged", "staged_sink")
    assert area.check_asset("sink_ok") == "staged_sink"
    assert area.check_asset("fed") == area.check_asset(NO_OPERATION_ERRORS) == "staged"
    assert _area(stages=()).asset_names == ("staged",)


def test_a_stage_asset_may_not_take_another_areas_name() -> None:
    clash = _area(name="staged_sink", stages=())
    with pytest.raises(AreaDiscoveryError, match="'staged_sink' of area 'staged' is also an asset of area"):
        check_asset_names([clash, _area()])


# --- factory -------------------------------------------------------------------------------------------------


def test_graph_wires_upstream_area_downstream_with_checks_where_they_judge() -> None:
    graph = dg.Definitions(assets=[area_asset(_area())]).resolve_asset_graph()
    source, area, sink = (dg.AssetKey(n) for n in ("staged_source", "staged", "staged_sink"))
    assert graph.get(area).parent_keys == {source} and graph.get(sink).parent_keys == {area}
    assert graph.get(source).parent_keys == set()
    assert {node.group_name for node in (graph.get(source), graph.get(area), graph.get(sink))} == {"areas"}
    assert graph.get(sink).tags == {"destructive": "false", "regress/stage_of": "staged"}
    assert "parquet" in graph.get(source).kinds
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks == {
        ("staged", "fed"),
        ("staged", NO_OPERATION_ERRORS),
        ("staged", RUN_COMPLETED),
        ("staged", NO_LEFTOVERS),
        ("staged", "performance_regression"),
        ("staged_sink", "sink_ok"),
    }
    assert stage_owners(graph) == {source: "staged", sink: "staged"}


def test_one_workload_materializes_every_stage_in_lineage_order(tmp_path: Path) -> None:
    run = Counting(_result)
    result = _materialize(_area(run), tmp_path)
    assert result.success and run.calls == 1
    events = [e.materialization for e in result.get_asset_materialization_events()]
    assert [m.asset_key.to_user_string() for m in events] == ["staged_source", "staged", "staged_sink"]
    source = events[0].metadata
    assert source["path"] == dg.MetadataValue.path("/data/in.parquet")
    assert source["rows"].value == 3 and source["rows_per_tenant"] == dg.MetadataValue.json({"a": 2, "b": 1})
    checks = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    assert not checks[("staged_sink", "sink_ok")].passed
    assert checks[("staged_sink", "sink_ok")].target_materialization_data.storage_id is not None
    assert checks[("staged", "fed")].passed


def test_selecting_one_stage_runs_the_workload_once_and_yields_only_it(tmp_path: Path) -> None:
    run = Counting(_result)
    result = _materialize(_area(run), tmp_path, selection=[dg.AssetKey("staged_sink")])
    assert result.success and run.calls == 1
    assert [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()] == ["staged_sink"]
    assert [(e.asset_key.to_user_string(), e.check_name) for e in result.get_asset_check_evaluations()] == [
        ("staged_sink", "sink_ok")
    ]


def test_a_skipped_area_materializes_no_stage(tmp_path: Path) -> None:
    def skipped() -> ScenarioResult:
        raise AreaSkipped("nothing to test")

    result = _materialize(_area(Counting(skipped)), tmp_path)
    assert result.success
    assert result.get_asset_materialization_events() == []
    assert [e.asset_key.to_user_string() for e in result.get_asset_observation_events()] == ["staged"]
    assert result.get_asset_check_evaluations() == []


def test_a_run_that_does_not_describe_its_declared_stages_is_a_bug(tmp_path: Path) -> None:
    result = _materialize(_area(Counting(lambda: _result(source={"rows": 1}))), tmp_path)
    assert not result.success
    assert "the run described stages ['source']; declared: ['sink', 'source']" in step_failure(result)


# --- consumers: the area stays the unit ----------------------------------------------------------------------


def test_summary_and_scorecard_file_stage_checks_under_the_area() -> None:
    """An invariant the run forgot is only known from its failed check, which sits on the stage's asset."""
    area = _area(Counting(lambda: _result((Invariant("fed", True, "fed"),))))
    with dg.instance_for_test() as instance:
        result = dg.materialize([area_asset(area)], instance=instance)
        graph = dg.Definitions(assets=[area_asset(area)]).resolve_asset_graph()
        (outcome,) = _outcomes(result, ["staged"], stage_owners(graph))
        assert outcome.metrics and outcome.verdict == "failed"
        passed = {i.name: i.passed for i in outcome.invariants}
        assert passed == {
            "fed": True,
            NO_OPERATION_ERRORS: True,
            RUN_COMPLETED: True,
            NO_LEFTOVERS: True,
            "sink_ok": False,
        }
        record = instance.fetch_materializations(dg.AssetKey("staged"), limit=1).records[0]
        found = newest_invariants(instance, area, record)
        synced = read_area(instance, area, None, set()).rows["invariants"]
    assert found["sink_ok"] == (False, "the scenario did not evaluate this invariant")
    filed = {row["invariant"]: row["materialization_id"] for row in synced}
    assert filed == dict.fromkeys(
        ("fed", NO_OPERATION_ERRORS, RUN_COMPLETED, NO_LEFTOVERS, "sink_ok"), record.storage_id
    )


def test_the_sensor_judges_the_area_not_its_stages() -> None:
    context = dg.build_sensor_context(definitions=dg.Definitions(assets=[area_asset(_area())]))
    assert _area_keys(context) == [dg.AssetKey("staged")]
