"""Runs an area's scenario in named phases and turns whatever happens into a verdict, never a crash.

Why: a harness is needed most on the day the system under test misbehaves in a way nobody planned for. The
supervisor keeps every figure the scenario recorded so far, knows the phase it was in, and when the scenario
raises anything (a Rust panic included, which is a BaseException) it returns a result whose `run_completed`
check fails naming the phase and the root cause, and whose unevaluated checks fail saying why. Everything the
run created is removed afterwards through the removers the scenario registered (which open fresh connections),
with bounded retries, and `no_leftovers` proves it is gone.

Only two things still end the step: `AreaSkipped` (the system is not there to test) and an unusable
environment found before the workload started (nothing listening, bad credentials, no opt-in). Plain Python:
the Dagster factory and the tests call `run_supervised` alike.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from regression_pipelines.errors import ResourceConfigError, RunConfigError, UnsafeTargetError
from regression_pipelines.kit.causes import RootCause, root_cause
from regression_pipelines.kit.host import HostSampler
from regression_pipelines.measure import describe_error
from regression_pipelines.results import Direction, Invariant, Metric, MetricKind, ScenarioResult

RUN_COMPLETED = "run_completed"
NO_LEFTOVERS = "no_leftovers"
PREFLIGHT = "preflight"  # before any other phase: an unusable environment here fails the step
# The phase vocabulary areas use (others are allowed; these are what nemeses and reports key on).
SETUP, WORKLOAD, NEMESIS, SETTLE, JUDGE, CLEANUP = "setup", "workload", "nemesis", "settle", "judge", "cleanup"
UNUSABLE_ENVIRONMENT: tuple[type[BaseException], ...] = (ResourceConfigError, UnsafeTargetError, RunConfigError)
NEVER_CAUGHT: tuple[type[BaseException], ...] = (KeyboardInterrupt, SystemExit, GeneratorExit)
CLEANUP_ITEM_S = 20.0  # per thing to remove: retries until this bound (a restarting server needs a few s)
CLEANUP_TOTAL_S = 90.0


class AreaSkipped(Exception):  # noqa: N818 - it is an outcome, not an error
    """Raised by an area's run when its system is not there to test (e.g. no Citus reachable).

    The area is then recorded as skipped with this reason (never as passed), and the run goes on.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Created:
    """Something the run made on a system and must remove: how to remove it, how to tell it is gone."""

    kind: str  # table, queue, exchange, role, schema, directory, ...
    name: str
    remove: Callable[[], None]
    exists: Callable[[], bool] | None = None  # None: the remover's success is the only evidence


@dataclass
class PhaseRecord:
    name: str
    started: float
    seconds: float | None = None  # None while running
    failed: bool = False


@dataclass
class Cleaned:
    """What became of one created thing."""

    created: Created
    removed: bool
    still_there: bool | None  # None: could not tell
    error: str = ""


class PhaseHook(Protocol):
    """Something that acts when phases start and end (a nemesis scheduled into the workload)."""

    def entered(self, supervisor: Supervisor, phase: str) -> None: ...

    def left(self, supervisor: Supervisor, phase: str) -> None: ...


