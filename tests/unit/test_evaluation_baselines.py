"""Baselines never mix runs whose settings change what the figures mean (faults, failover modes...)."""

from __future__ import annotations

import dagster as dg

from regression_pipelines.evaluation import evaluate_asset
from regression_pipelines.results import Direction, Metric, ScenarioResult, to_metadata

KEY = dg.AssetKey("demo_area")


def _report(instance: dg.DagsterInstance, value: float, fault: str) -> None:
    result = ScenarioResult(
        area="demo_area",
        metrics=[Metric("latency_ms", value, "ms", Direction.LOWER_IS_BETTER)],
        comparable_on={"fault": fault},
    )
    instance.report_runless_asset_event(dg.AssetMaterialization(KEY, metadata=to_metadata(result)))


def _history_sizes(fault_pattern: list[str]) -> tuple[int, str]:
    with dg.DagsterInstance.ephemeral() as instance:
        for i, fault in enumerate(fault_pattern):
            # faulted runs are 5x slower: mixed into the clean baseline they would look like a regression
            _report(instance, 10.0 + (i % 3) * 0.1 if fault == "none" else 50.0, fault)
        evaluation = evaluate_asset(instance, KEY)
        assert evaluation is not None
        (verdict,) = evaluation.metrics
        return verdict.history_n, verdict.verdict.status


def test_clean_run_is_judged_only_against_clean_history() -> None:
    history_n, status = _history_sizes(["none"] * 20 + ["skip_invalidation"] * 5 + ["none"])
    assert history_n == 21
    assert status == "ok"


def test_faulted_run_is_judged_only_against_faulted_history() -> None:
    history_n, _ = _history_sizes(["none"] * 20 + ["skip_invalidation"] * 3)
    assert history_n == 3


def test_nan_metric_gets_no_verdict() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        for value in (1.0, 1.1, float("nan")):
            result = ScenarioResult(area="demo_area", metrics=[Metric("db_read_p99_ms", value, "ms")])
            instance.report_runless_asset_event(dg.AssetMaterialization(KEY, metadata=to_metadata(result)))
        evaluation = evaluate_asset(instance, KEY)
        assert evaluation is not None and evaluation.metrics == ()
