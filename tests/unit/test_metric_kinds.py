"""Only performance metrics are judged by default; volume counts and info figures are shown, never alerted on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
import pytest

from regression_pipelines.evaluation import MetricVerdict, evaluate_asset, policy_for, quantile_from_name
from regression_pipelines.perf_check import check_metadata, description
from regression_pipelines.results import Direction, Metric, MetricKind, ScenarioResult, to_metadata

KEY = dg.AssetKey("demo_area")


def _judge(values: list[float], policies: Mapping[str, Any] | None = None, **metric: Any) -> MetricVerdict:
    """Verdict on the newest of `values` for one metric (name "writes" unless given)."""
    with dg.DagsterInstance.ephemeral() as instance:
        for i, value in enumerate(values):
            fields = {"name": "writes", "unit": "ops", "direction": Direction.HIGHER_IS_BETTER, **metric}
            result = ScenarioResult(area="demo_area", metrics=[Metric(value=value * (1 + 0.005 * (i % 3)), **fields)])
            instance.report_runless_asset_event(dg.AssetMaterialization(KEY, metadata=to_metadata(result)))
        evaluation = evaluate_asset(instance, KEY, policies=policies)
        assert evaluation is not None
        (verdict,) = evaluation.metrics
        return verdict


HALVED = [300.0] * 20 + [150.0] * 3  # the workload simply did half the work on the last three runs


def test_volume_metric_that_halved_is_shown_but_not_judged() -> None:
    mv = _judge(HALVED, kind=MetricKind.VOLUME)
    assert mv.verdict.status == "not_judged" and mv.verdict.reason == "volume metric"
    assert not mv.regressed and mv.verdict.severity == "none" and mv.first_bad is None
    assert mv.verdict.change_pct == pytest.approx(-50, abs=1)  # still shown against its baseline
    assert mv.describe().endswith("ops, not judged (volume metric), -50.0 % vs baseline 301.5 ops")


def test_a_policy_opts_a_volume_metric_in() -> None:
    mv = _judge(HALVED, {"writes": {"judge": True}}, kind=MetricKind.VOLUME)
    assert mv.verdict.status == "regression" and mv.regressed


def test_the_same_drop_of_a_performance_metric_is_a_regression_unless_opted_out() -> None:
    assert _judge(HALVED).verdict.status == "regression"
    opted_out = _judge(HALVED, {"writes": {"judge": False}})
    assert opted_out.verdict.status == "not_judged" and opted_out.verdict.reason == "judge: false in its policy"


def test_info_metric_is_never_judged() -> None:
    mv = _judge(HALVED, {"writes": {"judge": True}}, kind=MetricKind.INFO)
    assert mv.verdict.status == "not_judged" and mv.verdict.reason == "info metric"


def test_p99_from_few_samples_is_not_judged_in_the_evaluation() -> None:
    values = [2.0, 2.1, 1.9] * 7 + [10.0] * 3
    p99 = {"name": "staleness_p99_ms", "unit": "ms", "direction": Direction.LOWER_IS_BETTER}
    few = _judge(values, samples=10, **p99)
    assert few.verdict.status == "insufficient_data" and not few.regressed
    assert few.describe().endswith("ms, not judged yet (p99 of 10 samples; a p99 needs >= 299)")
    assert _judge(values, samples=5000, **p99).verdict.status == "regression"


def test_check_output_lists_unjudged_metrics_with_their_reason() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        for value in HALVED:
            metrics = [
                Metric("writes", value, "ops", Direction.HIGHER_IS_BETTER, MetricKind.VOLUME),
                Metric("latency_ms", 5.0, "ms", samples=20_000),
            ]
            result = ScenarioResult(area="demo_area", metrics=metrics)
            instance.report_runless_asset_event(dg.AssetMaterialization(KEY, metadata=to_metadata(result)))
        evaluation = evaluate_asset(instance, KEY)
        assert evaluation is not None and not evaluation.regressed
        verdicts = check_metadata(evaluation)["verdicts"].value
        assert verdicts["writes"]["status"] == "not_judged" and verdicts["writes"]["reason"] == "volume metric"
        assert verdicts["writes"]["kind"] == "volume" and verdicts["latency_ms"]["samples"] == 20_000
        assert description(evaluation) == "1 metric(s) within baseline, 1 not judged"


@pytest.mark.parametrize(
    ("name", "quantile"),
    [
        ("cache_aside.staleness_p99_ms", 0.99),
        ("db_read_p50_ms", 0.5),
        ("lat_p99.9_ms", 0.999),
        ("staleness_max_ms", 1.0),
        ("p95", 0.95),
        ("ops_per_s", None),
        ("p2p_ms", None),
        ("lat_p999_ms", None),  # ambiguous (99.9?): say it with a quantile policy
    ],
)
def test_quantile_is_read_from_the_name(name: str, quantile: float | None) -> None:
    assert quantile_from_name(name) == (quantile if quantile is None else pytest.approx(quantile))


def test_quantile_policy_overrides_the_name() -> None:
    metric = Metric("tail_ms", 1.0, "ms", samples=10)
    assert policy_for(metric).quantile is None
    assert policy_for(metric, {"quantile": 0.999}).quantile == 0.999


def test_judge_must_be_a_boolean() -> None:
    with pytest.raises(ValueError, match="judge must be true or false"):
        policy_for(Metric("writes", 1.0, "ops"), {"judge": "yes"})


def test_regress_run_output_shows_kind_samples_and_the_not_judged_tally() -> None:
    from regression_pipelines.running.summary import AreaOutcome, RunSummary, render_table

    outcome = AreaOutcome(
        area="demo_area",
        metrics=[Metric("writes", 150, "ops", kind=MetricKind.VOLUME), Metric("p99_ms", 2.0, "ms", samples=12)],
        vs_baseline=[
            {"metric": "writes", "status": "not_judged", "verdict": "not_judged", "summary": "writes: ..."},
            {"metric": "p99_ms", "status": "insufficient_data", "verdict": "insufficient_data", "summary": "..."},
        ],
    )
    summary = RunSummary(run_id="r1", run_status="SUCCESS", outcomes=[outcome], dagster_home="/tmp")
    table = render_table(summary)
    assert "ops  (volume)" in table and "vs baseline: 1 insufficient data, 1 not judged" in table
    metrics = summary.to_json()["areas"][0]["metrics"]
    assert [(m["kind"], m["samples"]) for m in metrics] == [("volume", None), ("performance", 12)]
    assert not outcome.regressed
