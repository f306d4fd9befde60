"""Severity and the human sentence: magnitude sets the level, weak confidence lowers it by one."""

from __future__ import annotations

from regression_pipelines.detection.model import SEVERITIES, Severity

# Upper edges of low/medium/high in multiples of the reference change; beyond the last is critical.
_BANDS = (2.5, 7.5, 25.0)
_REFERENCE_PCT = 2.0
CONFIDENT_P = 1e-3


def severity_for(change_pct: float, p_value: float | None, min_change_pct: float = 0.0) -> Severity:
    """low < 5 %, medium < 15 %, high < 50 %, else critical (bands scale with a larger min_change_pct)."""
    reference = max(min_change_pct, _REFERENCE_PCT)
    magnitude = abs(change_pct) / reference
    level = 1 + sum(magnitude >= edge for edge in _BANDS)
    if p_value is not None and p_value > CONFIDENT_P and level > 1:
        level -= 1
    return SEVERITIES[level]


def recommend(
    status: str,
    change_pct: float,
    first_bad_run: int | None,
    p_value: float | None,
    *,
    outlier: bool = False,
    needed: int = 0,
    bound: float | None = None,
) -> str:
    """One short, actionable sentence for the alert body."""
    since = f" since run #{first_bad_run}" if first_bad_run is not None else ""
    p = f", p={p_value:.1e}" if p_value is not None else ""
    if status == "slo_breach":
        return f"Newest run violates the static bound {bound:g}; treat as an incident and check the run's logs."
    if status == "insufficient_data":
        return f"Only {needed} run(s) short of a usable baseline; keep collecting before judging."
    if status == "undersampled":
        return "Too few samples in this run for this percentile to show a shift; a longer workload makes it judgeable."
    if status == "regression":
        return (
            f"Regression of {change_pct:+.1f}%{since}{p}: diff the changes that landed just before it, "
            "re-run to confirm, then fix or accept it as the new baseline."
        )
    if status == "improvement":
        return f"Improvement of {change_pct:+.1f}%{since}{p}: confirm it is intended; it becomes the baseline."
    if outlier:
        return f"Newest run is an outlier ({change_pct:+.1f}%) but unconfirmed; re-run if it repeats."
    return "Within the baseline's normal range; nothing to do."
