"""Data quality of the loaded table with Great Expectations (an ephemeral context: nothing written to disk).

One expectation suite over the loaded rows; each expectation's outcome becomes a fact of the check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assets.etl_pipeline.generator import STATUSES
from assets.etl_pipeline.oracle import DATA_QUALITY
from regression_pipelines.results import Invariant

COLUMNS = ("job_id", "tenant_id", "issue_key", "title", "status", "priority", "story_points")


def _suite(gx: Any, tenants: Sequence[str], expected_rows: int) -> list[Any]:
    e = gx.expectations
    return [
        *(e.ExpectColumnValuesToNotBeNull(column=c) for c in COLUMNS),
        e.ExpectColumnValuesToBeUnique(column="job_id"),
        e.ExpectColumnValuesToBeInSet(column="tenant_id", value_set=list(tenants)),
        e.ExpectColumnValuesToBeInSet(column="status", value_set=list(STATUSES)),
        e.ExpectColumnValuesToBeBetween(column="priority", min_value=1, max_value=5),
        e.ExpectColumnValuesToBeBetween(column="story_points", min_value=0, max_value=100),
        e.ExpectTableRowCountToEqual(value=expected_rows),
    ]


def validate(rows: Sequence[tuple[Any, ...]], tenants: Sequence[str], expected_rows: int) -> Invariant:
    """`rows` in COLUMNS order; `expected_rows`: the distinct loaded jobs the conservation oracle counted."""
    import great_expectations as gx
    import pandas as pd

    frame = pd.DataFrame(list(rows), columns=list(COLUMNS))
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no tqdm bars in the run's logs
    asset = context.data_sources.add_pandas("etl").add_dataframe_asset("loaded_jobs")
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame})
    suite = context.suites.add(gx.ExpectationSuite(name="etl_loaded_jobs"))
    for expectation in _suite(gx, tenants, expected_rows):
        suite.add_expectation(expectation)
    outcome = batch.validate(suite)
    facts: dict[str, float | int | str | bool] = {}
    failed = []
    for result in outcome.results:
        config = result.expectation_config
        label = f"gx.{config.type}({config.kwargs.get('column', 'table')})"
        info = result.result or {}
        if result.success:
            facts[label] = "passed"
        else:
            seen = info.get("unexpected_count", info.get("observed_value"))
            facts[label] = f"failed: unexpected/observed {seen}"
            failed.append(f"{label} ({seen})")
    total = len(outcome.results)
    detail = (
        f"{total} expectations passed on {len(frame)} loaded rows"
        if not failed
        else f"{len(failed)} of {total} expectations failed: " + "; ".join(failed)
    )
    facts["gx_version"] = gx.__version__
    return Invariant(DATA_QUALITY, bool(outcome.success), detail, facts)
