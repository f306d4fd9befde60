"""Settings of one cache-coherence run: the Dagster run config and the scenario's settings in one model.

Settings left unset (None) take their value from the profile: `quick` (the default, about 15 s) or `deep`
(nightly: more keys, clients and time, values past 1 MiB, key names past 64 KiB, multi-key reads of up to 100
keys, a connection pool smaller than the clients; within 10 minutes on 2 cores).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from regression_pipelines.kit import AreaConfig, one_of

MODES = ("cache_aside", "write_through")
PROFILES = ("quick", "deep")
FAULTS = ("none", "skip_invalidation", "delay_invalidation", "no_ttl", "lossy_values", "ttl_unit_mixup")

# Per profile, the settings a run leaves unset. Thresholds crossed on purpose: 65,536 bytes (redis-py's and the
# timed client's socket read size), 1 MiB, PostgreSQL's ~2 kB TOAST threshold and 8 kB page; 64 KiB key names.
PROFILE_VALUES: dict[str, dict[str, Any]] = {
    "quick": {
        "keys": 100,
        "readers": 4,
        "writers": 2,
        "writes_per_second": 200.0,
        "max_ops": 20_000,
        "max_seconds": 4.0,
        "latency_seconds": 1.0,
        "value_max_bytes": 70_000,
        "key_max_bytes": 1_100,
        "multi_read_max": 8,
        "pool_size": 0,
        "history_max": 60_000,
        "shrink_seconds": 20.0,
    },
    "deep": {
        "keys": 2_000,
        "readers": 8,
        "writers": 4,
        "writes_per_second": 600.0,
        "max_ops": 1_000_000,
        "max_seconds": 100.0,
        "latency_seconds": 4.0,
        "value_max_bytes": 1_100_000,
        "key_max_bytes": 70_000,
        "multi_read_max": 100,
        "pool_size": 6,
        "history_max": 300_000,
        "shrink_seconds": 90.0,
    },
}


class CacheConfig(AreaConfig):
    """Bounded by `max_ops` and `max_seconds` per mode; `fault` injects a real bug on the real code path."""

    profile: Annotated[str, one_of(*PROFILES)] = Field(
        default="quick", description="quick (default) or deep (nightly); fills every setting left unset"
    )
    modes: list[Annotated[str, one_of(*MODES)]] = Field(
        default=list(MODES), min_length=1, description="cache_aside and/or write_through"
    )
    keys: int | None = Field(default=None, ge=1, le=100_000, description="Rows/keys in the cached table (profile)")
    readers: int | None = Field(default=None, ge=1, le=64, description="Concurrent reader threads (profile)")
    writers: int | None = Field(default=None, ge=1, le=64, description="Concurrent writer threads (profile)")
    writes_per_second: float | None = Field(default=None, ge=1, le=50_000, description="Total paced write rate")
    max_ops: int | None = Field(default=None, ge=1, le=2_000_000, description="Operation budget per mode (profile)")
    max_seconds: float | None = Field(default=None, ge=0.1, le=600, description="Time budget per mode (profile)")
    ttl_seconds: float = Field(default=30.0, ge=1, le=86_400, description="Longest cache TTL the application sets")
    settle_seconds: float = Field(default=0.5, ge=0, le=60, description="Wait before comparing cache with database")
    max_stale_read_rate: float = Field(default=0.01, ge=0, le=1, description="Bound for the stale-read check")
    fault: Annotated[str, one_of(*FAULTS)] = Field(default="none", description=" | ".join(FAULTS))
    delay_invalidation_ms: int = Field(
        default=0, ge=0, le=10_000, description="Delay for fault=delay_invalidation (ms)"
    )
    seed: int | None = Field(
        default=None, description="Seed of the generated workload; unset: a new one per run (recorded in env/seed)"
    )
    latency_seconds: float | None = Field(
        default=None, ge=0.2, le=60, description="Length of the read-latency phase after each mode's workload"
    )
    calibrate: bool = Field(
        default=True, description="Run redis-benchmark and pgbench against the same servers before the workload"
    )
    calibration_seconds: float = Field(default=1.0, ge=0.5, le=30, description="Length of each calibration probe")
    value_max_bytes: int | None = Field(
        default=None, ge=64, le=64_000_000, description="Largest generated cached value (profile)"
    )
    key_max_bytes: int | None = Field(
        default=None, ge=16, le=1_000_000, description="Longest generated Redis key name (profile)"
    )
    multi_read_max: int | None = Field(default=None, ge=2, le=1000, description="Most keys in one multi-key read")
    pool_size: int | None = Field(
        default=None, ge=0, le=256, description="Redis connection pool size; 0: readers + writers + 4 (profile)"
    )
    history_max: int | None = Field(
        default=None, ge=1000, le=2_000_000, description="Operations kept per mode for replay and shrinking"
    )
    shrink_seconds: float | None = Field(
        default=None, ge=0, le=600, description="Time bound for shrinking failed checks (0: do not shrink)"
    )

    @model_validator(mode="before")
    @classmethod
    def _profile_fills_unset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        profile = data.get("profile") or "quick"
        values = PROFILE_VALUES.get(str(profile), PROFILE_VALUES["quick"])  # a bad profile is named by its check
        return {**data, **{k: v for k, v in values.items() if data.get(k) is None}}

    @model_validator(mode="after")
    def _delay_needs_a_value(self) -> CacheConfig:
        if self.fault == "delay_invalidation" and self.delay_invalidation_ms <= 0:
            raise ValueError("delay_invalidation_ms: must be > 0 with fault=delay_invalidation, e.g. 50")
        return self

    # Resolved views (the validator filled every profile setting): typed, for the scenario.
    @property
    def redis_pool_size(self) -> int:
        return int(self.pool_size or 0) or int(self.readers or 0) + int(self.writers or 0) + 4
