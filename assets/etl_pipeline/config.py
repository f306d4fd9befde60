"""Settings of one ETL pipeline run: the Dagster run config and the scenario's settings in one model.

Settings left unset (None) take their value from the profile: `quick` (the default: today's 2,000 jobs over 4
tenants) or `deep` (nightly, within 10 minutes on 2 cores: 40,000 jobs over 16 tenants, a prefetch one below the
loader batch (every batch is cut by the prefetch window, not by the batch size), bodies around the AMQP frame
size, more duplicate ids and republished jobs, a longer shrink budget). The seed, unset, is drawn per run and
recorded (environment `seed`, the source batch's `seed`): the same seed and settings replay the same jobs.
"""

from __future__ import annotations

import random
from typing import Annotated, Any

from pydantic import Field, model_validator

from regression_pipelines.kit import AreaConfig, one_of

QUEUE_TYPES = ("classic", "quorum")
OVERFLOWS = ("drop-head", "reject-publish", "reject-publish-dlx")
# Faults the pipeline must survive (conservation holds) and faults that break one invariant on purpose.
CLEAN_FAULTS = ("none", "worker_sigkill", "poison", "slow_consumer", "broker_restart")
BREAKING_FAULTS = ("ack_before_commit", "non_idempotent_load", "burst", "rls_disabled", "drop_field", "dlq_unbound")
FAULTS = CLEAN_FAULTS + BREAKING_FAULTS
PROFILES = ("quick", "deep")
PROFILE_VALUES: dict[str, dict[str, Any]] = {
    "quick": {
        "jobs": 2_000,
        "tenants": 4,
        "max_seconds": 60.0,
        "prefetch": 500,
        "batch_size": 200,
        "adversarial_rate": 0.05,
        "duplicate_id_rate": 0.01,
        "republish_rate": 0.01,
        "frame_bodies": False,
        "shrink_seconds": 30.0,
    },
    "deep": {
        "jobs": 40_000,
        "tenants": 16,
        "max_seconds": 420.0,
        "prefetch": 255,
        "batch_size": 256,
        "adversarial_rate": 0.08,
        "duplicate_id_rate": 0.02,
        "republish_rate": 0.02,
        "frame_bodies": True,
        "shrink_seconds": 120.0,
    },
}


class EtlConfig(AreaConfig):
    """Bounded by `jobs` and `max_seconds`; `fault` injects a real fault on the real broker/database."""

    profile: Annotated[str, one_of(*PROFILES)] = Field(
        default="quick", description="quick (default) or deep (nightly); fills every setting left unset"
    )
    jobs: int | None = Field(default=None, ge=1, le=2_000_000, description="Jobs the seeded generator produces")
    tenants: int | None = Field(default=None, ge=1, le=32, description="Tenants (volumes skewed by a Zipf-like law)")
    malformed_rate: float = Field(default=0.03, ge=0, le=0.5, description="Share of jobs with invalid payloads")
    max_seconds: float | None = Field(default=None, gt=0, le=3_600, description="Time budget for the whole run")
    queue_type: Annotated[str, one_of(*QUEUE_TYPES)] = Field(default="classic", description="classic | quorum")
    prefetch: int | None = Field(default=None, ge=1, le=65_535, description="basic.qos prefetch per worker")
    batch_size: int | None = Field(
        default=None, ge=1, le=10_000, description="Loader rows per batch (one commit per tenant)"
    )
    batch_wait_ms: int = Field(default=20, ge=1, le=5_000, description="Loader flushes a partial batch after this")
    max_length: int = Field(default=0, ge=0, le=10_000_000, description="x-max-length of each work queue (0: none)")
    overflow: Annotated[str, one_of(*OVERFLOWS)] = Field(
        default="reject-publish", description="x-overflow when max_length is reached: " + " | ".join(OVERFLOWS)
    )
    message_ttl_ms: int = Field(default=0, ge=0, le=86_400_000, description="x-message-ttl (0: none)")
    max_priority: int = Field(
        default=0,
        ge=0,
        le=255,
        description="x-max-priority of each work queue (classic only; 0: none); tenant i publishes at priority "
        "min(i, max_priority), so the smaller tenants overtake the biggest",
    )
    transformers: int = Field(default=1, ge=1, le=16, description="Transform worker processes")
    loaders: int = Field(default=2, ge=1, le=16, description="Load worker processes")
    fault: Annotated[str, one_of(*FAULTS)] = Field(default="none", description=" | ".join(FAULTS))
    slow_ms: int = Field(default=30, ge=0, le=5_000, description="fault=slow_consumer: loader pause per batch (ms)")
    allow_destructive: bool = Field(default=False, description="Must be true for fault=broker_restart")
    seed: int | None = Field(
        default=None, description="Seed of the generated workload; unset: a new one per run (recorded in env/seed)"
    )
    adversarial_rate: float | None = Field(
        default=None, ge=0, le=1, description="Share of jobs drawn from adversarial values and edge shapes (profile)"
    )
    duplicate_id_rate: float | None = Field(
        default=None, ge=0, le=0.5, description="Share of jobs reusing another tenant's job id (profile)"
    )
    republish_rate: float | None = Field(
        default=None, ge=0, le=0.5, description="Share of jobs the producer publishes again (profile)"
    )
    frame_bodies: bool | None = Field(default=None, description="Bodies around the AMQP frame size (profile)")
    shrink_seconds: float | None = Field(
        default=None, ge=0, le=600, description="Time bound for shrinking a failed conservation/quality check"
    )
    only_jobs: list[int] | None = Field(
        default=None, description="Publish only these indexes of the seeded jobs (a shrunk case replays this way)"
    )

    @model_validator(mode="before")
    @classmethod
    def _profile_fills_unset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        profile = data.get("profile") or "quick"
        values = PROFILE_VALUES.get(str(profile), PROFILE_VALUES["quick"])  # a bad profile is named by its check
        filled = {**data, **{k: v for k, v in values.items() if data.get(k) is None}}
        if filled.get("seed") is None:
            filled["seed"] = random.SystemRandom().randrange(2**31)
        return filled

    @model_validator(mode="after")
    def _faults_need_their_settings(self) -> EtlConfig:
        if self.max_priority and self.queue_type == "quorum":
            raise ValueError("max_priority: quorum queues (RabbitMQ 3.x) have no priorities; use queue_type=classic")
        if self.fault == "burst" and self.max_length == 0:
            raise ValueError("max_length: must be > 0 with fault=burst, e.g. 100 (with overflow=drop-head)")
        if self.fault in ("worker_sigkill", "ack_before_commit", "non_idempotent_load") and int(
            self.jobs or 0
        ) < 4 * int(self.batch_size or 0):
            least = 4 * int(self.batch_size or 0)
            raise ValueError(f"jobs: must be >= 4 x batch_size ({least}) with fault={self.fault}")
        return self
