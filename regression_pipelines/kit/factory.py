"""The one place an `Area` becomes Dagster: asset, invariant checks, performance check.

A `multi_asset` with `can_subset=True`, so every check output is optional: a skipped area yields no check
results (they show as not executed, never as passed), and the performance check can run on its own from the
UI. The performance verdict is computed after the materialization is stored, from the same history the
regression sensor reads (`evaluation.evaluate_asset`). Figures live in the Dagster instance only; the
regression scorecard (regression_pipelines/reports) copies them into the DuckDB warehouse. No
`from __future__ import annotations` here: Dagster inspects the context annotation when the asset is defined.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pydantic

from regression_pipelines.errors import ResourceConfigError, UnsafeTargetError
from regression_pipelines.kit.config import AreaConfig, describe_validation_error
from regression_pipelines.kit.declaration import AREA_GROUP, Area, AreaSkipped, RunContext
from regression_pipelines.perf_check import PERF_CHECK_NAME, perf_check_result, perf_check_spec
from regression_pipelines.results import ScenarioResult, skipped_metadata, to_metadata

# Errors that mean "this environment cannot be used at all": the asset fails with the message alone.
UNUSABLE_ENVIRONMENT = (ResourceConfigError, UnsafeTargetError)


def dagster_config(area: Area) -> type[dg.Config]:
    """The area's pydantic model as a Dagster Config (same fields, defaults, descriptions, validators)."""
    name = "".join(part.title() for part in area.name.split("_")) + "Config"
    return type(name, (dg.Config, area.config), {"__module__": area.config.__module__})


def parse_config(area: Area, raw: dict[str, Any]) -> AreaConfig:
    """Validate run config with the area's model; a bad value fails before any workload, naming the field."""
    try:
        return area.config.model_validate(raw or {})
    except pydantic.ValidationError as exc:
        raise dg.Failure(description=f"invalid {area.name} config: {describe_validation_error(exc)}") from None


def check_results(area: Area, result: ScenarioResult, selected: set[str]) -> list[dg.AssetCheckResult]:
    """One result per declared invariant; one the scenario forgot fails loudly, an undeclared one is a bug."""
    produced = {inv.name: inv for inv in result.invariants}
    unknown = sorted(set(produced) - set(area.checks))
    if unknown:
        raise ValueError(f"{area.name}: invariants {unknown} are not declared (declared: {list(area.checks)})")
    results = []
    for name in area.checks:
        if name not in selected:
            continue
        inv = produced.get(name)
        results.append(
            dg.AssetCheckResult(
                asset_key=area.name,
                check_name=name,
                passed=bool(inv and inv.passed),
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"detail": inv.detail, **dict(inv.facts)}
                if inv
                else {"detail": "the scenario did not evaluate this invariant"},
            )
        )
    return results


def area_asset(area: Area) -> dg.AssetsDefinition:
    key = dg.AssetKey(area.name)
    check_specs = [
        dg.AssetCheckSpec(name, asset=key, description=f"invariant: {name.replace('_', ' ')}") for name in area.checks
    ]
    check_specs.append(perf_check_spec(key, area.policies))

    @dg.multi_asset(
        name=area.name,
        specs=[
            dg.AssetSpec(
                key,
                group_name=AREA_GROUP,
                description=area.description,
                kinds=set(area.kinds),
                tags={"destructive": str(area.destructive).lower()},
            )
        ],
        check_specs=check_specs,
        can_subset=True,
        required_resource_keys=set(area.resources),
        config_schema=dagster_config(area).to_fields_dict(),
    )
    def _area(context: dg.AssetExecutionContext) -> Iterator[Any]:
        selected = {check.name for check in context.selected_asset_check_keys}
        if key in context.selected_asset_keys:
            materialized = yield from _materialize(context, area, selected)
            if not materialized:
                return
        if PERF_CHECK_NAME in selected:
            yield perf_check_result(context, key, area.policies)

    return _area


def _materialize(context: dg.AssetExecutionContext, area: Area, selected: set[str]) -> Iterator[Any]:
    """Run the workload, store its figures as metadata, yield invariant checks; False if skipped."""
    settings = parse_config(area, context.op_execution_context.op_config)
    run_id = context.run.run_id
    ctx = RunContext(
        run_id=run_id,
        resources={name: getattr(context.resources, name) for name in area.resources},
        output_dir=Path(context.instance.storage_directory()) / area.name / run_id,
        log=context.log,
    )
    try:
        result = area.run(settings, ctx)
    except AreaSkipped as skip:
        context.log.warning(f"{area.name} skipped: {skip.reason}")
        yield dg.MaterializeResult(asset_key=area.name, metadata=skipped_metadata(area.name, skip.reason))
        return False
    except UNUSABLE_ENVIRONMENT as exc:
        raise dg.Failure(description=f"{area.name}: {exc}") from None
    yield dg.MaterializeResult(asset_key=area.name, metadata=to_metadata(result))
    yield from check_results(area, result, selected)
    return True
