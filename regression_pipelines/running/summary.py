"""What `regress run` prints: a table for people, JSON for machines. Pure formatting."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from regression_pipelines.results import Invariant, Metric, MetricKind


@dataclass
class AreaOutcome:
    area: str
    metrics: list[Metric] = field(default_factory=list)
    invariants: list[Invariant] = field(default_factory=list)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    skipped: str = ""  # the reason, when the area's system was not there to test (never counted as passed)

    @property
    def invariants_passed(self) -> bool:
        return not self.error and all(inv.passed for inv in self.invariants)

    @property
    def status(self) -> str:
        """passed, failed (an invariant failed or the area errored), or skipped."""
        if self.skipped:
            return "skipped"
        return "passed" if self.invariants_passed else "failed"

    @property
    def regressed(self) -> bool:
        return any(v.get("status") == "regression" for v in self.verdicts)


@dataclass
class RunSummary:
    run_id: str
    success: bool
    outcomes: list[AreaOutcome]
    dagster_home: str
    json_path: str = ""
    report_path: str = ""  # the HTML report written after the run

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "success": self.success,
            "dagster_home": self.dagster_home,
            "report": self.report_path,
            "areas": [
                {
                    "area": o.area,
                    "status": o.status,
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
                    "verdicts": o.verdicts,
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


def render_table(summary: RunSummary) -> str:
    lines = [f"run {summary.run_id}: {'succeeded' if summary.success else 'FAILED'}"]
    for outcome in summary.outcomes:
        lines.append("")
        lines.append(f"== {outcome.area}")
        if outcome.skipped:
            lines.append(f"   SKIPPED: {outcome.skipped}")
            continue
        if outcome.error:
            lines.append(f"   ERROR: {outcome.error}")
        width = max((len(m.name) for m in outcome.metrics), default=10)
        lines.append(f"   {'metric':<{width}}  {'value':>14}  unit")
        for metric in outcome.metrics:
            kind = f"  ({metric.kind.value})" if metric.kind is not MetricKind.PERFORMANCE else ""
            lines.append(f"   {metric.name:<{width}}  {_fmt(metric.value):>14}  {metric.unit}{kind}")
        for inv in outcome.invariants:
            lines.append(f"   [{'PASS' if inv.passed else 'FAIL'}] {inv.name}: {inv.detail}")
        if outcome.verdicts:
            counts: dict[str, int] = {}
            for verdict in outcome.verdicts:
                counts[verdict["verdict"]] = counts.get(verdict["verdict"], 0) + 1
                if verdict["verdict"] in ("regression", "slo_breach", "improvement"):
                    lines.append(f"   [{verdict['verdict'].upper()}] {verdict['summary']}")
            tally = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(counts.items()))
            lines.append(f"   vs baseline: {tally}")
    return "\n".join(lines)


def dumps(summary: RunSummary) -> str:
    return json.dumps(summary.to_json(), indent=2, sort_keys=True)
