"""Settings of one cache-coherence run: the Dagster run config and the scenario's settings in one model."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from regression_pipelines.kit import AreaConfig, one_of

MODES = ("cache_aside", "write_through")
FAULTS = ("none", "skip_invalidation", "delay_invalidation", "no_ttl")


class CacheConfig(AreaConfig):
    """Bounded by `max_ops` and `max_seconds` per mode; `fault` injects a real bug on the real code path."""

    modes: list[Annotated[str, one_of(*MODES)]] = Field(
        default=list(MODES), min_length=1, description="cache_aside and/or write_through"
    )
    keys: int = Field(default=100, ge=1, le=100_000, description="Rows/keys in the cached table")
    readers: int = Field(default=4, ge=1, le=64, description="Concurrent reader threads")
    writers: int = Field(default=2, ge=1, le=64, description="Concurrent writer threads")
    writes_per_second: float = Field(default=200.0, ge=1, le=50_000, description="Total paced write rate")
    max_ops: int = Field(default=20_000, ge=1, le=2_000_000, description="Operation budget per mode")
    max_seconds: float = Field(default=4.0, ge=0.1, le=600, description="Time budget per mode")
    ttl_seconds: float = Field(default=30.0, ge=1, le=86_400, description="Cache TTL the application sets")
    settle_seconds: float = Field(default=0.5, ge=0, le=60, description="Wait before comparing cache with database")
    max_stale_read_rate: float = Field(default=0.01, ge=0, le=1, description="Bound for the stale-read check")
    fault: Annotated[str, one_of(*FAULTS)] = Field(default="none", description=" | ".join(FAULTS))
    delay_invalidation_ms: int = Field(
        default=0, ge=0, le=10_000, description="Delay for fault=delay_invalidation (ms)"
    )
    seed: int = Field(default=7, description="Seed of the key choice")
    latency_seconds: float = Field(
        default=1.0, ge=0.2, le=60, description="Length of the read-latency phase after each mode's workload"
    )
    calibrate: bool = Field(
        default=True, description="Run redis-benchmark and pgbench against the same servers before the workload"
    )
    calibration_seconds: float = Field(default=1.0, ge=0.5, le=30, description="Length of each calibration probe")

    @model_validator(mode="after")
    def _delay_needs_a_value(self) -> CacheConfig:
        if self.fault == "delay_invalidation" and self.delay_invalidation_ms <= 0:
            raise ValueError("delay_invalidation_ms: must be > 0 with fault=delay_invalidation, e.g. 50")
        return self
