"""An area's status and its 0-100 health score. Pure, so the formula is tested and documented in one place.

    health = 100
             - 40 for each invariant that failed in the newest run     (a broken promise: lost writes, ...)
             - for each regressed performance metric, by severity: low 5, medium 10, high 20, critical 30
             - 20 x the share of the window's earlier runs that failed any invariant   (flakiness)
    clamped to 0..100 and rounded. An area whose newest attempt errored scores 0; a skipped or never-run
    area has no score (it measured nothing, so it is neither healthy nor broken).

Reading it: 100 = clean now and in the window; 90-99 = clean now, a small regression or a past failure;
60-89 = slower than its baseline or flaky; below 60 = an invariant fails now (or several severe regressions).
"""

from __future__ import annotations

from collections.abc import Sequence

from regression_pipelines.reports.model import AreaStatus

FAILED_INVARIANT_COST = 40
SEVERITY_COST = {"none": 0, "low": 5, "medium": 10, "high": 20, "critical": 30}
FLAKINESS_COST = 20


def area_status(*, materialized: bool, errored: bool, skipped: bool, failed: int, regressed: int) -> AreaStatus:
    """The one word for an area; an error or a skip outranks older figures, a failed invariant a slowdown."""
    if errored:
        return AreaStatus.ERROR
    if not materialized:
        return AreaStatus.NOT_RUN
    if skipped:
        return AreaStatus.SKIPPED
    if failed:
        return AreaStatus.FAILED
    if regressed:
        return AreaStatus.REGRESSED
    return AreaStatus.PASSED


def health_score(
    status: AreaStatus, failed_invariants: int, severities: Sequence[str], earlier_failure_share: float
) -> int | None:
    """The documented formula above; `severities` of the regressed performance metrics."""
    if status in (AreaStatus.SKIPPED, AreaStatus.NOT_RUN):
        return None
    if status is AreaStatus.ERROR:
        return 0
    if not 0.0 <= earlier_failure_share <= 1.0:
        raise ValueError(f"earlier_failure_share must be within 0..1, got {earlier_failure_share}")
    unknown = sorted(set(severities) - set(SEVERITY_COST))
    if unknown:
        raise ValueError(f"unknown severities {unknown}; known: {list(SEVERITY_COST)}")
    score = 100.0
    score -= FAILED_INVARIANT_COST * failed_invariants
    score -= sum(SEVERITY_COST[s] for s in severities)
    score -= FLAKINESS_COST * earlier_failure_share
    return int(round(min(max(score, 0.0), 100.0)))
