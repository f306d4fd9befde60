"""The matrix run: interleaved rounds of every variant (plus the A/A control), then one result per variant.

Plain Python: an `Executor` runs one area for one variant (in the variant's environment, against the variant's
server) and returns the kit's `ScenarioResult`; this module decides the order, keeps every round and reduces
them to the grid's figures. Dagster is the caller's business (`dagster_runs`).

Order: every round runs each variant once and the first variant a second time (the A/A control, `control`),
in an order shuffled per round from the seed, so no variant always runs first on a warm or cold host.
"""

from __future__ import annotations

import math
import random
import statistics
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from regression_pipelines.matrix.compare import Ratio, judge, ratio_of_medians, resolution
from regression_pipelines.matrix.versions import Variant
from regression_pipelines.results import Direction, Invariant, Metric, MetricKind, ScenarioResult

MATRIX_TAG, VARIANT_TAG = "regress/matrix", "regress/version"


@dataclass
class Outcome:
    """What one child run gave: a result, or why there is none (skipped: system absent; error: unusable env)."""

    result: ScenarioResult | None = None
    skipped: str = ""
    error: str = ""
    seconds: float = 0.0


class Executor(Protocol):
    def activate(self, variant: Variant) -> None:
        """Make `variant` the one the next run uses (build its environment, restart a server from its install)."""

    def run(self, variant: Variant, area: str, config: Mapping[str, Any]) -> Outcome:
        """Run `area` once for `variant` with these settings."""


@dataclass(frozen=True)
class Slot:
    round: int
    variant: Variant
    control: bool = False  # the A/A copy of the first variant


@dataclass
class AreaRun:
    slot: Slot
    area: str
    outcome: Outcome


@dataclass(frozen=True)
class CheckCell:
    passed: bool
    failed_rounds: int
    rounds: int
    detail: str

    @property
    def word(self) -> str:
        if self.passed:
            return "PASS"
        return "FAIL" if self.failed_rounds == self.rounds else f"FAIL {self.failed_rounds}/{self.rounds}"


@dataclass(frozen=True)
class MetricComparison:
    area: str
    metric: str
    unit: str
    direction: str
    medians: dict[str, float]  # variant label -> median over its rounds
    ratios: dict[str, Ratio]  # later variant label -> ratio to the first
    aa: Ratio  # the first variant's control against itself
    resolution: float  # smallest resolvable relative change (A/A half-width); NaN with < 2 rounds
    verdicts: dict[str, str]  # later variant label -> same / worse / better / n/a

    @property
    def aa_ok(self) -> bool:
        """The control shows no difference (its interval contains 1; one round has no interval to judge); else
        no ratio of this metric is trusted."""
        return self.aa.rounds < 2 or not math.isfinite(self.aa.ratio) or self.aa.contains_one


