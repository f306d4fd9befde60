import json
import math

import dagster as dg
import pytest

from regression_pipelines.area_glue import to_materialize_result
from regression_pipelines.results import (
    Direction,
    Invariant,
    Metric,
    ScenarioResult,
    invariants_from_metadata,
    metrics_from_metadata,
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


def test_materialize_result_has_one_check_per_declared_invariant() -> None:
    materialized = to_materialize_result(_result(), ["no_loss", "isolated", "not_run"])
    outcome = {c.check_name: c.passed for c in materialized.check_results}
    assert outcome == {"no_loss": True, "isolated": False, "not_run": False}
    assert json.loads(materialized.metadata["regress/metric_schema"])["a.ops_per_s"]["direction"] == "higher_is_better"


def test_undeclared_invariant_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="not declared"):
        to_materialize_result(_result(), ["no_loss"])
