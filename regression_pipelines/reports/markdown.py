"""The scorecard as Markdown, for the asset's metadata in the Dagster UI (relative links open runs there)."""

from __future__ import annotations

from datetime import UTC, datetime

from regression_pipelines.reports.model import AreaCard, Scorecard


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _run(run_id: str) -> str:
    return f"[{run_id[:8]}](/runs/{run_id})" if run_id else "(outside a run)"


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC") if ts is not None else "never"


def _what(card: AreaCard) -> str:
    parts = []
    for r in card.regressions:
        word = "SLO breach" if r.verdict == "slo_breach" else f"{r.change_pct:+.1f}%"
        since = f", first bad run {_run(r.first_bad_run)} ({_when(r.first_bad_at)})" if r.first_bad_at else ""
        parts.append(f"**{r.metric}** {word} ({r.severity}){since}")
    parts += [f"**{name}** failed: {detail}" for name, detail in card.failed_invariants.items()]
    if card.skip_reason:
        parts.append(f"skipped: {card.skip_reason}")
    if card.error:
        parts.append(f"error in run {_run(card.error_run_id)}: {card.error}")
    return _cell("; ".join(parts)) or "none"


def scorecard_markdown(scorecard: Scorecard) -> str:
    lines = [
        f"Window since {_when(scorecard.since)}. Health 0-100: 100 - 40 per failed invariant - regressed metrics "
        "by severity (low 5, medium 10, high 20, critical 30) - 20 x share of earlier runs in the window that "
        "failed an invariant; none when skipped.",
        "",
        "| Area | Status | Health | Newest run | What regressed or failed | Runs in window |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for card in scorecard.cards:
        health = "n/a" if card.health is None else str(card.health)
        newest = f"{_run(card.run_id)} {_when(card.at)}" if card.at is not None else "never"
        lines.append(
            f"| {card.area} | **{card.status.value}** | {health} | {newest} | {_what(card)} | {card.runs_in_window} |"
        )
    return "\n".join(lines)
