"""regress matrix's pure parts: statistics, spec parsing, lock override, interleaving, grid, JSON, exit code."""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from regression_pipelines.matrix import compare, grid
from regression_pipelines.matrix.child import MARK, parse_output, result_from_json, result_to_json
from regression_pipelines.matrix.envs import override
from regression_pipelines.matrix.run import Outcome, run_matrix, schedule
from regression_pipelines.matrix.versions import (
    PYTHON,
    SERVER,
    SETTINGS,
    SpecError,
    Variant,
    parse_settings,
    parse_versions,
)
from regression_pipelines.results import Direction, Invariant, Metric, MetricKind, ScenarioResult

# --- statistics ---------------------------------------------------------------------------------------------


def test_identical_series_give_one_with_an_interval_holding_it() -> None:
    values = [1.0, 1.2, 0.9, 1.1, 1.05]
    ratio = compare.ratio_of_medians(values, values)
    assert ratio.ratio == 1.0 and ratio.low == 1.0 and ratio.high == 1.0 and ratio.contains_one


def test_a_doubling_is_resolved_and_judged_by_direction() -> None:
    a = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0]
    b = [2 * x for x in a[::-1]]
    ratio = compare.ratio_of_medians(a, b)
    assert ratio.ratio == pytest.approx(2.0)
    assert ratio.low > 1.5 and not ratio.contains_one
    assert compare.judge(ratio, lower_is_better=True, resolvable=0.1) == compare.WORSE
    assert compare.judge(ratio, lower_is_better=False, resolvable=0.1) == compare.BETTER


def test_a_change_within_the_aa_resolution_is_same() -> None:
    a = [1.0, 1.01, 0.99, 1.0]
    b = [1.05, 1.06, 1.04, 1.05]
    ratio = compare.ratio_of_medians(a, b)
    assert not ratio.contains_one
    assert compare.judge(ratio, True, resolvable=0.10) == compare.SAME
    assert compare.judge(ratio, True, resolvable=0.01) == compare.WORSE
    assert compare.judge(ratio, True, resolvable=math.nan) == compare.UNKNOWN
    two_rounds = compare.ratio_of_medians([1.0, 1.01], [2.0, 2.02])  # 3 distinct resamples: shown, not judged
    assert two_rounds.ratio == pytest.approx(2.0) and compare.judge(two_rounds, True, 0.01) == compare.UNKNOWN


def test_bootstrap_is_seeded_and_pairs_with_nan_are_left_out() -> None:
    a, b = [1.0, 2.0, 3.0, math.nan, 5.0], [1.1, 2.5, 2.9, 4.0, 4.0]
    assert compare.ratio_of_medians(a, b, seed=3) == compare.ratio_of_medians(a, b, seed=3)
    assert compare.ratio_of_medians(a, b).rounds == 4
    one = compare.ratio_of_medians([2.0], [3.0])
    assert (one.ratio, one.low, one.high, one.rounds) == (1.5, 1.5, 1.5, 1)
    assert math.isnan(compare.ratio_of_medians([], []).ratio)
    assert math.isnan(compare.ratio_of_medians([0.0, 0.0], [1.0, 2.0]).ratio)


def test_resolution_is_the_aa_half_width_and_needs_two_rounds() -> None:
    aa = compare.Ratio(1.0, 0.95, 1.08, rounds=5)
    assert compare.resolution(aa) == pytest.approx(0.08)
    assert math.isnan(compare.resolution(compare.Ratio(1.0, 1.0, 1.0, rounds=1)))


# --- specs --------------------------------------------------------------------------------------------------


def test_versions_parse_into_one_component() -> None:
    variants = parse_versions(" deltalake==1.5.0, deltalake==1.6.6 ")
    assert [v.label for v in variants] == ["deltalake==1.5.0", "deltalake==1.6.6"]
    assert {v.kind for v in variants} == {PYTHON}
    assert {v.kind for v in parse_versions("citus==13.2.0,citus==13.2.2")} == {SERVER}


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("deltalake=1.5.0,deltalake==1.6.6", "expected PACKAGE==VERSION"),
        ("numpy==1.0,numpy==2.0", "not a component"),
        ("deltalake==1.5.0", "at least two"),
        ("deltalake==1.5.0,deltalake==1.5.0", "given twice"),
        ("deltalake==1.5.0,duckdb==2.0.0", "one component per matrix"),
    ],
)
def test_bad_versions_name_the_fix(raw: str, words: str) -> None:
    with pytest.raises(SpecError, match=words):
        parse_versions(raw)


def test_settings_sets_use_the_set_syntax() -> None:
    fields = {"cache_coherence": ["readers", "fault"]}
    a, b = parse_settings(["two:cache_coherence.readers=2;cache_coherence.fault=no_ttl", "defaults:"], fields)
    assert (a.label, a.kind, dict(a.overrides)) == (
        "two",
        SETTINGS,
        {"cache_coherence": {"readers": 2, "fault": "no_ttl"}},
    )
    assert dict(b.overrides) == {}
    with pytest.raises(SpecError, match="no setting 'nope'"):
        parse_settings(["x:cache_coherence.nope=1", "y:"], fields)
    with pytest.raises(SpecError, match="expected NAME:"):
        parse_settings(["cache_coherence.readers=2", "y:"], fields)


