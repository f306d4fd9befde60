"""The one place an `Area` becomes Dagster: asset, its stages' assets, invariant checks, performance check.

A `multi_asset` with `can_subset=True` and every asset skippable, so every output is optional: a skipped area
(its system is not there, or it is destructive and not opted in) materializes nothing and yields no check
results. That is Dagster's own way not to materialize: the asset keeps its last real materialization (or
none), its checks show as skipped (the run finished without executing them), and an `AssetObservation`
carries the reason onto the asset's event log, where the UI lists it next to materializations. A green
"Materialized" with 0 figures would read as a pass. The performance check can run on its own from the UI.
An area's stages (kit.Stage) are more assets of the same op: one workload materializes them all, and the asset
graph shows input -> area -> output with each check on the asset it judges. The performance verdict
is computed after the materialization is stored, from the same history the regression sensor reads
(`evaluation.evaluate_asset`). Figures live in the Dagster instance only; the regression scorecard
(regression_pipelines/reports) copies them into the DuckDB warehouse. No `from __future__ import annotations`
here: Dagster inspects the context annotation when the asset is defined.
"""

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import pydantic
from dagster._core.errors import DagsterExecutionInterruptedError

from regression_pipelines.kit.config import AreaConfig, describe_validation_error
from regression_pipelines.kit.declaration import AREA_GROUP, STAGE_TAG, Area, AreaSkipped, RunContext
from regression_pipelines.kit.run import run_area
from regression_pipelines.kit.supervisor import UNUSABLE_ENVIRONMENT
from regression_pipelines.perf_check import PERF_CHECK_NAME, perf_check_result, perf_check_spec
from regression_pipelines.results import (
    ScenarioResult,
    StageValue,
    rounded,
    settings_label,
    skipped_metadata,
    to_metadata,
)

# The orchestrator's own interrupt (run terminated) passes through the supervisor untouched.
PASSTHROUGH = (DagsterExecutionInterruptedError,)


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
                asset_key=area.check_asset(name),
                check_name=name,
                passed=bool(inv and inv.passed),
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"detail": inv.detail, **_rounded_facts(inv.facts)}
                if inv
                else {"detail": "the scenario did not evaluate this invariant"},
            )
        )
    return results


def _rounded_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    return {k: rounded(v) if isinstance(v, float) else v for k, v in facts.items()}


def default_settings(area: Area, profile: str | None = None) -> dict[str, Any]:
    """The area's settings as a run with no run config has them (what `settings_label` compares against):
    the declared defaults as the model's validators resolve them (a profile fills the settings left unset, so
    a quick run's `keys=100` is a default, not a setting that sets the run apart). For a run of another
    `profile`, the other settings are compared with that profile's: a deep run reads `[profile=deep]`."""
    declared = {name: field.get_default(call_default_factory=True) for name, field in area.config.model_fields.items()}
    try:
        defaults = _resolved(area, declared, {})
        if profile is not None and profile != defaults.get("profile"):
            of_profile = _resolved(area, declared, {"profile": profile})
            defaults.update({name: value for name, value in of_profile.items() if name != "profile"})
    except Exception:  # a setting without a default, an unknown profile: compare with the declared defaults
        return declared
    return defaults


def _resolved(area: Area, declared: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    config = area.config(**given)
    return {name: getattr(config, name, value) for name, value in declared.items()}


def stage_metadata(values: Mapping[str, StageValue]) -> dict[str, Any]:
    """A stage's plain figures as metadata: a Path as a path, a mapping as JSON, numbers and text as they are."""
    metadata: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, Path):
            metadata[name] = dg.MetadataValue.path(str(value))
        elif isinstance(value, Mapping):
            metadata[name] = dg.MetadataValue.json(dict(value))
        else:
            metadata[name] = value
    return metadata


