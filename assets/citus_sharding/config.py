"""Settings of one Citus sharding run: the Dagster run config and the scenario's settings in one model."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from regression_pipelines.kit import AreaConfig, one_of

# Each fault is real, on the real cluster, fails exactly one check, and is undone after the run (see faults.py).
FAULTS = (
    "none",
    "wrong_shard_row",  # a row inserted directly into a shard on a worker whose range does not hold its hash
    "leftover_prepared",  # a prepared transaction left on a worker
    "metadata_gap",  # a shard range shrunk in pg_dist_shard so that one hash value belongs to no shard
    "dropped_shard",  # a shard table dropped on its worker
    "lost_row",  # a row deleted directly from its shard on a worker, mid-workload (the differential check)
)


PROFILES = ("quick", "deep")
# The deep profile (nightly): more rows and statements, 32 shards (Citus's default count: multi-shard statements
# then have more tasks than the adaptive executor's pool of 16 connections per node), 20,000 COPY rows, a longer
# timed phase. Bounded by max_seconds like the quick one (benchmarks/citus_sharding/reach.py measures it).
# Settings given explicitly win over the profile's.
DEEP = {
    "accounts": 2000,
    "orders_per_account": 4,
    "shard_count": 32,
    "statements": 1200,
    "copy_rows": 20000,
    "router_queries": 1000,
    "multi_shard_queries": 100,
    "join_queries": 30,
    "sample_rows_per_shard": 5000,
    "minimize_replays": 24,
    "max_seconds": 400.0,
}


class CitusShardingConfig(AreaConfig):
    """Bounded by the counts below and `max_seconds`; the run's schemas are removed afterwards."""

    profile: Annotated[str, one_of(*PROFILES)] = Field(
        default="quick", description="quick (the default) or deep (nightly: larger, about 10x the statements)"
    )

    accounts: int = Field(default=300, ge=10, le=1_000_000, description="Rows of the distributed table at start")
    orders_per_account: int = Field(default=3, ge=0, le=100, description="Co-located rows per account at start")
    shard_count: int = Field(default=8, ge=1, le=256, description="Shards of the distributed tables")
    statements: int = Field(default=150, ge=0, le=100_000, description="Statements of the random DML/query mix")
    copy_rows: int = Field(default=2000, ge=0, le=1_000_000, description="Rows of the timed COPY into Citus")
    router_queries: int = Field(default=200, ge=0, le=100_000, description="Timed single-shard queries")
    multi_shard_queries: int = Field(default=40, ge=0, le=10_000, description="Timed all-shard queries")
    join_queries: int = Field(default=20, ge=0, le=10_000, description="Timed co-located joins, on each system")
    sample_rows_per_shard: int = Field(default=2000, ge=1, le=1_000_000, description="Row-placement sample bound")
    minimize_replays: int = Field(default=16, ge=0, le=200, description="Replays spent shrinking a mismatch")
    max_seconds: float = Field(default=120.0, ge=1, le=3600, description="Time budget of the workload")
    fault: Annotated[str, one_of(*FAULTS)] = Field(default="none", description=" | ".join(FAULTS))
    seed: int = Field(default=11, description="Seed of the data and of the statement mix")
    calibrate: bool = Field(default=True, description="Run pgbench's router query on the coordinator first")
    calibration_seconds: float = Field(default=1.0, ge=0.5, le=30, description="Length of the calibration probe")

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, data: Any) -> Any:
        """The deep profile's sizes, for every setting the run config does not give itself."""
        if isinstance(data, dict) and data.get("profile") == "deep":
            return {**DEEP, **data}
        return data