def test_the_lock_gets_exactly_one_override() -> None:
    locked = ["# comment", "arro3-core==0.9.1", "deltalake==1.6.6", "Delta_Lake-x==1 ; python_version >= '3.9'", ""]
    assert override(locked, "deltalake", "1.5.0") == [
        "arro3-core==0.9.1",
        "Delta_Lake-x==1 ; python_version >= '3.9'",
        "deltalake==1.5.0",
    ]
    assert override(["pyspark[connect]==4.2.0 ; x"], "pyspark", "4.1.0") == ["pyspark==4.1.0"]


# --- interleaving, aggregation, grid, exit code -------------------------------------------------------------


def _result(area: str, passed: dict[str, bool], latency: float) -> ScenarioResult:
    return ScenarioResult(
        area,
        metrics=[
            Metric("read_p50_ms", latency, "ms", Direction.LOWER_IS_BETTER, MetricKind.PERFORMANCE, 100),
            Metric("rows", 10, "rows", kind=MetricKind.VOLUME),
            Metric("stale_reads", 0, "reads"),
        ],
        invariants=[Invariant(name, ok, "fine" if ok else f"{name} broke") for name, ok in passed.items()],
    )


class FakeExecutor:
    """Per variant label: (checks that fail in every round, checks that fail in round 0 only, latency factor)."""

    def __init__(self, plan: Mapping[str, tuple[set[str], set[str], float]]) -> None:
        self.plan = plan
        self.active: list[str] = []
        self.calls: dict[str, int] = {}

    def activate(self, variant: Variant) -> None:
        self.active.append(variant.label)

    def run(self, variant: Variant, area: str, config: Mapping[str, Any]) -> Outcome:
        always, first_only, factor = self.plan[variant.label]
        call = self.calls[variant.label] = self.calls.get(variant.label, 0) + 1
        if factor < 0:
            return Outcome(error="environment broke")
        checks = {name: name not in always and not (name in first_only and call == 1) for name in ("a", "b", "c")}
        drift = 1.0 + 0.05 * ((sum(self.calls.values()) - 1) // 3 % 3)  # the host's speed, the same within a round
        return Outcome(result=_result(area, checks, factor * drift))


V1, V2 = Variant("pkg==1", PYTHON, "pkg", "1"), Variant("pkg==2", PYTHON, "pkg", "2")


def _matrix(plan: Mapping[str, tuple[set[str], set[str], float]], rounds: int = 4) -> Any:
    return run_matrix(FakeExecutor(plan), ["area1"], [V1, V2], lambda v, a: {}, rounds=rounds, matrix_id="m1")


def test_schedule_runs_each_variant_once_per_round_plus_the_control() -> None:
    slots = schedule([V1, V2], rounds=5, seed=0)
    assert len(slots) == 15
    for number in range(5):
        in_round = [(s.variant.label, s.control) for s in slots if s.round == number]
        assert sorted(in_round) == [("pkg==1", False), ("pkg==1", True), ("pkg==2", False)]
    assert len({tuple(s.variant.label for s in slots if s.round == r) for r in range(5)}) > 1  # shuffled


def test_a_later_version_failing_a_check_the_first_passes_exits_1() -> None:
    matrix = _matrix({"pkg==1": (set(), set(), 1.0), "pkg==2": ({"b"}, set(), 2.0)})
    assert matrix.regressions() == ["area1.b: pkg==2"]
    assert grid.exit_code(matrix) == grid.EXIT_REGRESSED
    cells = matrix.checks("pkg==2", "area1")
    assert cells["b"].word == "FAIL" and cells["b"].detail == "b broke" and cells["a"].passed
    (comparison,) = matrix.comparisons("area1")  # stale_reads is 0 everywhere, rows is not performance
    assert comparison.metric == "read_p50_ms" and comparison.ratios["pkg==2"].ratio == pytest.approx(2.0, rel=0.02)
    assert comparison.aa.contains_one and comparison.verdicts["pkg==2"] == compare.WORSE
    text = grid.render(matrix)
    assert "FAIL" in text and "b @ pkg==2: FAIL: b broke" in text and "1 check regression(s)" in text
    aggregated = matrix.aggregated("pkg==2", "area1")
    assert aggregated is not None and aggregated.comparable_on["matrix_variant"] == "pkg==2"
    assert aggregated.invariant("b").detail == "b broke (failed in 4 of 4 rounds)"


def test_a_fix_in_the_later_version_exits_0_and_a_flaky_check_says_how_often() -> None:
    matrix = _matrix({"pkg==1": ({"c"}, set(), 1.0), "pkg==2": (set(), {"a"}, 1.0)})
    assert matrix.regressions() == ["area1.a: pkg==2"]  # failed in 1 of 4 rounds: still a failure
    assert matrix.checks("pkg==2", "area1")["a"].word == "FAIL 1/4"
    fixed = _matrix({"pkg==1": ({"c"}, set(), 1.0), "pkg==2": (set(), set(), 1.0)})
    assert fixed.regressions() == [] and grid.exit_code(fixed) == grid.EXIT_OK
    assert fixed.fixes() == ["area1.c: pkg==2"] and "fixed: 1 check(s)" in grid.render(fixed)


def test_an_error_in_a_later_version_is_a_regression_and_the_json_has_every_part() -> None:
    matrix = _matrix({"pkg==1": (set(), set(), 1.0), "pkg==2": (set(), set(), -1.0)}, rounds=2)
    assert matrix.status("pkg==2", "area1") == "error: environment broke"
    assert grid.exit_code(matrix) == 1
    data = json.loads(grid.dumps(matrix, runs={"pkg==1": {"run_id": "r1"}}))
    assert data["checks"]["area1"]["a"]["pkg==1"]["passed"] is True
    assert data["runs"] == {"pkg==1": {"run_id": "r1"}} and data["exit_code"] == 1
    assert data["comparisons"][0]["aa"]["rounds"] == 2 and data["comparisons"][0]["ratios"]["pkg==2"]["ratio"] is None


# --- child protocol -----------------------------------------------------------------------------------------


def test_results_round_trip_through_the_child_line() -> None:
    original = _result("area1", {"a": True, "b": False}, 1.5)
    original.environment["where"] = Path("/tmp/x")  # type: ignore[assignment]
    line = MARK + json.dumps({"result": result_to_json(original), "components": {"deltalake": "1.5.0"}})
    outcome = parse_output("noise\n" + line + "\n", "", 0)
    assert outcome.result is not None
    assert outcome.result.metrics == original.metrics
    assert [i.passed for i in outcome.result.invariants] == [True, False]
    assert outcome.result.environment == {"where": "/tmp/x", "component.deltalake": "1.5.0"}
    assert result_from_json(result_to_json(original)).metrics == original.metrics
    skipped = parse_output(MARK + json.dumps({"result": None, "skipped": "no redis"}), "", 0)
    assert skipped.skipped == "no redis" and skipped.result is None
    broken = parse_output("", "Traceback...\nImportError: boom", 1)
    assert broken.error.startswith("the child printed no result (exit 1)") and "ImportError: boom" in broken.error


def test_the_pure_matrix_modules_never_import_dagster() -> None:
    folder = Path(__file__).resolve().parents[2] / "regression_pipelines" / "matrix"
    for name in ("versions", "compare", "run", "grid", "child", "envs", "citus_install"):
        tree = ast.parse((folder / f"{name}.py").read_text())
        modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        modules |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not any(m == "dagster" or m.startswith("dagster.") for m in modules) or name == "child", name


def test_a_replayed_result_lands_on_the_areas_own_asset_and_checks(tmp_path: Path) -> None:
    import dagster as dg

    from regression_pipelines.matrix.dagster_runs import replay_asset
    from tests.areas import skip_reasons, toy_area

    area = toy_area(lambda: ScenarioResult("toy_area"), invariants=("a", "b"))
    result = _result("toy_area", {"a": True, "b": False, "no_operation_errors": True, "run_completed": True,
                                  "no_leftovers": True}, 2.0)  # fmt: skip
    with dg.DagsterInstance.ephemeral(tempdir=str(tmp_path)) as instance:
        done = dg.materialize([replay_asset(area, result)], instance=instance, raise_on_error=False)
        assert done.success
        (event,) = done.get_asset_materialization_events()
        assert event.materialization.metadata["metric/read_p50_ms (ms)"].value == 2.0
        checks = {e.check_name: e.passed for e in done.get_asset_check_evaluations()}
        assert checks == {
            "a": True,
            "b": False,
            "no_operation_errors": True,
            "run_completed": True,
            "no_leftovers": True,
        }
        skipped = dg.materialize([replay_asset(area, None, skipped="no redis")], instance=instance)
        assert skip_reasons(skipped) == {"toy_area": "no redis"}
        failed = dg.materialize([replay_asset(area, None, error="bad env")], instance=instance, raise_on_error=False)
        assert not failed.success


def test_a_variant_that_cannot_be_switched_to_is_an_error_not_a_crash() -> None:
    class NoSwitch(FakeExecutor):
        def activate(self, variant: Variant) -> None:
            if variant.label == "pkg==2":
                raise RuntimeError("citus would not start")

    executor = NoSwitch({"pkg==1": (set(), set(), 1.0), "pkg==2": (set(), set(), 1.0)})
    matrix = run_matrix(executor, ["area1"], [V1, V2], lambda v, a: {}, rounds=2)
    assert matrix.status("pkg==2", "area1") == "error: could not switch to pkg==2: citus would not start"
    assert matrix.status("pkg==1", "area1") == "measured" and grid.exit_code(matrix) == 1