def materializations(area: Area, result: ScenarioResult, selected: set[dg.AssetKey]) -> list[dg.MaterializeResult]:
    """The selected assets of the area in lineage order (upstream stages, the area, downstream stages).

    A run describes only declared stages (anything else is a bug in the area); a stage a crashed run did not
    reach is recorded as not produced, with the reason, so its checks still have an asset to sit on.
    """
    declared = {area.stage_asset(stage.name): stage.name for stage in area.stages}
    crashed = "crash_cause" in result.environment
    if set(result.stages) - set(declared.values()) or (not crashed and set(result.stages) != set(declared.values())):
        raise ValueError(
            f"{area.name}: the run described stages {sorted(result.stages)}; declared: {sorted(declared.values())}"
        )
    out = []
    for name in area.asset_names:
        if dg.AssetKey(name) not in selected:
            continue
        if name == area.name:
            defaults = default_settings(area, result.comparable_on.get("profile"))
            metadata = to_metadata(result, settings_label(result.comparable_on, defaults))
        elif declared[name] in result.stages:
            metadata = stage_metadata(result.stages[declared[name]])
        else:
            metadata = not_produced_metadata(result)
        out.append(dg.MaterializeResult(asset_key=name, metadata=metadata))
    return out


def skip_observation(area: str, reason: str) -> dg.AssetObservation:
    """The skip as Dagster records it: an observation with the reason, never a materialization."""
    metadata = skipped_metadata(area, reason)
    return dg.AssetObservation(asset_key=area, description=f"skipped: {reason}", metadata=metadata)


def not_produced_metadata(result: ScenarioResult) -> dict[str, Any]:
    reason = str(result.environment.get("crash_cause", "the run did not describe this stage"))
    return {"regress/status": "not produced", "regress/reason": reason}


def area_specs(area: Area) -> list[dg.AssetSpec]:
    """The area's asset and one per stage, wired upstream stages -> area -> downstream stages.

    Stages are skippable: a skipped area materializes none of them. They share the area's group and tags (so
    jobs select them with it) and carry STAGE_TAG, so the sensor and scorecard keep judging the area only.
    """
    key = dg.AssetKey(area.name)
    tags = {"destructive": str(area.destructive).lower()}
    specs = [
        dg.AssetSpec(
            key,
            group_name=AREA_GROUP,
            description=area.description,
            kinds=set(area.kinds),
            tags=tags,
            deps=[dg.AssetKey(area.stage_asset(s.name)) for s in area.stages if s.upstream],
            skippable=True,  # a skipped area materializes nothing (see the module docstring)
        )
    ]
    for stage in area.stages:
        specs.append(
            dg.AssetSpec(
                area.stage_asset(stage.name),
                group_name=AREA_GROUP,
                description=stage.description,
                kinds=set(stage.kinds),
                tags={**tags, STAGE_TAG: area.name},
                deps=[] if stage.upstream else [key],
                skippable=True,
            )
        )
    return specs


def area_asset(area: Area) -> dg.AssetsDefinition:
    key = dg.AssetKey(area.name)
    keys = {dg.AssetKey(name) for name in area.asset_names}
    check_specs = [
        dg.AssetCheckSpec(name, asset=area.check_asset(name), description=f"invariant: {name.replace('_', ' ')}")
        for name in area.checks
    ]
    check_specs.append(perf_check_spec(key, area.policies))

    @dg.multi_asset(
        name=area.name,
        specs=area_specs(area),
        check_specs=check_specs,
        can_subset=True,
        required_resource_keys=set(area.resources),
        config_schema=dagster_config(area).to_fields_dict(),
    )
    def _area(context: dg.AssetExecutionContext) -> Iterator[Any]:
        selected = {check.name for check in context.selected_asset_check_keys}
        if keys & context.selected_asset_keys:  # one workload for the area and all its stages
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
        result = run_area(area, settings, ctx, passthrough=PASSTHROUGH)
    except AreaSkipped as skip:
        context.log.warning(f"{area.name} skipped: {skip.reason}")
        if dg.AssetKey(area.name) in context.selected_asset_keys:
            yield skip_observation(area.name, skip.reason)
        return False
    except UNUSABLE_ENVIRONMENT as exc:
        raise dg.Failure(description=f"{area.name}: {exc}") from None
    yield from materializations(area, result, set(context.selected_asset_keys))
    yield from check_results(area, result, selected)
    return True
