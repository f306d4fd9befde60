import pydantic
import pytest

from assets.cache_coherence.config import CacheConfig
from assets.cache_coherence.oracle import CommitLog
from assets.cache_coherence.store import CacheEntry
from regression_pipelines.kit import describe_validation_error


def test_defaults_are_valid_and_bounded() -> None:
    config = CacheConfig()
    assert config.max_ops > 0 and config.max_seconds > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fault": "oops"}, "fault: 'oops' is unknown; use one of none, skip_invalidation"),
        ({"modes": ["write_back"]}, "modes.0: 'write_back' is unknown; use one of cache_aside, write_through"),
        ({"fault": "delay_invalidation"}, "delay_invalidation_ms: must be > 0"),
        ({"max_seconds": 10_000}, "max_seconds: 10000 is above the maximum 600"),
        ({"readers": 0}, "readers: 0 is below the minimum 1"),
        ({"reader": 3}, "reader: is not a setting of this area"),
    ],
)
def test_bad_config_names_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        CacheConfig(**kwargs)
    assert message in describe_validation_error(info.value)


def test_commit_log_staleness_counts_from_first_newer_commit() -> None:
    log = CommitLog(keys=1)
    log.record(0, 2, committed_at=10.0)
    log.record(0, 3, committed_at=12.0)
    assert log.latest(0) == 3
    assert log.staleness(0, served_version=1, read_started=13.0) == pytest.approx(3.0)
    assert log.staleness(0, served_version=2, read_started=13.0) == pytest.approx(1.0)
    assert log.staleness(0, served_version=3, read_started=13.0) == 0.0


def test_cache_entry_round_trip_keeps_pipes_in_values() -> None:
    entry = CacheEntry(7, False, "a|b")
    assert CacheEntry.parse(entry.encode()) == entry
