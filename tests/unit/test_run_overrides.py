import pytest

from regression_pipelines.running.overrides import OverrideError, parse_areas, parse_overrides, to_run_config

FIELDS = {"cache_coherence": ["fault", "max_seconds", "modes"], "ha_health": ["maximum_lag_bytes"]}


def test_values_are_typed_like_yaml() -> None:
    parsed = parse_overrides(
        ["cache_coherence.max_seconds=1.5", "cache_coherence.modes=[cache_aside]", "cache_coherence.fault=no_ttl"],
        FIELDS,
    )
    assert parsed == {"cache_coherence": {"max_seconds": 1.5, "modes": ["cache_aside"], "fault": "no_ttl"}}
    assert to_run_config(parsed) == {"ops": {"cache_coherence": {"config": parsed["cache_coherence"]}}}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("cache_coherence.fault", "expected AREA.KEY=VALUE"),
        ("nope.fault=x", "unknown area 'nope'"),
        ("cache_coherence.faults=x", "has no setting 'faults'; settings: fault, max_seconds, modes"),
    ],
)
def test_bad_overrides_name_the_problem(item: str, message: str) -> None:
    with pytest.raises(OverrideError, match=message):
        parse_overrides([item], FIELDS)


def test_areas_default_to_all_non_destructive_and_unknown_is_named() -> None:
    assert parse_areas(None, list(FIELDS)) == list(FIELDS)
    assert parse_areas(None, list(FIELDS), destructive=["ha_health"]) == ["cache_coherence"]
    assert parse_areas("ha_health", list(FIELDS), destructive=["ha_health"]) == ["ha_health"]
    with pytest.raises(OverrideError, match="unknown cache"):
        parse_areas("cache", list(FIELDS))
