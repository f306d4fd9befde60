"""Errors are counted per phase and named once each, so a failed no_operation_errors says where they happened."""

from regression_pipelines.measure import ErrorTally, describe_error


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


def test_an_error_names_the_causes_its_message_chains_and_nothing_else() -> None:
    """delta-rs (object_store) puts the cause under a generic first line, in colour: an immutable _delta_log read
    "OSError: Generic LocalFileSystem error" alone before."""
    chained = OSError(
        "Generic LocalFileSystem error\n          \x1b[31m↳\x1b[0m Unable to open file "
        "/t/_delta_log/00000000000000000001.json#1\n           \x1b[31m↳\x1b[0m Operation not permitted (os error 1)\n"
    )
    assert describe_error(chained) == (
        "OSError: Generic LocalFileSystem error: Unable to open file /t/_delta_log/00000000000000000001.json#1: "
        "Operation not permitted (os error 1)"
    )
    assert describe_error(RuntimeError("boom\nCaused by: disk full")) == "RuntimeError: boom: disk full"
    assert describe_error(ValueError("first line\nDETAIL: more\nTraceback (most recent call last):")) == (
        "ValueError: first line"
    )
    assert describe_error(KeyError("")) == "KeyError: ''"
    assert describe_error(ValueError("")) == "ValueError: (no message)"
