"""Settings of one Delta change-data-feed run: the Dagster run config and the scenario's settings in one model."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from regression_pipelines.kit import AreaConfig, one_of

SPARK_MODES = ("auto", "connect", "local", "off")
# Each fault is real, on the real table, and fails one check (see faults.py).
FAULTS = (
    "none",
    "drop_change_data",  # a _change_data file removed after its commit
    "cdf_off_commit",  # one UPDATE committed with CDF switched off for it
    "skewed_clock_commit",  # one append by a writer whose clock is an hour behind
    "compaction_by_rewrite",  # compaction done as an overwrite of the same rows instead of OPTIMIZE
    "wrong_row_count_stats",  # one append whose file statistics claim more rows than the file holds
)


class DeltaCdfConfig(AreaConfig):
    """Bounded by the commit counts and `max_seconds`; a run's table is removed afterwards."""

    initial_rows: int = Field(default=600, ge=10, le=1_000_000, description="Rows of the first commit")
    rows_per_commit: int = Field(default=40, ge=1, le=100_000, description="Rows an append/merge writes")
    keys_per_change: int = Field(default=12, ge=1, le=10_000, description="Keys an update/delete touches")
    partitions: int = Field(default=3, ge=1, le=64, description="Values of the partition column")
    serial_commits: int = Field(default=16, ge=6, le=10_000, description="Commits of the single-writer phase")
    writers: int = Field(default=2, ge=1, le=8, description="Concurrent writers in the second phase")
    concurrent_commits: int = Field(default=8, ge=0, le=10_000, description="Commits per concurrent writer")
    max_conflict_retries: int = Field(default=25, ge=0, le=100, description="Reruns of a conflicted commit")
    checkpoint_interval: int = Field(default=10, ge=2, le=1000, description="delta.checkpointInterval")
    replay_pairs: int = Field(default=8, ge=0, le=1000, description="Random (v, w) replay pairs")
    split_triples: int = Field(default=8, ge=0, le=1000, description="Random (v, u, w) range splits")
    read_repeats: int = Field(default=3, ge=1, le=20, description="Timed snapshot reads per engine")
    max_seconds: float = Field(default=120.0, ge=1, le=3600, description="Time budget of the write workload")
    spark: Annotated[str, one_of(*SPARK_MODES)] = Field(
        default="auto", description="auto: Spark Connect if a URL is set, a local session if jars are; or off"
    )
    fault: Annotated[str, one_of(*FAULTS)] = Field(default="none", description=" | ".join(FAULTS))
    seed: int = Field(default=7, description="Seed of the workload and of the sampled ranges")