@dataclass
class Supervisor:
    """The partial result of one run, its phases, and what it created. Thread-safe `record`."""

    area: str
    checks: Sequence[str] = ()  # every check the area declares: those left unevaluated fail, saying why
    log: Any = field(default_factory=lambda: logging.getLogger("regression_pipelines.supervisor"))
    passthrough: tuple[type[BaseException], ...] = ()  # e.g. the orchestrator's own interrupt
    clock: Callable[[], float] = time.monotonic
    partial: ScenarioResult = field(init=False)
    phases: list[PhaseRecord] = field(default_factory=list, init=False)
    created_things: list[Created] = field(default_factory=list, init=False)
    cleanups: list[tuple[str, Callable[[], None]]] = field(default_factory=list, init=False)
    first_cleanups: list[tuple[str, Callable[[], None]]] = field(default_factory=list, init=False)
    hooks: list[PhaseHook] = field(default_factory=list, init=False)
    notes: list[str] = field(default_factory=list, init=False)  # added to every failed check's detail

    def __post_init__(self) -> None:
        self.partial = ScenarioResult(area=self.area)
        self._lock = threading.RLock()
        self._stack: list[str] = []
        self._started = self.clock()
        self._cleaned = False

    # -- what a scenario calls -------------------------------------------------------------------------------
    @property
    def phase_name(self) -> str:
        return "/".join(self._stack) if self._stack else PREFLIGHT

    @property
    def workload_started(self) -> bool:
        return any(record.name != PREFLIGHT for record in self.phases)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """`with supervisor.phase("workload"):` names where a failure happened and times the phase."""
        record = PhaseRecord(name, self.clock())
        self.phases.append(record)
        self._stack.append(name)
        self._notify("entered", name)
        try:
            yield
        except BaseException:
            record.failed = True
            raise
        finally:
            record.seconds = self.clock() - record.started
            self._notify("left", name)
            self._stack.pop()

    def record(self, *items: Metric | Invariant) -> None:
        """Keep figures and verdicts as soon as they exist, so a later crash cannot lose them."""
        with self._lock:
            for item in items:
                target: list[Any] = self.partial.metrics if isinstance(item, Metric) else self.partial.invariants
                target[:] = [old for old in target if old.name != item.name]
                target.append(item)

    def note(self, text: str) -> None:
        """A fact every failed check should carry (e.g. which nemesis ran when)."""
        with self._lock:
            if text not in self.notes:
                self.notes.append(text)

    def replace_note(self, prefix: str, text: str) -> None:
        """Replace the note starting with `prefix` (a nemesis's account, as it learns more), or add it."""
        with self._lock:
            self.notes[:] = [note for note in self.notes if not note.startswith(prefix)]
            self.notes.append(text)

    def created(
        self, kind: str, name: str, remove: Callable[[], None], exists: Callable[[], bool] | None = None
    ) -> None:
        """Register a thing the run made; it is removed after the run (last made, first removed)."""
        with self._lock:
            self.created_things.append(Created(kind, name, remove, exists))
            self.cleanups.append((f"{kind} {name}", self._remover(self.created_things[-1])))

    def on_cleanup(self, name: str, action: Callable[[], None], first: bool = False) -> None:
        """Run `action` after the run, before removing what was created earlier (stop threads, heal faults).

        `first`: before every other cleanup, whenever registered (a nemesis heals a stopped server before
        anything tries to drop tables on it).
        """
        with self._lock:
            (self.first_cleanups if first else self.cleanups).append((name, action))

    def add_hook(self, hook: PhaseHook) -> None:
        self.hooks.append(hook)

    def elapsed(self) -> float:
        return self.clock() - self._started

    # -- what the kit calls ----------------------------------------------------------------------------------
    def run(self, body: Callable[[], ScenarioResult]) -> ScenarioResult:
        """`body()`'s result with the kit's checks, or, if it raised, the figures so far and failed checks."""
        sampler = HostSampler()
        try:
            result: ScenarioResult | None = body()
            crash: BaseException | None = None
        except BaseException as exc:
            if isinstance(exc, NEVER_CAUGHT + self.passthrough) or self._ends_the_step(exc):
                self.clean_up()
                raise
            self.log.error(f"{self.area}: crashed in phase {self.phase_name!r}", exc_info=exc)
            result, crash = None, exc
        cleaned = self.clean_up()
        return self._verdict(result, crash, cleaned, sampler)

    def clean_up(self) -> list[Cleaned]:
        """Every registered cleanup, last registered first, each retried within a bound; never raises."""
        if self._cleaned:
            return []
        self._cleaned = True
        deadline = self.clock() + CLEANUP_TOTAL_S
        outcomes: dict[int, Cleaned] = {}
        for name, action in [*self.first_cleanups, *reversed(self.cleanups)]:
            error = _retry(action, min(self.clock() + CLEANUP_ITEM_S, deadline), self.clock)
            if error:
                self.log.warning(f"{self.area}: cleanup of {name} failed: {error}")
            thing = getattr(action, "created", None)
            if thing is not None:
                outcomes[id(thing)] = Cleaned(thing, removed=not error, still_there=None, error=error)
        for cleaned in outcomes.values():
            cleaned.still_there = _still_there(cleaned.created, min(self.clock() + 5.0, deadline), self.clock)
        return [outcomes[id(thing)] for thing in self.created_things if id(thing) in outcomes]

    def _ends_the_step(self, exc: BaseException) -> bool:
        if isinstance(exc, AreaSkipped):
            return True
        return isinstance(exc, UNUSABLE_ENVIRONMENT) and not self.workload_started

    def _remover(self, thing: Created) -> Callable[[], None]:
        def remove() -> None:
            thing.remove()

        remove.created = thing  # type: ignore[attr-defined]
        return remove

    def _notify(self, event: str, phase: str) -> None:
        for hook in self.hooks:
            try:
                getattr(hook, event)(self, phase)
            except Exception as exc:  # a hook must never take the scenario down
                self.log.warning(f"{self.area}: phase hook {type(hook).__name__}.{event} failed: {exc!r}")

    def _verdict(
        self, result: ScenarioResult | None, crash: BaseException | None, cleaned: list[Cleaned], host: HostSampler
    ) -> ScenarioResult:
        merged = _merge(self.partial, result or ScenarioResult(area=self.area))
        cause = root_cause(crash) if crash is not None else None
        merged.metrics.extend(m for m in [*host.metrics(), *self._phase_metrics()] if m.name not in _names(merged))
        invariants = {inv.name: inv for inv in merged.invariants}
        invariants[RUN_COMPLETED] = self._completed(cause)
        invariants[NO_LEFTOVERS] = invariants.get(NO_LEFTOVERS) or leftovers_invariant(cleaned)
        for name in self.checks:
            if name not in invariants:
                invariants[name] = self._not_evaluated(name, cause)
        merged.invariants = [self._annotated(inv) for inv in invariants.values()]
        if cause is not None:
            merged.environment.update(crash_phase=self._crash_phase(), crash_cause=cause.describe())
        return merged

    def _crash_phase(self) -> str:
        failed = [record.name for record in self.phases if record.failed]
        return "/".join(failed) if failed else PREFLIGHT

    def _completed(self, cause: RootCause | None) -> Invariant:
        timings = ", ".join(f"{p.name} {p.seconds or 0:.1f} s" for p in self.phases if p.seconds is not None)
        if cause is None:
            return Invariant(
                RUN_COMPLETED,
                True,
                f"every phase completed ({timings})" if timings else "completed (the area names no phases)",
            )
        phase = self._crash_phase()
        detail = f"crashed in phase '{phase}' after {self.elapsed():.1f} s: {cause.describe()}"
        return Invariant(RUN_COMPLETED, False, detail, {"phase": phase, **cause.facts()})

    def _not_evaluated(self, name: str, cause: RootCause | None) -> Invariant:
        if cause is None:
            return Invariant(name, False, "the scenario did not evaluate this invariant")
        return Invariant(
            name, False, f"not evaluated: the run crashed in phase '{self._crash_phase()}': {cause.describe()}"
        )

    def _annotated(self, invariant: Invariant) -> Invariant:
        if invariant.passed or not self.notes:
            return invariant
        extra = "; ".join(note for note in self.notes if note not in invariant.detail)
        return replace(invariant, detail=f"{invariant.detail} [{extra}]") if extra else invariant

    def _phase_metrics(self) -> list[Metric]:
        return [
            Metric(f"phase.{p.name}_s", p.seconds, "s", Direction.LOWER_IS_BETTER, MetricKind.INFO)
            for p in self.phases
            if p.seconds is not None and "/" not in p.name
        ]


