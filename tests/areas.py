"""Test helpers: a toy area built with the real kit, and materializing any area through its real asset."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from regression_pipelines.kit import Area, AreaConfig, RunContext
from regression_pipelines.kit.factory import area_asset
from regression_pipelines.measure import NO_OPERATION_ERRORS
from regression_pipelines.results import Invariant, ScenarioResult, skip_reason_from_metadata


class ToyConfig(AreaConfig):
    pass


def toy_area(
    produce: Callable[[], ScenarioResult],
    name: str = "toy_area",
    invariants: tuple[str, ...] = (),
    policies: Mapping[str, Mapping[str, Any]] | None = None,
) -> Area:
    """An area whose run returns `produce()` (plus a passing `no_operation_errors` unless it has one)."""

    def run(config: ToyConfig, ctx: RunContext) -> ScenarioResult:
        result = produce()
        if not any(inv.name == NO_OPERATION_ERRORS for inv in result.invariants):
            result.invariants.append(Invariant(NO_OPERATION_ERRORS, True, "0 errors"))
        return result

    return Area(name=name, description="toy", config=ToyConfig, run=run, invariants=invariants, policies=policies or {})


def materialize_area(
    area: Area,
    home: Path,
    resources: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize one area through its real factory-built asset; never raises (inspect the result)."""
    return dg.materialize(
        [area_asset(area)],
        instance=instance or dg.DagsterInstance.ephemeral(tempdir=str(home)),
        resources=dict(resources or {}),
        run_config={"ops": {area.name: {"config": dict(config or {})}}},
        raise_on_error=False,
    )


def step_failure(result: dg.ExecuteInProcessResult) -> str:
    """The one step failure's message (with its cause chain), for asserting on error texts."""
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return failure.step_failure_data.error.to_string()


def skip_reasons(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """area -> reason of every skip the run recorded (an observation, never a materialization)."""
    found = {}
    for event in result.get_asset_observation_events():
        observation = event.asset_observation_data.asset_observation
        reason = skip_reason_from_metadata(observation.metadata)
        if reason:
            found[observation.asset_key.to_user_string()] = reason
    return found
