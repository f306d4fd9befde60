"""Settings of one Delta change-data-feed run: the Dagster run config and the scenario's settings in one model.

`profile=deep` (nightly) fills every setting the run did not set with values that cross the thresholds delta-rs
switches at: MERGEs that match more than DataFusion's 8,192-row batch in one file, many partitions (so many
files per commit), a checkpoint every 5 versions, more writers; bounded to about 10 minutes on 2 cores.
Settings given explicitly always win over the profile.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from regression_pipelines.kit import AreaConfig, one_of

SPARK_MODES = ("auto", "connect", "local", "off")
PROFILES = ("quick", "deep")
PARTITION_VALUES = ("adversarial", "plain")
NUMERICS = ("adversarial", "plain")
# Each fault is real, on the real table, and fails its check (see faults.py).
FAULTS = (
    "none",
    "drop_change_data",  # a _change_data file removed after its commit
    "cdf_off_commit",  # one UPDATE committed with CDF switched off for it
    "skewed_clock_commit",  # one append by a writer whose clock is an hour behind
    "compaction_by_rewrite",  # compaction done as an overwrite of the same rows instead of OPTIMIZE
    "wrong_row_count_stats",  # one append whose file statistics claim more rows than the file holds
    "outside_writer",  # another process (another job) commits to the run's table mid-run
    "delete_commit_file",  # a commit JSON older than the last checkpoint deleted mid-run
    "delete_checkpoint",  # the newest checkpoint file deleted mid-run (_last_checkpoint still names it)
    "blocking_data_file",  # after the workload, a data file of the newest version replaced by a FIFO (reads block)
)
DEEP = {
    "initial_rows": 26_000,  # the hottest of 16 skewed partitions holds ~9,000 rows in one file
    "rows_per_commit": 400,
    "merge_matched_rows": 9_000,
    "large_merges": 2,
    "partitions": 16,
    "serial_commits": 24,
    "writers": 3,
    "concurrent_commits": 8,
    "checkpoint_interval": 5,
    "replay_pairs": 16,
    "split_triples": 16,
    "engine_versions": 10,
    "max_seconds": 300.0,
}


class DeltaCdfConfig(AreaConfig):
    """Bounded by the commit counts and `max_seconds`; a run's table is removed afterwards."""

    profile: Annotated[str, one_of(*PROFILES)] = Field(
        default="quick", description="quick (the default) or deep (nightly: crosses engine thresholds, ~10 min)"
    )
    initial_rows: int = Field(default=600, ge=10, le=1_000_000, description="Rows of the first commit")
    rows_per_commit: int = Field(default=40, ge=1, le=100_000, description="Rows an append/merge writes")
    keys_per_change: int = Field(default=12, ge=1, le=10_000, description="Keys an update/delete touches")
    merge_matched_rows: int = Field(
        default=300, ge=1, le=1_000_000, description="Existing rows a large MERGE matches (>8192 crosses a batch)"
    )
    large_merges: int = Field(default=1, ge=0, le=100, description="Large MERGEs in the single-writer phase")
    partitions: int = Field(default=4, ge=1, le=256, description="Values of the partition column")
    partition_values: Annotated[str, one_of(*PARTITION_VALUES)] = Field(
        default="adversarial", description="adversarial (drawn from the text edge classes) or plain (p0..pN)"
    )
    numerics: Annotated[str, one_of(*NUMERICS)] = Field(
        default="adversarial",
        description="adversarial (int64 edges, 38-digit decimals, timestamps from year 1 to 9999) or plain",
    )
    avoid_known_bugs: bool = Field(
        default=True,
        description="Leave out inputs that hit a known bug of the installed deltalake (README); false reaches them",
    )
    serial_commits: int = Field(default=16, ge=6, le=10_000, description="Commits of the single-writer phase")
    writers: int = Field(default=2, ge=1, le=8, description="Concurrent writers in the second phase")
    concurrent_commits: int = Field(default=8, ge=0, le=10_000, description="Commits per concurrent writer")
    max_conflict_retries: int = Field(default=25, ge=0, le=100, description="Reruns of a conflicted commit")
    checkpoint_interval: int = Field(default=10, ge=2, le=1000, description="delta.checkpointInterval")
    replay_pairs: int = Field(default=8, ge=0, le=1000, description="Random (v, w) replay pairs")
    split_triples: int = Field(default=8, ge=0, le=1000, description="Random (v, u, w) range splits")
    engine_versions: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="Versions the other engines read too (0: every version; delta-rs always reads every version)",
    )
    read_repeats: int = Field(default=3, ge=1, le=20, description="Timed snapshot reads per engine")
    read_timeout_s: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="Time bound of one engine read: a read without an answer by then fails its check, naming the "
        "engine and the read, and that engine's later reads are skipped",
    )
    max_seconds: float = Field(default=120.0, ge=1, le=3600, description="Time budget of the write workload")
    shrink_replays: int = Field(
        default=40, ge=0, le=1000, description="Replays on fresh tables to shrink a failing check (0: no shrinking)"
    )
    shrink_seconds: float = Field(default=90.0, ge=1, le=3600, description="Time budget of shrinking")
    spark: Annotated[str, one_of(*SPARK_MODES)] = Field(
        default="auto", description="auto: Spark Connect if a URL is set, a local session if jars are; or off"
    )
    fault: Annotated[str, one_of(*FAULTS)] = Field(default="none", description=" | ".join(FAULTS))
    seed: int = Field(default=7, description="Seed of the workload and of the sampled ranges")

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, data: Any) -> Any:
        """The deep profile's values for every setting not given explicitly."""
        if isinstance(data, dict) and data.get("profile") == "deep":
            return {**DEEP, **data}
        return data
