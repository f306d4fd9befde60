"""Run config of the Patroni health area (read-only, safe hourly)."""

from __future__ import annotations

from pydantic import Field

from regression_pipelines.kit import AreaConfig


class HealthConfig(AreaConfig):
    maximum_lag_bytes: int = Field(default=16 * 1024 * 1024, ge=0, description="Replication lag the check allows")
    ro_probes: int = Field(
        default=3, ge=1, le=50, description="Connections through the read-only port (HAProxy balances them)"
    )
    latency_statements: int = Field(
        default=500, ge=10, le=100_000, description="SELECT 1 round trips timed through the rw port and on the leader"
    )
    calibrate: bool = Field(default=True, description="Run pgbench on the same ports before the latency sample")
    calibration_seconds: float = Field(default=1.0, ge=0.5, le=30, description="Length of each calibration probe")
