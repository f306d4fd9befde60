"""What `regress run` prints: a table for people, JSON for machines. Pure formatting.

Two separate words, as in the UI: the run's status is Dagster's (SUCCESS: Dagster finished every step it
planned; FAILURE: a step failed), the verdict is ours (`results.Verdict`: passed, failed, regressed, skipped,
error). A run whose invariant failed is `SUCCESS` with verdict `failed`, exactly as the Runs page shows it
(status Success, tag regress/verdict=failed).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from regression_pipelines.kit.supervisor import RUN_COMPLETED
from regression_pipelines.results import Invariant, Metric, MetricKind, Verdict, overall_verdict


@dataclass
class AreaOutcome:
    area: str
    metrics: list[Metric] = field(default_factory=list)
    invariants: list[Invariant] = field(default_factory=list)
    vs_baseline: list[dict[str, Any]] = field(default_factory=list)  # per metric, the detector's verdict
    error: str = ""  # the area's step failed before measuring: its innermost error
    skipped: str = ""  # the reason, when it measured nothing (never counted as passed)

    @property
    def cause(self) -> str:
        """Why it failed to complete: the step's root cause, or the phase and root cause of a crashed scenario."""
        if self.error:
            return self.error
        crashed = next((i for i in self.invariants if i.name == RUN_COMPLETED and not i.passed), None)
        return crashed.detail if crashed else ""

    @property
    def regressed(self) -> bool:
        return any(v.get("status") == "regression" for v in self.vs_baseline)

    @property
    def verdict(self) -> Verdict:
        if self.skipped:
            return Verdict.SKIPPED
        if self.error:
            return Verdict.ERROR
        if not self.metrics and not self.invariants:
            return Verdict.NOT_RUN
        if not all(inv.passed for inv in self.invariants):
            return Verdict.FAILED
        return Verdict.REGRESSED if self.regressed else Verdict.PASSED


@dataclass
class RunSummary:
    run_id: str
    run_status: str  # Dagster's word: SUCCESS, FAILURE, CANCELED
    outcomes: list[AreaOutcome]
    dagster_home: str
    job: str = ""
    json_path: str = ""
    report_path: str = ""  # the HTML report written after the run

    @property
    def verdict(self) -> Verdict:
        return overall_verdict([o.verdict for o in self.outcomes])

    def verdict_reason(self) -> str:
        """One line: which areas made the verdict what it is."""
        bad = {
            Verdict.ERROR: [f"{o.area} errored" for o in self.outcomes if o.verdict is Verdict.ERROR],
            Verdict.FAILED: [
                f"{o.area}.{i.name}" for o in self.outcomes for i in o.invariants if not i.passed and not o.error
            ],
            Verdict.REGRESSED: [
                f"{o.area}.{v['metric']}" for o in self.outcomes for v in o.vs_baseline if v["status"] == "regression"
            ],
        }.get(self.verdict, [])
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.verdict.value] = counts.get(outcome.verdict.value, 0) + 1
        tally = ", ".join(f"{n} {word}" for word, n in sorted(counts.items()))
        if self.verdict is Verdict.FAILED:
            return f"{len(bad)} invariant(s) failed: {', '.join(bad)} ({tally})"
        return (f"{', '.join(bad)} ({tally})" if bad else tally) or "no area"

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "job": self.job,
            "run_status": self.run_status,
            "verdict": self.verdict.value,
            "dagster_home": self.dagster_home,
            "report": self.report_path,
            "areas": [
                {
                    "area": o.area,
                    "verdict": o.verdict.value,
                    "cause": o.cause,
                    "error": o.error,
                    "skipped": o.skipped,
                    "metrics": [
                        {
                            "name": m.name,
                            "value": None if math.isnan(m.value) else m.value,
                            "unit": m.unit,
                            "direction": m.direction.value,
                            "kind": m.kind.value,
                            "samples": m.samples,
                        }
                        for m in o.metrics
                    ],
                    "invariants": [{"name": i.name, "passed": i.passed, "detail": i.detail} for i in o.invariants],
                    "vs_baseline": o.vs_baseline,
                }
                for o in self.outcomes
            ],
        }


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if value == int(value) and abs(value) < 1e12:
        return f"{int(value)}"
    return f"{value:.4g}" if abs(value) < 1 else f"{value:,.2f}"


RUN_STATUS_MEANING = {
    "SUCCESS": "Dagster finished every step",
    "FAILURE": "a step failed: see the error below and the run in Dagster",
    "CANCELED": "the run was canceled",
}


def render_table(summary: RunSummary) -> str:
    meaning = RUN_STATUS_MEANING.get(summary.run_status, "")
    job = f" ({summary.job})" if summary.job else ""
    lines = [
        f"run {summary.run_id}{job}: {summary.run_status}" + (f" ({meaning})" if meaning else ""),
        f"verdict: {summary.verdict.value}: {summary.verdict_reason()}",
    ]
    for outcome in summary.outcomes:
        lines += ["", f"== {outcome.area}: {outcome.verdict.value}"]
        lines += _area_lines(outcome)
    return "\n".join(lines)


def _area_lines(outcome: AreaOutcome) -> list[str]:
    if outcome.skipped:
        return [f"   skipped: {outcome.skipped}"]
    lines = [f"   cause: {outcome.cause}"] if outcome.cause else []
    if outcome.metrics:
        width = max(len(m.name) for m in outcome.metrics)
        lines.append(f"   {'metric':<{width}}  {'value':>14}  unit")
        for metric in outcome.metrics:
            kind = f"  ({metric.kind.value})" if metric.kind is not MetricKind.PERFORMANCE else ""
            lines.append(f"   {metric.name:<{width}}  {_fmt(metric.value):>14}  {metric.unit}{kind}")
    for inv in outcome.invariants:
        lines.append(f"   [{'PASS' if inv.passed else 'FAIL'}] {inv.name}: {inv.detail}")
    if outcome.vs_baseline:
        counts: dict[str, int] = {}
        for verdict in outcome.vs_baseline:
            counts[verdict["verdict"]] = counts.get(verdict["verdict"], 0) + 1
            if verdict["verdict"] in ("regression", "slo_breach", "improvement"):
                lines.append(f"   [{verdict['verdict'].upper()}] {verdict['summary']}")
        tally = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(counts.items()))
        lines.append(f"   vs baseline: {tally}")
    return lines


def dumps(summary: RunSummary) -> str:
    return json.dumps(summary.to_json(), indent=2, sort_keys=True)
