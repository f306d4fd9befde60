import pydantic
import pytest

from assets.cache_coherence.config import PROFILE_VALUES, CacheConfig
from regression_pipelines.kit import describe_validation_error


def test_defaults_are_valid_and_bounded() -> None:
    config = CacheConfig()
    assert config.profile == "quick" and config.max_ops and config.max_seconds
    assert config.redis_pool_size == config.readers + config.writers + 4


def test_the_profile_fills_only_what_is_unset() -> None:
    deep = CacheConfig(profile="deep", keys=50)
    assert deep.keys == 50 and deep.max_seconds == PROFILE_VALUES["deep"]["max_seconds"]
    assert deep.value_max_bytes > 1_048_576 and deep.key_max_bytes > 65_536  # the thresholds it must cross
    assert deep.redis_pool_size < deep.readers + deep.writers  # a pool smaller than the clients
    explicit_none = CacheConfig.model_validate({"profile": "deep", "readers": None})  # what Dagster passes
    assert explicit_none.readers == PROFILE_VALUES["deep"]["readers"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fault": "oops"}, "fault: 'oops' is unknown; use one of none, skip_invalidation"),
        ({"modes": ["write_back"]}, "modes.0: 'write_back' is unknown; use one of cache_aside, write_through"),
        ({"fault": "delay_invalidation"}, "delay_invalidation_ms: must be > 0"),
        ({"max_seconds": 10_000}, "max_seconds: 10000 is above the maximum 600"),
        ({"readers": 0}, "readers: 0 is below the minimum 1"),
        ({"reader": 3}, "reader: is not a setting of this area"),
        ({"profile": "nightly"}, "profile: 'nightly' is unknown; use one of quick, deep"),
    ],
)
def test_bad_config_names_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        CacheConfig(**kwargs)
    assert message in describe_validation_error(info.value)
