"""The chaos matrix: every non-destructive area x every nemesis that touches a service it uses, and the verdict
each cell must end in. Plain Python: the tests and `benchmarks/chaos/matrix.py` run the cells through Dagster.

A cell is good when it ends with every check present, figures, nothing left behind, no step failure, and its
checks either all passed or failed with the nemesis named on them. It is "not started" when the nemesis never
fired (the area has no `workload` phase yet, or its workload ended before the start point): that is reported,
never counted as passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from regression_pipelines.kit import nemeses
from regression_pipelines.kit.declaration import Area
from regression_pipelines.kit.supervisor import NO_LEFTOVERS, RUN_COMPLETED

PASSED = "passed"
FAILED_NAMED = "failed, nemesis named"
NOT_STARTED = "not started"
NOT_ACTED = "nemesis could not act"  # e.g. the area registered nothing of the kind it acts on
SKIPPED = "skipped"
# Bad outcomes: each is a finding (the kit's or the area's).
FAILED_UNNAMED = "failed, nemesis not named"
CRASHED = "crashed"
LEFTOVERS = "left things behind"
MISSING_CHECKS = "checks missing"
NO_FIGURES = "no figures"
STEP_FAILURE = "step failure"
GOOD = (PASSED, FAILED_NAMED, NOT_STARTED, NOT_ACTED, SKIPPED)
LOSS_FACTS = ("lost", "lost_acknowledged", "missing")
DUPLICATE_FACTS = ("duplicated", "duplicates", "unexpected")


@dataclass(frozen=True)
class Cell:
    area: str
    nemesis: str

    @property
    def name(self) -> str:
        return f"{self.area} x {self.nemesis}"


def cells(areas: Iterable[Area], library: Iterable[nemeses.Nemesis] | None = None) -> list[Cell]:
    """Every non-destructive area x every nemesis acting on a service the area declares, in a stable order."""
    chosen = list(library if library is not None else nemeses.registry().values())
    return [
        Cell(area.name, nemesis.name)
        for area in sorted(areas, key=lambda a: a.name)
        if not area.destructive
        for nemesis in sorted(chosen, key=lambda n: n.name)
        if nemesis.applies_to(set(area.resources))
    ]


def sample(all_cells: Sequence[Cell], prefer: Sequence[str] = ()) -> list[Cell]:
    """A bounded sample: every nemesis once, on the first area in `prefer` it applies to (the cheapest to run
    first), then one cell for every area not chosen yet; deterministic for the same input."""
    rank = {area: index for index, area in enumerate(prefer)}
    chosen: list[Cell] = []
    for nemesis in sorted({c.nemesis for c in all_cells}):
        options = [c for c in all_cells if c.nemesis == nemesis]
        chosen.append(min(options, key=lambda c: (rank.get(c.area, len(rank)), c.area)))
    for area in sorted({c.area for c in all_cells} - {c.area for c in chosen}):
        chosen.append(next(c for c in all_cells if c.area == area))
    return chosen


@dataclass
class CellOutcome:
    """How one cell ended, with what the table shows: time to recover, lost and duplicated counts."""

    cell: Cell
    outcome: str
    detail: str = ""
    seconds: float | None = None
    recovered_after_s: float | None = None
    lost: int | None = None
    duplicated: int | None = None
    failed_checks: list[str] = field(default_factory=list)
    named: bool = False  # every failed check names the nemesis
    adopted: bool = False  # the area ran a phase named "workload" (where nemeses fire)

    @property
    def good(self) -> bool:
        """A verdict as the matrix requires: checks, figures, nothing left, failures naming the nemesis. A crash
        the supervisor turned into a verdict naming the nemesis is one (and still a finding for the area)."""
        return self.outcome in GOOD or (self.outcome == CRASHED and self.named)

    def row(self) -> dict[str, Any]:
        return {
            "cell": self.cell.name,
            "outcome": self.outcome,
            "adopted": self.adopted,
            "named": self.named,
            "failed_checks": ", ".join(self.failed_checks),
            "recovered_after_s": self.recovered_after_s,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "seconds": self.seconds,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class CheckSeen:
    passed: bool
    detail: str
    facts: Mapping[str, Any] = field(default_factory=dict)


def judge_cell(
    cell: Cell,
    declared: Sequence[str],
    checks: Mapping[str, CheckSeen],
    metrics: Mapping[str, float],
    environment: Mapping[str, str],
    skipped: str | None = None,
    step_failure: str | None = None,
) -> CellOutcome:
    """The cell's outcome from what the asset recorded (checks, metric values, environment)."""
    if step_failure is not None:
        return CellOutcome(cell, STEP_FAILURE, step_failure[:500])
    if skipped is not None:
        return CellOutcome(cell, SKIPPED, skipped)
    outcome = CellOutcome(
        cell,
        PASSED,
        recovered_after_s=metrics.get("nemesis.recovered_after_s"),
        lost=_total(checks, LOSS_FACTS),
        duplicated=_total(checks, DUPLICATE_FACTS),
        failed_checks=sorted(name for name, check in checks.items() if not check.passed),
        adopted="phase.workload_s" in metrics,
    )
    mark = f"nemesis {cell.nemesis} "
    missing = sorted(set(declared) - set(checks))
    unnamed = [name for name in outcome.failed_checks if mark not in checks[name].detail]
    outcome.named = not unnamed
    outcome.outcome, outcome.detail = _worst(cell, missing, unnamed, checks, metrics, environment, outcome)
    return outcome


