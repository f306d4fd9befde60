"""A coverage account per run: which operation shapes ran, which the system accepted or refused, which value
classes were used.

Why per shape: "refused by design" decided for a whole error class (say every SQLSTATE 0A000) hides an allowed
shape behind an always-refused one. Each `Shape` declares which refusals are by design for it; any other refusal
is unexpected and counted as such, and a shape that was tried but never accepted is listed, so a workload that
silently stopped reaching a code path says so.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from regression_pipelines.results import Direction, Metric, MetricKind

ACCEPTED, REFUSED_BY_DESIGN, REFUSED, ERROR = "accepted", "refused_by_design", "refused", "error"


@dataclass(frozen=True)
class Shape:
    """One operation shape of a workload; `by_design` lists the refusal codes expected for it (e.g. SQLSTATEs)."""

    name: str
    operation_class: str  # e.g. dml, query, merge, publish, read
    by_design: frozenset[str] = frozenset()

    def classify(self, refusal: str | None) -> str:
        if refusal is None:
            return ACCEPTED
        return REFUSED_BY_DESIGN if refusal in self.by_design else REFUSED


@dataclass
class Coverage:
    """Counts per shape and outcome, and per value domain and class; thread-safe."""

    shapes: dict[str, Shape] = field(default_factory=dict)
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    values: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    declared_values: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def declare(self, shapes: Iterable[Shape], values: dict[str, Iterable[str]] | None = None) -> None:
        """What the workload can produce: unreached shapes and classes are then visible as such."""
        for shape in shapes:
            self.shapes[shape.name] = shape
        for domain, classes in (values or {}).items():
            self.declared_values[domain].update(classes)

    def op(self, shape: Shape | str, refusal: str | None = None, error: bool = False) -> str:
        """Record one operation: accepted (refusal None), refused (by design for this shape or not), or error."""
        known = shape if isinstance(shape, Shape) else self.shapes.setdefault(shape, Shape(shape, "unknown"))
        self.shapes.setdefault(known.name, known)
        outcome = ERROR if error else known.classify(refusal)
        with self._lock:
            self.outcomes[known.name][outcome] += 1
        return outcome

    def value(self, domain: str, value_class: str) -> None:
        with self._lock:
            self.values[domain][value_class] += 1

    # -- figures ---------------------------------------------------------------------------------------------
    def exercised(self) -> list[str]:
        return sorted(name for name, counts in self.outcomes.items() if sum(counts.values()))

    def never_accepted(self) -> list[str]:
        return sorted(name for name in self.exercised() if not self.outcomes[name][ACCEPTED])

    def unreached(self) -> list[str]:
        return sorted(set(self.shapes) - set(self.exercised()))

    def total(self, outcome: str) -> int:
        return sum(counts[outcome] for counts in self.outcomes.values())

    def value_classes_used(self) -> int:
        return sum(1 for counts in self.values.values() for n in counts.values() if n)

    def value_classes_declared(self) -> int:
        used = {(d, c) for d, counts in self.values.items() for c in counts}
        declared = {(d, c) for d, classes in self.declared_values.items() for c in classes}
        return len(used | declared)

    def metrics(self) -> list[Metric]:
        """Volume figures (never judged as performance): what the run reached."""
        vol, info = MetricKind.VOLUME, MetricKind.INFO
        higher, lower = Direction.HIGHER_IS_BETTER, Direction.LOWER_IS_BETTER
        operations = sum(self.total(o) for o in (ACCEPTED, REFUSED_BY_DESIGN, REFUSED, ERROR))
        return [
            Metric("coverage.shapes_exercised", len(self.exercised()), "shapes", higher, vol),
            Metric("coverage.shapes_declared", len(self.shapes), "shapes", higher, info),
            Metric("coverage.shapes_never_accepted", len(self.never_accepted()), "shapes", lower, vol),
            Metric("coverage.operations", operations, "operations", higher, vol),
            Metric("coverage.accepted", self.total(ACCEPTED), "operations", higher, vol),
            Metric("coverage.refused_by_design", self.total(REFUSED_BY_DESIGN), "operations", lower, vol),
            Metric("coverage.refused_unexpectedly", self.total(REFUSED), "operations", lower, vol),
            Metric("coverage.value_classes_used", self.value_classes_used(), "classes", higher, vol),
            Metric(
                "coverage.value_classes_declared", self.value_classes_declared(), "classes", higher, MetricKind.INFO
            ),
        ]

    def summary(self) -> dict[str, object]:
        """The account as plain data (JSON metadata, the report): per shape its class and outcome counts."""
        return {
            "shapes": {
                name: {"class": self.shapes[name].operation_class, **dict(sorted(self.outcomes.get(name, {}).items()))}
                for name in sorted(self.shapes)
            },
            "never_accepted": self.never_accepted(),
            "unreached": self.unreached(),
            "values": {domain: dict(sorted(counts.items())) for domain, counts in sorted(self.values.items())},
        }

    def to_json(self) -> str:
        return json.dumps(self.summary(), sort_keys=True)

    def describe(self) -> str:
        """One line for logs and check details."""
        text = (
            f"{len(self.exercised())}/{len(self.shapes)} shapes exercised, {self.total(ACCEPTED)} accepted, "
            f"{self.total(REFUSED_BY_DESIGN)} refused by design, {self.total(REFUSED)} refused unexpectedly; "
            f"{self.value_classes_used()} value classes used"
        )
        if self.never_accepted():
            text += f"; never accepted: {', '.join(self.never_accepted())}"
        return text
