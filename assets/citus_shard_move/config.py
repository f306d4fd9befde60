"""Run config of the destructive shard-move area: nothing happens unless allow_destructive is true."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from regression_pipelines.kit import AreaConfig, one_of

TRANSFER_MODES = ("auto", "force_logical", "block_writes")
# Real faults on the real cluster, each failing exactly one check (the failing twins).
FAULTS = (
    "none",
    "lost_row",  # after the move, an acknowledged row deleted from the moved shard on its new worker
    "duplicate_row",  # an acknowledged id written again, straight into another shard
    "lock_moved_shard",  # a worker session holds the moved shard's table locked while the move runs
)


class ShardMoveConfig(AreaConfig):
    """One shard move between workers while a ledger writer commits numbered rows; every wait is bounded."""

    allow_destructive: bool = Field(default=False, description="Must be true: this moves shard placements")
    allow_list: list[str] = Field(default_factory=list, description="Non-loopback coordinators you own")
    transfer_mode: Annotated[str, one_of(*TRANSFER_MODES)] = Field(
        default="auto", description="citus_move_shard_placement's shard_transfer_mode: " + " | ".join(TRANSFER_MODES)
    )
    shard_count: int = Field(default=4, ge=1, le=64, description="Shards of the ledger table")
    initial_rows: int = Field(default=5000, ge=0, le=10_000_000, description="Rows copied by the move")
    write_rate_hz: float = Field(default=50.0, gt=0, le=2000, description="Ledger writes per second")
    baseline_s: float = Field(default=1.0, ge=0, le=60, description="Writes before the move")
    tail_s: float = Field(default=1.0, ge=0, le=60, description="Writes after the move")
    max_seconds: float = Field(default=120.0, ge=1, le=3600, description="Bound on the move")
    outage_slo_s: float = Field(default=5.0, gt=0, description="Largest acceptable write outage on the moved shard")
    fault: Annotated[str, one_of(*FAULTS)] = Field(default="none", description=" | ".join(FAULTS))
    lock_seconds: float = Field(default=3.0, gt=0, le=60, description="fault=lock_moved_shard: how long it holds")