def _worst(
    cell: Cell,
    missing: list[str],
    unnamed: list[str],
    checks: Mapping[str, CheckSeen],
    metrics: Mapping[str, float],
    environment: Mapping[str, str],
    outcome: CellOutcome,
) -> tuple[str, str]:
    note = environment.get("nemesis_did", "")
    if missing:
        return MISSING_CHECKS, f"no result for {', '.join(missing)}"
    if NO_LEFTOVERS in checks and not checks[NO_LEFTOVERS].passed:
        return LEFTOVERS, checks[NO_LEFTOVERS].detail
    if RUN_COMPLETED in checks and not checks[RUN_COMPLETED].passed:
        return CRASHED, checks[RUN_COMPLETED].detail
    if not [name for name in metrics if not name.startswith(("nemesis.", "host.", "phase."))]:
        return NO_FIGURES, "the run recorded no figure of its own"
    if environment.get("nemesis_outcome") == "failed to start":
        return NOT_ACTED, note[:300]
    if environment.get("nemesis_outcome") in (None, "not started"):
        reason = next((c.detail for c in checks.values() if f"nemesis {cell.nemesis} not started" in c.detail), "")
        return NOT_STARTED, _not_started_reason(cell, reason, environment)
    if unnamed:
        return FAILED_UNNAMED, "; ".join(f"{name}: {checks[name].detail[:200]}" for name in unnamed)
    if outcome.failed_checks:
        first = checks[outcome.failed_checks[0]].detail
        return FAILED_NAMED, f"{outcome.failed_checks[0]}: {first[:300]}"
    return PASSED, note[:300]


def _not_started_reason(cell: Cell, from_checks: str, environment: Mapping[str, str]) -> str:
    if from_checks:
        return from_checks[from_checks.find(f"nemesis {cell.nemesis} not started") :][:300]
    if "nemesis" not in environment or "entered no 'workload' phase" in environment.get("nemesis_did", ""):
        return "the area entered no 'workload' phase (not adopted yet)"
    return environment.get("nemesis_did", "")[:300]


def _total(checks: Mapping[str, CheckSeen], names: Sequence[str]) -> int | None:
    values = [
        int(value)
        for check in checks.values()
        for key, value in check.facts.items()
        if key in names and isinstance(value, int | float) and not isinstance(value, bool)
    ]
    return sum(values) if values else None


def markdown_table(outcomes: Sequence[CellOutcome]) -> str:
    """The RESULTS.md table: cell, outcome, failed checks, time to recover, lost/duplicated, run time."""
    lines = [
        "| cell | outcome | failed checks | recovered after (s) | lost | duplicated | run (s) | detail |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for o in outcomes:
        detail = o.detail.replace("|", "/").replace("\n", " ")[:220]
        lines.append(
            f"| {o.cell.name} | {o.outcome} | {', '.join(o.failed_checks) or '-'} | {_fmt(o.recovered_after_s)} | "
            f"{_fmt(o.lost)} | {_fmt(o.duplicated)} | {_fmt(o.seconds)} | {detail} |"
        )
    return "\n".join(lines)


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def facts_from_metadata(value: Mapping[str, Any]) -> dict[str, Any]:
    """A check's metadata values as plain facts (Dagster wraps each value in a MetadataValue)."""
    return {key: getattr(item, "value", item) for key, item in dict(value).items()}
