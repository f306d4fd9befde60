"""Host context of a verdict (pure): the field's instrument and the host's figures over the same runs tell a
slower server or host ("server/host slower: instrument +x %") from a slower client path."""

from __future__ import annotations

import dagster as dg

from regression_pipelines.alerts.rules import regression_alert
from regression_pipelines.detection.host_context import (
    CLIENT_PATH,
    HOST_BUSIER,
    INSTRUMENT_FAILED,
    NO_CONTEXT,
    PARTLY,
    SERVER_HOST,
    SERVER_SLOWER,
    host_context,
    pair_instrument,
    ratio_name,
)
from regression_pipelines.evaluation import evaluate_asset
from regression_pipelines.results import Direction, Metric, MetricKind, ScenarioResult, to_metadata

LOWER, HIGHER = Direction.LOWER_IS_BETTER, Direction.HIGHER_IS_BETTER


def _step(before: float, after: float, n_before: int = 12, n_after: int = 6, wiggle: float = 0.02) -> list[float]:
    """A level series with a small alternating wiggle, stepping from `before` to `after`."""
    return [
        (before if i < n_before else after) * (1 + wiggle * (1 if i % 2 else -1)) for i in range(n_before + n_after)
    ]


def test_instrument_moving_with_the_metric_is_the_server_or_host() -> None:
    context = host_context(
        _step(1.0, 2.0), LOWER, 12, {"redis_get": _step(0.023, 0.047)}, "redis_get",
        load=_step(1.0, 2.1), steal=[0.0] * 18,
    )  # fmt: skip
    assert context.label == SERVER_HOST
    assert 95 < context.instrument_change_pct < 110 and 95 < context.metric_change_pct < 105
    text = context.describe()
    assert (
        text.startswith("server/host slower: instrument +10") and "redis_get 0.0" in text and "load 1.0 -> 2.1" in text
    )


def test_instrument_standing_still_is_the_client_path() -> None:
    context = host_context(_step(1.0, 1.8), LOWER, 12, {"redis_get": _step(0.05, 0.051)}, "redis_get")
    assert context.label == CLIENT_PATH
    assert context.describe().startswith("client path: instrument +")


def test_an_instrument_explaining_part_of_it_says_so() -> None:
    context = host_context(_step(1.0, 2.0), LOWER, 12, {"pgbench_select": _step(0.3, 0.39)}, "pgbench_select")
    assert context.label == PARTLY and "of the metric's +" in context.describe()


def test_a_higher_is_better_metric_that_dropped_compares_its_inverse() -> None:
    throughput = _step(1000.0, 500.0)
    assert host_context(throughput, HIGHER, 12, {"redis_get": _step(0.02, 0.04)}, "redis_get").label == SERVER_HOST
    assert host_context(throughput, HIGHER, 12, {"redis_get": _step(0.02, 0.02)}, "redis_get").label == CLIENT_PATH


def test_without_a_paired_instrument_a_slower_instrument_or_a_busier_host_is_named() -> None:
    nines = _step(3.0, 2.46)  # stale_read_nines -18 %: not a latency, no instrument of its own
    busier = host_context(nines, HIGHER, 12, {"redis_get": _step(0.023, 0.047)})
    assert busier.label == HOST_BUSIER and busier.instrument == "redis_get"
    loaded = host_context(nines, HIGHER, 12, {}, load=_step(1.0, 2.5))
    assert loaded.label == HOST_BUSIER and "load 1.0 -> 2.5" in loaded.describe()
    assert host_context(nines, HIGHER, 12, {}).label == NO_CONTEXT
    assert host_context(nines, HIGHER, 12, {"redis_get": _step(0.02, 0.02)}).label == CLIENT_PATH
    instrument = host_context(_step(0.02, 0.04), LOWER, 12, {}, load=[1.0] * 18, is_instrument=True)
    assert instrument.label == SERVER_SLOWER


def test_an_instrument_that_stopped_answering_is_named() -> None:
    unavailable = [*_step(0.02, 0.02)[:12], *([None] * 6)]
    context = host_context(_step(1.0, 50.0), LOWER, 12, {"redis_get": unavailable}, "redis_get")
    assert context.label == INSTRUMENT_FAILED
    assert context.describe().startswith("instrument unavailable during the change (redis_get measured 0.02")


def test_no_step_yet_compares_the_newest_run_with_those_before() -> None:
    metric = [1.0] * 10 + [2.0]
    context = host_context(metric, LOWER, None, {"redis_get": [0.02] * 10 + [0.04]}, "redis_get")
    assert context.label == SERVER_HOST and round(context.metric_change_pct) == 100


def test_the_paired_instrument_is_found_from_the_ratio() -> None:
    metric = [1.0, 1.1, 2.0]
    redis_get, pgbench = [0.02, 0.022, 0.04], [0.3, 0.3, 0.31]
    ratio = [m / r for m, r in zip(metric, redis_get, strict=True)]
    assert pair_instrument(metric, ratio, {"pgbench_select": pgbench, "redis_get": redis_get}) == "redis_get"
    assert pair_instrument(metric, [None] * 3, {"redis_get": redis_get}) == ""
    assert ratio_name("cache_aside.cache_read_p50_ms") == "calibration.cache_aside.cache_read_p50_ratio"


def _run(read_ms: float, get_ms: float, load: float) -> ScenarioResult:
    info = MetricKind.INFO
    return ScenarioResult(
        "toy",
        metrics=[
            Metric("cache_read_p50_ms", read_ms, "ms", samples=1000),
            Metric("calibration.redis_get_p50_ms", get_ms, "ms", samples=1000),
            Metric("calibration.cache_read_p50_ratio", read_ms / get_ms, "x", kind=info),
            Metric("host.load1", load, "load", kind=info),
        ],
    )


def test_the_verdict_and_its_summary_carry_the_host_context() -> None:
    history = [_run(r, g, lo) for r, g, lo in zip(_step(1.0, 2.0), _step(0.023, 0.047), _step(1.0, 2.0), strict=True)]
    with dg.instance_for_test() as instance:
        for result in history:  # stored as the factory stores them (the same metadata), without running anything
            instance.report_runless_asset_event(dg.AssetMaterialization("toy_area", metadata=to_metadata(result)))
        evaluation = evaluate_asset(instance, "toy_area")
    assert evaluation is not None
    verdicts = {mv.metric.name: mv for mv in evaluation.regressions}
    read = verdicts["cache_read_p50_ms"]
    assert read.host is not None and read.host.label == SERVER_HOST and read.host.instrument == "redis_get"
    assert "server/host slower: instrument +" in read.describe()
    instrument = verdicts["calibration.redis_get_p50_ms"].host
    assert instrument is not None and instrument.label == HOST_BUSIER and instrument.instrument == ""
    alert = regression_alert(evaluation, read, "http://dagster/runs/x")
    assert alert.annotations["host_context"] == SERVER_HOST
    assert alert.annotations["host_context_detail"].startswith("server/host slower: instrument +")
    assert "server/host slower" in alert.annotations["summary"]
