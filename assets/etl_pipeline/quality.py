"""Data quality of the loaded table with Great Expectations (an ephemeral context: nothing written to disk).

One expectation suite over the loaded rows; each expectation's outcome becomes a fact of the check. What the
table must hold comes from the producer's own ledger (the jobs it published and the broker acked), never from
the system under test: the expected row count used to be the rows loaded, so a trigger silently dropping 1% of
the rows passed (issue 19). Now the row count lies between the confirmed valid jobs and those plus the valid
jobs whose confirm never came (at-least-once: they may legitimately be there), every confirmed valid job has its
row, and no row is a job the producer never published as valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from assets.etl_pipeline.generator import STATUSES
from assets.etl_pipeline.oracle import DATA_QUALITY
from regression_pipelines.results import Invariant

COLUMNS = ("job_id", "tenant_id", "issue_key", "title", "status", "priority", "story_points")
KEY = "job_key"  # a derived column: tenant and job id (a job id is the tenant's own)
IN_LEDGER = "in_ledger"  # derived: the row's job is one the producer published as valid (confirmed or not)
CONFIRMED = "confirmed_job"  # derived: 1 when the row's job is a confirmed valid one
SEP = "\x1f"


def job_key(tenant: str, job_id: str) -> str:
    return f"{tenant}{SEP}{job_id}"


@dataclass(frozen=True)
class Ledger:
    """What the producer knows, by its own account: the valid jobs the broker confirmed (each must be a row) and
    the valid jobs it published without a confirm (outcome unknown: each may be a row)."""

    confirmed_valid: frozenset[str]
    unknown_valid: frozenset[str]

    @classmethod
    def from_published(cls, attempted: Iterable[Any], produced: Mapping[Any, tuple[str, bool]]) -> Ledger:
        """`attempted`: the jobs published (with .tenant, .job_id, .valid, .key); `produced`: confirmed key ->
        (tenant, valid), keyed by (tenant, job id)."""
        confirmed, unknown = set(), set()
        for job in attempted:
            if not job.valid:
                continue
            (confirmed if job.key in produced else unknown).add(job_key(job.tenant, job.job_id))
        return cls(frozenset(confirmed), frozenset(unknown - confirmed))

    @classmethod
    def exact(cls, keys: Iterable[tuple[str, str]]) -> Ledger:
        return cls(frozenset(job_key(t, j) for t, j in keys), frozenset())


def _suite(gx: Any, tenants: Sequence[str], ledger: Ledger) -> list[Any]:
    e = gx.expectations
    low = len(ledger.confirmed_valid)
    high = low + len(ledger.unknown_valid)
    count = (
        e.ExpectTableRowCountToEqual(value=low)
        if low == high
        else e.ExpectTableRowCountToBeBetween(min_value=low, max_value=high)
    )
    return [
        *(e.ExpectColumnValuesToNotBeNull(column=c) for c in COLUMNS),
        e.ExpectCompoundColumnsToBeUnique(column_list=["tenant_id", "job_id"]),
        e.ExpectColumnValuesToBeInSet(column="tenant_id", value_set=list(tenants)),
        e.ExpectColumnValuesToBeInSet(column="status", value_set=list(STATUSES)),
        e.ExpectColumnValuesToBeBetween(column="priority", min_value=1, max_value=5),
        e.ExpectColumnValuesToBeBetween(column="story_points", min_value=0, max_value=100),
        count,
        # Membership in the ledger is a derived column (a set of 40,000 keys in an expectation's config costs GX
        # seconds to serialize): every row a job the producer published as valid, and, rows being unique, the
        # confirmed ones all there exactly when their count is the ledger's.
        e.ExpectColumnValuesToBeInSet(column=IN_LEDGER, value_set=[True]),
        e.ExpectColumnSumToBeBetween(column=CONFIRMED, min_value=low, max_value=low),
    ]


def validate(rows: Sequence[tuple[Any, ...]], tenants: Sequence[str], ledger: Ledger | int) -> Invariant:
    """`rows` in COLUMNS order; `ledger`: the producer's ledger (an int, the old way, is refused: it came from
    the system under test)."""
    import great_expectations as gx
    import pandas as pd

    if not isinstance(ledger, Ledger):
        raise TypeError("quality.validate: pass the producer's Ledger, not a count read from the loaded table")
    frame = pd.DataFrame(list(rows), columns=list(COLUMNS))
    frame[KEY] = [job_key(t, j) for j, t in zip(frame["job_id"], frame["tenant_id"], strict=True)]
    allowed = ledger.confirmed_valid | ledger.unknown_valid
    frame[IN_LEDGER] = [key in allowed for key in frame[KEY]]
    frame[CONFIRMED] = [int(key in ledger.confirmed_valid) for key in frame[KEY]]
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no tqdm bars in the run's logs
    asset = context.data_sources.add_pandas("etl").add_dataframe_asset("loaded_jobs")
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame})
    suite = context.suites.add(gx.ExpectationSuite(name="etl_loaded_jobs"))
    for expectation in _suite(gx, tenants, ledger):
        suite.add_expectation(expectation)
    outcome = batch.validate(suite)
    facts: dict[str, float | int | str | bool] = {}
    failed = []
    for result in outcome.results:
        config = result.expectation_config
        column = config.kwargs.get("column") or ",".join(config.kwargs.get("column_list") or []) or "table"
        label = f"gx.{config.type}({column})"
        info = result.result or {}
        if result.success:
            facts[label] = "passed"
        else:
            seen = info.get("unexpected_count", info.get("observed_value"))
            if column == CONFIRMED:  # in words: which confirmed jobs have no row
                missing = sorted(ledger.confirmed_valid - set(frame[KEY]))
                seen = f"{len(missing)} confirmed jobs without a row, e.g. " + ", ".join(
                    m.replace(SEP, ": ") for m in missing[:3]
                )
            elif column == IN_LEDGER:
                strangers = sorted(set(frame[KEY]) - allowed)
                seen = f"{len(strangers)} rows of jobs never published as valid, e.g. " + ", ".join(
                    m.replace(SEP, ": ") for m in strangers[:3]
                )
            facts[label] = f"failed: unexpected/observed {seen}"
            failed.append(f"{label} ({seen})")
    total = len(outcome.results)
    detail = (
        f"{total} expectations passed on {len(frame)} loaded rows"
        if not failed
        else f"{len(failed)} of {total} expectations failed: " + "; ".join(failed)
    )
    facts["gx_version"] = gx.__version__
    facts["ledger.confirmed_valid"] = len(ledger.confirmed_valid)
    facts["ledger.unknown_valid"] = len(ledger.unknown_valid)
    return Invariant(DATA_QUALITY, bool(outcome.success), detail, facts)