@dataclass
class MatrixResult:
    matrix_id: str
    areas: list[str]
    variants: list[Variant]
    rounds: int
    runs: list[AreaRun] = field(default_factory=list)
    seed: int = 0
    started_at: float = 0.0
    seconds: float = 0.0

    @property
    def labels(self) -> list[str]:
        return [v.label for v in self.variants]

    def runs_of(self, label: str, area: str, control: bool | None = False) -> list[AreaRun]:
        """The variant's runs of the area by round; `control=None`: the A/A copies too."""
        return [
            r
            for r in self.runs
            if r.slot.variant.label == label and r.area == area and (control is None or r.slot.control == control)
        ]

    def status(self, label: str, area: str) -> str:
        """`measured`, `skipped: why` or `error: why` (from the first round that did not measure)."""
        for run in self.runs_of(label, area, control=None):
            if run.outcome.error:
                return f"error: {run.outcome.error}"
            if run.outcome.skipped:
                return f"skipped: {run.outcome.skipped}"
        return "measured"

    def checks(self, label: str, area: str) -> dict[str, CheckCell]:
        """Every check the variant's runs of the area evaluated: passed only if it passed in every round."""
        seen: dict[str, list[Invariant]] = {}
        for run in self.runs_of(label, area, control=None):
            if run.outcome.result is None:
                continue
            for inv in run.outcome.result.invariants:
                seen.setdefault(inv.name, []).append(inv)
        cells = {}
        for name, invs in seen.items():
            failed = [i for i in invs if not i.passed]
            detail = (failed[0] if failed else invs[0]).detail
            cells[name] = CheckCell(not failed, len(failed), len(invs), detail)
        return cells

    def check_names(self, area: str) -> list[str]:
        names: list[str] = []
        for label in self.labels:
            names += [n for n in self.checks(label, area) if n not in names]
        return names

    def comparisons(self, area: str) -> list[MetricComparison]:
        """Per performance metric of the area: medians, ratios to the first variant, the A/A control."""
        first = self.labels[0]
        base_runs = self.runs_of(first, area)
        control_runs = self.runs_of(first, area, control=True)
        out = []
        every = self.runs_of(first, area, control=None) + [r for lb in self.labels[1:] for r in self.runs_of(lb, area)]
        for metric in _performance_metrics(base_runs):
            if all(v == 0 for v in _series_all(every, metric.name)):
                continue  # zero in every run (no stale reads...): nothing to compare, the checks speak for it
            base = _series(base_runs, metric.name)
            aa = ratio_of_medians(base, _series(control_runs, metric.name), seed=self.seed)
            resolvable = resolution(aa)
            lower = metric.direction is Direction.LOWER_IS_BETTER
            medians = {first: _median(base)}
            ratios, verdicts = {}, {}
            for label in self.labels[1:]:
                series = _series(self.runs_of(label, area), metric.name)
                medians[label] = _median(series)
                ratios[label] = ratio_of_medians(base, series, seed=self.seed)
                verdicts[label] = judge(ratios[label], lower, resolvable) if aa.contains_one else "n/a"
            out.append(
                MetricComparison(
                    area, metric.name, metric.unit, metric.direction.value, medians, ratios, aa, resolvable, verdicts
                )
            )
        return out

    def regressions(self) -> list[str]:
        """`area.check: variant` for every check a later variant fails (or could not run) that the first passes."""
        found = []
        first = self.labels[0]
        for area in self.areas:
            base = self.checks(first, area)
            for label in self.labels[1:]:
                status = self.status(label, area)
                if status.startswith("error") and not self.status(first, area).startswith("error"):
                    found.append(f"{area}: {label} ({status})")
                    continue
                cells = self.checks(label, area)
                for name, cell in base.items():
                    other = cells.get(name)
                    if cell.passed and other is not None and not other.passed:
                        found.append(f"{area}.{name}: {label}")
        return found

    def fixes(self) -> list[str]:
        """`area.check: variant` for every check the first variant fails and a later one passes."""
        first = self.labels[0]
        return [
            f"{area}.{name}: {label}"
            for area in self.areas
            for name, cell in self.checks(first, area).items()
            if not cell.passed
            for label in self.labels[1:]
            if (other := self.checks(label, area).get(name)) is not None and other.passed
        ]

    def aggregated(self, label: str, area: str) -> ScenarioResult | None:
        """One result for the variant's runs of the area (what its Dagster run records): every check as in
        `checks` (a failure says in how many rounds), each metric the median over rounds."""
        runs = [r for r in self.runs_of(label, area) if r.outcome.result is not None]
        if not runs:
            return None
        first = runs[0].outcome.result
        assert first is not None
        metrics = []
        for metric in first.metrics:
            values = _series(runs, metric.name)
            metrics.append(
                Metric(metric.name, _median(values), metric.unit, metric.direction, metric.kind, metric.samples)
            )
        invariants = []
        for name, cell in self.checks(label, area).items():
            rounds = "" if cell.rounds == 1 else (
                f" (every one of {cell.rounds} rounds)" if cell.passed else
                f" (failed in {cell.failed_rounds} of {cell.rounds} rounds)"
            )  # fmt: skip
            invariants.append(Invariant(name, cell.passed, cell.detail + rounds))
        environment = {**first.environment, "matrix": self.matrix_id, "matrix_variant": label}
        comparable_on = {**first.comparable_on, "matrix_variant": label}
        return ScenarioResult(area, metrics, invariants, environment, comparable_on, dict(first.stages))