def leftovers_invariant(cleaned: list[Cleaned]) -> Invariant:
    """Pass when every created thing was removed and (where it can be asked) is gone; name what is left."""
    if not cleaned:
        return Invariant(NO_LEFTOVERS, True, "the run registered nothing it had to remove", {"created": 0})
    left = [c for c in cleaned if c.still_there or (c.still_there is None and not c.removed)]
    unknown = [c for c in cleaned if c.still_there is None and c.removed and c.created.exists is not None]
    facts = {"created": len(cleaned), "left": len(left), "unchecked": len(unknown)}
    if left:
        names = "; ".join(f"{c.created.kind} {c.created.name}" + (f" ({c.error})" if c.error else "") for c in left)
        return Invariant(NO_LEFTOVERS, False, f"{len(left)} of {len(cleaned)} left behind: {names}", facts)
    listing = ", ".join(f"{c.created.kind} {c.created.name}" for c in cleaned[:8])
    more = f" and {len(cleaned) - 8} more" if len(cleaned) > 8 else ""
    checked = "" if not unknown else f" ({len(unknown)} could not be re-checked)"
    return Invariant(NO_LEFTOVERS, True, f"removed all {len(cleaned)}: {listing}{more}{checked}", facts)


def _retry(action: Callable[[], None], deadline: float, clock: Callable[[], float]) -> str:
    """'' when `action` succeeded once; else the last error, after retrying with backoff until `deadline`."""
    wait = 0.25
    while True:
        try:
            action()
            return ""
        except Exception as exc:
            error = describe_error(exc)
            if clock() + wait > deadline:
                return error
            time.sleep(wait)
            wait = min(wait * 2, 2.0)


def _still_there(thing: Created, deadline: float, clock: Callable[[], float]) -> bool | None:
    if thing.exists is None:
        return None
    wait = 0.25
    while True:
        try:
            return bool(thing.exists())
        except Exception:
            if clock() + wait > deadline:
                return None
            time.sleep(wait)
            wait = min(wait * 2, 1.0)


def _names(result: ScenarioResult) -> set[str]:
    return {m.name for m in result.metrics}


def _merge(partial: ScenarioResult, final: ScenarioResult) -> ScenarioResult:
    """The scenario's own result wins; figures it recorded earlier and did not repeat are kept."""
    metrics = {m.name: m for m in partial.metrics}
    metrics.update({m.name: m for m in final.metrics})
    invariants = {i.name: i for i in partial.invariants}
    invariants.update({i.name: i for i in final.invariants})
    return ScenarioResult(
        area=final.area or partial.area,
        metrics=list(metrics.values()),
        invariants=list(invariants.values()),
        environment={**partial.environment, **final.environment},
        comparable_on={**partial.comparable_on, **final.comparable_on},
        stages={**partial.stages, **final.stages},
    )


def supervised(area_name: str, checks: Sequence[str], log: Any = None, **kwargs: Any) -> Supervisor:
    """A supervisor for one run of `area_name` (the factory and tests build it the same way)."""
    return Supervisor(area=area_name, checks=tuple(checks), log=log or logging.getLogger(__name__), **kwargs)
