"""Errors are counted per phase and named once each, so a failed no_operation_errors says where they happened."""

from regression_pipelines.measure import ErrorTally


def test_errors_are_attributed_to_phases_and_named_once() -> None:
    tally = ErrorTally()
    tally.ok(8)
    calibrate = tally.at("cache_aside/calibrate")
    calibrate.failed(RuntimeError("OOM command not allowed"))
    tally.at("cache_aside/workload").failed(RuntimeError("OOM command not allowed"), count=3)
    metric, invariant = tally.figures("operations")
    assert not invariant.passed and metric.value == 4 / 12
    assert "by phase: cache_aside/workload 3, cache_aside/calibrate 1" in invariant.detail
    assert invariant.detail.count("OOM command not allowed") == 1  # the same message is named once
    assert "(in cache_aside/calibrate)" in invariant.detail


def test_without_phases_the_detail_is_as_before() -> None:
    tally = ErrorTally()
    tally.failed("boom")
    assert tally.figures()[1].detail == "1 of 1 operations failed (100.00%); first: boom"
