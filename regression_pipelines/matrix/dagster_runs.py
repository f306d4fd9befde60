"""Each matrix variant as one Dagster run, tagged `regress/matrix=<id>` and `regress/version=<label>`.

Why one run per variant (rather than one run holding every variant, or one per round):
- an asset has one materialization per run, so one run per variant is the only shape in which every version's
  figures and checks sit on the area's own asset, with the check results the UI already knows how to show;
- the Runs page filters by tag: `regress/matrix=<id>` lists exactly the matrix's runs, `regress/version=...` a
  version's history across matrices, with no new UI;
- it is what `regress run` does per invocation, so each variant gets the same summary, verdicts, scorecard,
  warehouse rows and report (`regress run --json`'s shape, reused for `regress matrix --json`);
- per-round runs would multiply runs by the round count and put interleaving (a measurement concern) into
  the orchestrator's history; the rounds stay in the matrix's own record (warehouse, JSON).

The rounds ran earlier, in the variants' own processes (`child`); the run records the variant's aggregated
result (`MatrixResult.aggregated`: every check as in every round, each figure the median over rounds) through
a stand-in asset per area that has the real asset's key, stages and checks and yields that result with the
factory's own translation (`materializations`, `check_results`), so metadata and checks are exactly what a
normal run writes. `comparable_on` carries `matrix_variant`, so the regression baseline of a normal run
never mixes with a version's figures. No `from __future__ import annotations`: Dagster inspects the context
annotation when the asset is defined.
"""

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg

from regression_pipelines.kit import Area
from regression_pipelines.kit.factory import area_asset, area_specs, check_results, materializations, skip_observation
from regression_pipelines.matrix.run import MATRIX_TAG, VARIANT_TAG, MatrixResult
from regression_pipelines.results import ScenarioResult
from regression_pipelines.running.summary import RunSummary

LAUNCHED_BY = "regress matrix"


def replay_asset(area: Area, result: ScenarioResult | None, skipped: str = "", error: str = "") -> dg.AssetsDefinition:
    """The area's asset (same keys, stages and checks) yielding a result measured elsewhere."""
    keys = {dg.AssetKey(name) for name in area.asset_names}
    check_specs = [
        dg.AssetCheckSpec(name, asset=area.check_asset(name), description=f"invariant: {name.replace('_', ' ')}")
        for name in area.checks
    ]

    @dg.multi_asset(name=area.name, specs=area_specs(area), check_specs=check_specs, can_subset=True)
    def _replay(context: dg.AssetExecutionContext) -> Iterator[Any]:
        if error:
            raise dg.Failure(description=f"{area.name}: {error}")
        if skipped or result is None:
            if dg.AssetKey(area.name) in context.selected_asset_keys:
                yield skip_observation(area.name, skipped or "no round measured this area")
            return
        if keys & context.selected_asset_keys:
            selected = {check.name for check in context.selected_asset_check_keys}
            yield from materializations(area, result, set(context.selected_asset_keys))
            yield from check_results(area, result, selected)

    return _replay


def variant_definitions(all_areas: Sequence[Area], matrix: MatrixResult, label: str) -> dg.Definitions:
    from regression_pipelines.jobs import JOBS
    from regression_pipelines.reports.assets import reporting_assets
    from regression_pipelines.resources_config import build_resources

    assets = []
    for area in all_areas:
        if area.name not in matrix.areas:
            assets.append(area_asset(area))
            continue
        status = matrix.status(label, area.name)
        assets.append(
            replay_asset(
                area,
                matrix.aggregated(label, area.name),
                skipped=status.removeprefix("skipped: ") if status.startswith("skipped") else "",
                error=status.removeprefix("error: ") if status.startswith("error") else "",
            )
        )
    return dg.Definitions(assets=[*assets, *reporting_assets(all_areas)], jobs=JOBS, resources=build_resources())


def record_runs(
    instance: dg.DagsterInstance,
    all_areas: Sequence[Area],
    matrix: MatrixResult,
    dagster_home: str,
    log_level: str = "WARNING",
) -> dict[str, RunSummary]:
    """One tagged run per variant, in the grid's order; each variant's summary as `regress run` makes it."""
    from regression_pipelines.running.execute import attach_verdicts, current_report, run_areas, summarise

    destructive = [area.name for area in all_areas if area.destructive]
    summaries = {}
    for label in matrix.labels:
        defs = variant_definitions(all_areas, matrix, label)
        tags = {"regress/launched_by": LAUNCHED_BY, MATRIX_TAG: matrix.matrix_id, VARIANT_TAG: label}
        result, outcomes = run_areas(defs, instance, matrix.areas, {}, log_level, destructive, tags=tags)
        attach_verdicts(defs, instance, outcomes)
        summary = summarise(instance, result, outcomes, dagster_home)
        report = current_report(defs, instance, result, log_level)
        summary.report_path = report.html if report else ""
        summaries[label] = summary
    return summaries


def matrix_runs(instance: dg.DagsterInstance, matrix_id: str) -> Mapping[str, str]:
    """version label -> run id of a matrix's runs, read back from Dagster by tag."""
    records = instance.get_run_records(dg.RunsFilter(tags={MATRIX_TAG: matrix_id}))
    return {record.dagster_run.tags.get(VARIANT_TAG, ""): record.dagster_run.run_id for record in records}
