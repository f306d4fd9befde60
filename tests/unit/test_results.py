import json
import math

import dagster as dg
import pytest

from regression_pipelines.results import (
    Direction,
    Invariant,
    Metric,
    MetricKind,
    ScenarioResult,
    Verdict,
    invariants_from_metadata,
    metric_values,
    metrics_from_metadata,
    overall_verdict,
    settings_label,
    to_metadata,
)


def _result() -> ScenarioResult:
    return ScenarioResult(
        area="demo",
        metrics=[
            Metric("a.latency_ms", 1.5, "ms", Direction.LOWER_IS_BETTER),
            Metric("a.ops_per_s", 1000, "ops/s", Direction.HIGHER_IS_BETTER),
        ],
        invariants=[Invariant("no_loss", True, "0 lost"), Invariant("isolated", False, "2 leaks")],
        environment={"postgres_version": "15.19", "keys": 100},
    )


def test_metadata_round_trip_keeps_value_unit_and_direction() -> None:
    metadata = to_metadata(_result())
    assert metrics_from_metadata(metadata) == sorted(_result().metrics, key=lambda m: m.name)
    assert [i.name for i in invariants_from_metadata(metadata)] == ["isolated", "no_loss"]
    assert metadata["env/keys"] == "100"


def test_round_trip_through_dagster_metadata_values() -> None:
    """The sensor reads stored MetadataValue objects, not plain floats: both must parse the same."""
    stored = {
        key: dg.MetadataValue.text(v) if isinstance(v, str) else dg.MetadataValue.float(v)
        for key, v in to_metadata(_result()).items()
    }
    assert [m.value for m in metrics_from_metadata(stored)] == [1.5, 1000.0]


def test_nan_metric_survives_as_nan() -> None:
    result = ScenarioResult(area="x", metrics=[Metric("p99_ms", math.nan, "ms")])
    (metric,) = metrics_from_metadata(to_metadata(result))
    assert math.isnan(metric.value)


def test_metric_name_with_slash_is_rejected() -> None:
    with pytest.raises(ValueError, match="must be non-empty and contain no '/'"):
        Metric("a/b", 1, "ms")


def test_unknown_direction_is_rejected() -> None:
    with pytest.raises(ValueError):
        Metric("a", 1, "ms", "sideways")  # type: ignore[arg-type]


def test_kind_and_samples_round_trip() -> None:
    result = ScenarioResult(
        area="demo",
        metrics=[
            Metric("a.p99_ms", 4.2, "ms", kind=MetricKind.PERFORMANCE, samples=12),
            Metric("a.writes", 300, "ops", Direction.HIGHER_IS_BETTER, MetricKind.VOLUME),
            Metric("a.version", 15.0, "", kind="info"),  # type: ignore[arg-type]
        ],
    )
    metadata = to_metadata(result)
    assert metrics_from_metadata(metadata) == sorted(result.metrics, key=lambda m: m.name)
    assert {m.name: (m.kind, m.samples) for m in metrics_from_metadata(metadata)} == {
        "a.p99_ms": (MetricKind.PERFORMANCE, 12),
        "a.writes": (MetricKind.VOLUME, None),
        "a.version": (MetricKind.INFO, None),
    }
    assert metadata["metric/a.p99_ms (ms)"] == 4.2  # the plotted key names the unit


def test_metadata_stored_before_kinds_reads_back_as_performance_without_samples() -> None:
    old = {
        "regress/area": "demo",
        "metric/a.writes": 300.0,
        "regress/metric_schema": json.dumps({"a.writes": {"unit": "ops", "direction": "higher_is_better"}}),
    }
    (metric,) = metrics_from_metadata(old)
    assert (metric.kind, metric.samples, metric.direction) == (MetricKind.PERFORMANCE, None, Direction.HIGHER_IS_BETTER)


@pytest.mark.parametrize(("kwargs", "message"), [({"samples": -1}, "samples"), ({"samples": 2.5}, "samples")])
def test_bad_sample_count_is_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Metric("a", 1, "ms", **kwargs)


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError):
        Metric("a", 1, "ms", kind="throughput")  # type: ignore[arg-type]


def test_keys_carry_unit_and_settings_and_values_are_rounded() -> None:
    result = ScenarioResult(
        area="demo",
        metrics=[Metric("a.hit_ratio", 0.062018500000000004, "ratio"), Metric("a.rows", 1234567, "rows")],
    )
    metadata = to_metadata(result, settings="fault=no_ttl")
    assert metadata["metric/a.hit_ratio (ratio) [fault=no_ttl]"] == 0.062019
    assert metadata["metric/a.rows (rows) [fault=no_ttl]"] == 1234567  # whole numbers stay exact
    assert metadata["regress/settings"] == "fault=no_ttl"
    assert [m.name for m in metrics_from_metadata(metadata)] == ["a.hit_ratio", "a.rows"]
    assert metric_values(metadata)["a.hit_ratio"] == 0.062019


def test_keys_written_before_units_still_read_back() -> None:
    old = {"metric/a.p99_ms": 4.2, "regress/metric_schema": json.dumps({"a.p99_ms": {"unit": "ms"}})}
    assert [(m.name, m.value, m.unit) for m in metrics_from_metadata(old)] == [("a.p99_ms", 4.2, "ms")]


def test_settings_label_names_what_differs_from_the_defaults() -> None:
    defaults = {"fault": "none", "modes": ["cache_aside", "write_through"], "readers": 4, "nemesis_at_s": None}
    clean = {"fault": "none", "modes": "cache_aside,write_through", "readers": 4, "engine": "delta-rs"}
    assert settings_label(clean, defaults) == ""
    assert settings_label({**clean, "fault": "no_ttl", "readers": 8}, defaults) == "fault=no_ttl, readers=8"
    assert settings_label({**clean, "synchronous_mode": True}, defaults) == "synchronous_mode=True"
    assert settings_label({**clean, "synchronous_mode": False, "nemesis_at_s": 1.5}, defaults) == "nemesis_at_s=1.5"


def test_metric_names_with_whitespace_are_rejected() -> None:
    with pytest.raises(ValueError, match="whitespace"):
        Metric("a b", 1, "ms")


def test_the_overall_verdict_is_the_worst_and_skipped_never_passes() -> None:
    assert overall_verdict([Verdict.PASSED, Verdict.SKIPPED]) is Verdict.PASSED
    assert overall_verdict([Verdict.PASSED, Verdict.REGRESSED, Verdict.FAILED]) is Verdict.FAILED
    assert overall_verdict([Verdict.SKIPPED, Verdict.SKIPPED]) is Verdict.SKIPPED
    assert overall_verdict([Verdict.ERROR, Verdict.FAILED]) is Verdict.ERROR
    assert overall_verdict([]) is Verdict.NOT_RUN
