"""Broker restart mid-run: only the lab's own broker, only with allow_destructive (like ha_failover's faults)."""

from __future__ import annotations

from collections.abc import Callable

from regression_pipelines.errors import UnsafeTargetError
from regression_pipelines.lab import control
from regression_pipelines.lab.settings import LabSettings


def broker_restarter(host: str, port: int, allow_destructive: bool) -> Callable[[], None]:
    """A function that restarts the lab broker the resource points at; refuses anything else up front."""
    if not allow_destructive:
        raise UnsafeTargetError(
            "etl_pipeline.allow_destructive: fault=broker_restart restarts the broker; set allow_destructive=true "
            "(only the lab's own broker is ever restarted)"
        )
    s = LabSettings.from_env()
    if port != s.rabbitmq_port or host not in ("127.0.0.1", "localhost"):
        raise UnsafeTargetError(
            f"etl_pipeline: fault=broker_restart only restarts the lab's broker (127.0.0.1:{s.rabbitmq_port}); "
            f"the rabbitmq resource points at {host}:{port}"
        )
    if (why := control.why_not_lab_owned(s, "rabbitmq")) is not None:
        raise UnsafeTargetError(f"etl_pipeline: fault=broker_restart refused: {why}")

    def restart() -> None:
        control.restart_service(s, "rabbitmq", timeout=60.0)

    return restart
