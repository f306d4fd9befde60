"""Small measurement helpers shared by scenarios: percentiles that behave on empty samples, error tallies."""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Sequence

import numpy as np

from regression_pipelines.results import Direction, Invariant, Metric

NO_OPERATION_ERRORS = "no_operation_errors"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile, or NaN when nothing was measured (so a missing figure is never a fake 0)."""
    if len(values) == 0:
        return math.nan
    return float(np.percentile(np.asarray(values, dtype=float), q))


def nines(failure_rate: float, samples: int) -> float:
    """Availability-style nines of 1 - rate; with zero failures, the most the sample size can vouch for."""
    if samples <= 0:
        return math.nan
    return -math.log10(max(failure_rate, 1.0 / samples))


class ErrorTally:
    """Operations and their errors, counted across worker threads, so a misbehaving server yields figures.

    Keeps the first few distinct messages verbatim so the failed `no_operation_errors` check can name them, and
    (when callers say `where`, e.g. through `at("calibrate")`) how many errors each phase of the run met.
    """

    def __init__(self, keep: int = 5) -> None:
        self.operations = 0
        self.errors = 0
        self.first: list[str] = []
        self.errors_where: Counter[str] = Counter()
        self._seen: set[str] = set()
        self._keep = keep
        self._lock = threading.Lock()

    def ok(self, count: int = 1) -> None:
        with self._lock:
            self.operations += count

    def failed(self, error: BaseException | str, count: int = 1, where: str = "") -> None:
        text = error if isinstance(error, str) else describe_error(error)
        with self._lock:
            self.operations += count
            self.errors += count
            if where:
                self.errors_where[where] += count
            if len(self.first) < self._keep and text not in self._seen:
                self._seen.add(text)
                self.first.append(f"{text[:300]} (in {where})" if where else text[:300])

    def at(self, where: str) -> PhaseErrors:
        """This tally, with every failure attributed to `where` (a phase of the run)."""
        return PhaseErrors(self, where)

    @property
    def rate(self) -> float:
        return self.errors / self.operations if self.operations else 0.0

    def figures(self, what: str = "operations") -> tuple[Metric, Invariant]:
        """The `error_rate` metric and the `no_operation_errors` invariant naming the first errors."""
        metric = Metric("error_rate", self.rate, "ratio", Direction.LOWER_IS_BETTER, samples=self.operations)
        if not self.errors:
            detail = f"0 errors in {self.operations} {what}"
        else:
            where = ", ".join(f"{name} {count}" for name, count in self.errors_where.most_common())
            detail = f"{self.errors} of {self.operations} {what} failed ({self.rate:.2%})"
            detail += (f"; by phase: {where}" if where else "") + "; first: " + " | ".join(self.first)
        facts = {"operations": self.operations, "errors": self.errors}
        return metric, Invariant(NO_OPERATION_ERRORS, self.errors == 0, detail, facts)


class PhaseErrors:
    """An ErrorTally seen from one phase: `failed` attributes errors there; `ok` counts like the tally's."""

    def __init__(self, tally: ErrorTally, where: str) -> None:
        self.tally = tally
        self.where = where

    def ok(self, count: int = 1) -> None:
        self.tally.ok(count)

    def failed(self, error: BaseException | str, count: int = 1) -> None:
        self.tally.failed(error, count, self.where)


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
CAUSE_LINE = re.compile(r"^\s*(?:↳|Caused by:)\s*")  # delta-rs / object_store's chain ("↳ ..."), anyhow's


def describe_error(error: BaseException) -> str:
    """`OperationalError: the first line of the message`, then the causes it chains, if any (tracebacks and other
    later lines stay out of metadata). Why the chain: delta-rs says "Generic LocalFileSystem error" first and the
    cause ("Unable to open file …/00000000000000000001.json", "Operation not permitted (os error 1)") below it."""
    return f"{type(error).__name__}: {error_text(error) or '(no message)'}"


def error_text(error: BaseException) -> str:
    """The message's first line and the causes it chains ("↳ ...", "Caused by: ..."), colour codes removed."""
    lines = ANSI_ESCAPE.sub("", str(error)).strip().splitlines()
    if not lines:
        return ""
    causes = [CAUSE_LINE.sub("", line).strip() for line in lines[1:] if CAUSE_LINE.match(line)]
    return ": ".join([lines[0].strip(), *(cause for cause in causes if cause)])[:600]