def schedule(variants: Sequence[Variant], rounds: int, seed: int) -> list[Slot]:
    """Every round: each variant once plus the first again as the A/A control, shuffled per round."""
    slots = []
    for number in range(rounds):
        order = [Slot(number, v) for v in variants] + [Slot(number, variants[0], control=True)]
        random.Random(f"{seed}/{number}").shuffle(order)
        slots += order
    return slots


def run_matrix(
    executor: Executor,
    areas: Sequence[str],
    variants: Sequence[Variant],
    configs: Callable[[Variant, str], Mapping[str, Any]],
    rounds: int = 3,
    seed: int = 0,
    progress: Callable[[str], None] = lambda _: None,
    matrix_id: str = "",
) -> MatrixResult:
    """Run every slot of the schedule for every area; `configs(variant, area)` gives the area's settings."""
    result = MatrixResult(
        matrix_id=matrix_id or uuid.uuid4().hex[:12],
        areas=list(areas),
        variants=list(variants),
        rounds=rounds,
        seed=seed,
        started_at=time.time(),
    )
    slots = schedule(variants, rounds, seed)
    for index, slot in enumerate(slots, 1):
        try:
            executor.activate(slot.variant)
            unusable = ""
        except Exception as exc:  # e.g. the lab's Citus would not start from that install: this slot's verdict
            unusable = f"could not switch to {slot.variant.label}: {exc}"
        for area in areas:
            started = time.perf_counter()
            if unusable:
                outcome = Outcome(error=unusable)
            else:
                outcome = executor.run(slot.variant, area, configs(slot.variant, area))
            outcome.seconds = outcome.seconds or time.perf_counter() - started
            result.runs.append(AreaRun(slot, area, outcome))
            control = " (A/A control)" if slot.control else ""
            progress(
                f"[{index}/{len(slots)}] round {slot.round + 1} {slot.variant.label}{control} {area}: "
                f"{_outcome_word(outcome)} in {outcome.seconds:.1f} s"
            )
    result.seconds = time.time() - result.started_at
    return result


def _outcome_word(outcome: Outcome) -> str:
    if outcome.error:
        return f"error ({outcome.error[:120]})"
    if outcome.skipped:
        return f"skipped ({outcome.skipped[:120]})"
    assert outcome.result is not None
    failed = [i.name for i in outcome.result.invariants if not i.passed]
    return f"failed {', '.join(failed)}" if failed else "passed"


def _performance_metrics(runs: Sequence[AreaRun]) -> list[Metric]:
    found: dict[str, Metric] = {}
    for run in runs:
        if run.outcome.result is None:
            continue
        for metric in run.outcome.result.metrics:
            if metric.kind is MetricKind.PERFORMANCE:
                found.setdefault(metric.name, metric)
    return [found[name] for name in sorted(found)]


def _series(runs: Sequence[AreaRun], metric: str) -> list[float]:
    """The metric's value per round (NaN where that round has none), in round order."""
    by_round: dict[int, float] = {}
    for run in runs:
        value = math.nan
        if run.outcome.result is not None:
            value = next((m.value for m in run.outcome.result.metrics if m.name == metric), math.nan)
        by_round[run.slot.round] = value
    return [by_round[r] for r in sorted(by_round)]


def _series_all(runs: Sequence[AreaRun], metric: str) -> list[float]:
    return [
        next((m.value for m in run.outcome.result.metrics if m.name == metric), math.nan)
        for run in runs
        if run.outcome.result is not None
    ]


def _median(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan
