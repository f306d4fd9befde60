"""Settings of one ETL pipeline run: the Dagster run config and the scenario's settings in one model."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from regression_pipelines.kit import AreaConfig, one_of

QUEUE_TYPES = ("classic", "quorum")
OVERFLOWS = ("drop-head", "reject-publish", "reject-publish-dlx")
# Faults the pipeline must survive (conservation holds) and faults that break one invariant on purpose.
CLEAN_FAULTS = ("none", "worker_sigkill", "poison", "slow_consumer", "broker_restart")
BREAKING_FAULTS = ("ack_before_commit", "non_idempotent_load", "burst", "rls_disabled", "drop_field", "dlq_unbound")
FAULTS = CLEAN_FAULTS + BREAKING_FAULTS


class EtlConfig(AreaConfig):
    """Bounded by `jobs` and `max_seconds`; `fault` injects a real fault on the real broker/database."""

    jobs: int = Field(default=2_000, ge=10, le=2_000_000, description="Jobs the seeded generator produces")
    tenants: int = Field(default=4, ge=1, le=32, description="Tenants (volumes skewed by a Zipf-like law)")
    malformed_rate: float = Field(default=0.03, ge=0, le=0.5, description="Share of jobs with invalid payloads")
    max_seconds: float = Field(default=60.0, gt=0, le=3_600, description="Time budget for the whole run")
    queue_type: Annotated[str, one_of(*QUEUE_TYPES)] = Field(default="classic", description="classic | quorum")
    prefetch: int = Field(default=500, ge=1, le=65_535, description="basic.qos prefetch per worker")
    batch_size: int = Field(default=200, ge=1, le=10_000, description="Loader rows per batch (one commit per tenant)")
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
    seed: int = Field(default=7, description="Seed of the generator")

    @model_validator(mode="after")
    def _faults_need_their_settings(self) -> EtlConfig:
        if self.max_priority and self.queue_type == "quorum":
            raise ValueError("max_priority: quorum queues (RabbitMQ 3.x) have no priorities; use queue_type=classic")
        if self.fault == "burst" and self.max_length == 0:
            raise ValueError("max_length: must be > 0 with fault=burst, e.g. 100 (with overflow=drop-head)")
        if (
            self.fault in ("worker_sigkill", "ack_before_commit", "non_idempotent_load")
            and self.jobs < 4 * self.batch_size
        ):
            raise ValueError(f"jobs: must be >= 4 x batch_size ({4 * self.batch_size}) with fault={self.fault}")
        return self
