"""When a nemesis acts: at a seeded point of the workload phase, for a bounded time, always healed.

A phase hook on the supervisor: entering the first `workload` phase starts a timer thread that injects the
fault after `at_s`, heals it after `for_s` or as soon as the workload phase ends (whichever comes first), then
polls `recovered` (a fresh client) until the service is usable again. Leaving the workload phase waits for
that, so the area's settle and judge phases see a healed service. A crash still heals it, before any other
cleanup (a stopped server must be back before tables on it are dropped). Whatever happened is recorded: the
figures `nemesis.*`, the environment (`nemesis`, `nemesis_outcome`, `nemesis_did`) and a note on every failed
check; a nemesis that never fired says why ("not started").
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

from regression_pipelines.kit.nemeses.base import Nemesis, Target
from regression_pipelines.kit.supervisor import WORKLOAD, Supervisor
from regression_pipelines.measure import describe_error
from regression_pipelines.results import Direction, Metric, MetricKind

RECOVERY_BOUND_S = 60.0
HEAL_BOUND_S = 90.0  # a restart's heal waits for the server to be ready (the lab allows 60 s)
NOT_STARTED, FAILED_TO_START, ACTED = "not started", "failed to start", "acted"


def seeded_start(name: str, area: str, seed: int, low: float = 0.2, high: float = 1.2) -> float:
    """A start offset in [low, high) s, the same for the same nemesis, area and seed (a replayable point)."""
    return round(random.Random(f"{name}:{area}:{seed}").uniform(low, high), 3)


@dataclass
class NemesisSchedule:
    nemesis: Nemesis
    target: Target
    at_s: float
    for_s: float
    started_at: float | None = None  # s into the workload when the fault was in effect
    healed_at: float | None = None
    recovered_at: float | None = None
    did: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    why_not_started: str = ""

    def __post_init__(self) -> None:
        self._workload_over = threading.Event()
        self._thread: threading.Thread | None = None
        self._origin = 0.0
        self._lock = threading.Lock()
        self._attempted = False
        self._start_failed = False

    def attach(self, supervisor: Supervisor) -> None:
        """Act in the supervisor's workload phase; heal and record first thing in its cleanup."""
        supervisor.add_hook(self)
        supervisor.on_cleanup(f"heal nemesis {self.nemesis.name}", lambda: self.finish(supervisor), first=True)

    @property
    def outcome(self) -> str:
        if not self._attempted:
            return NOT_STARTED
        return FAILED_TO_START if self._start_failed else ACTED

    # PhaseHook
    def entered(self, supervisor: Supervisor, phase: str) -> None:
        if phase == WORKLOAD and self._thread is None:
            self._origin = time.monotonic()
            self._thread = threading.Thread(target=self._act, name=f"nemesis-{self.nemesis.name}", daemon=True)
            self._thread.start()

    def left(self, supervisor: Supervisor, phase: str) -> None:
        if phase == WORKLOAD and self._thread is not None and not self._workload_over.is_set():
            self._workload_over.set()
            self._thread.join(timeout=HEAL_BOUND_S + RECOVERY_BOUND_S + 10)
            self._record(supervisor)

    def finish(self, supervisor: Supervisor) -> None:
        """After the run (also after a crash): heal if still needed, and record what happened."""
        self._workload_over.set()
        if self._thread is not None:
            self._thread.join(timeout=HEAL_BOUND_S + RECOVERY_BOUND_S + 10)
        self.heal()
        if self._thread is None:
            self.why_not_started = (
                "the area entered no 'workload' phase (the kit fires nemeses only inside it: "
                '`with ctx.sup.phase("workload"):`)'
            )
        self._record(supervisor)

    def _act(self) -> None:
        if self._workload_over.wait(self.at_s):
            self.why_not_started = f"the workload phase ended before the start point {self.at_s:.2f} s"
            return
        self._attempted = True
        try:
            self.did.append(self.nemesis.start(self.target))
            self.started_at = self._now()
        except Exception as exc:
            self._start_failed = True
            self.errors.append(f"start: {describe_error(exc)}")
        self._workload_over.wait(self.for_s)
        try:
            self.heal()
        except Exception:  # recorded in errors; the cleanup tries again
            return
        if not self._start_failed:
            self._wait_recovered()

    def heal(self) -> None:
        """Stop the fault once (idempotent; the cleanup after a crash calls it too). Raises if stop fails."""
        with self._lock:
            if not self._attempted or self.healed_at is not None:
                return
            try:
                self.did.append(self.nemesis.stop(self.target))
            except Exception as exc:
                self.errors.append(f"stop: {describe_error(exc)}")
                raise
            self.healed_at = self._now()

    def _wait_recovered(self) -> None:
        deadline = time.monotonic() + RECOVERY_BOUND_S
        while time.monotonic() < deadline:
            try:
                if self.nemesis.recovered(self.target):
                    self.recovered_at = self._now()
                    return
            except Exception:  # still down: keep polling
                pass
            time.sleep(0.1)

    def _now(self) -> float:
        return time.monotonic() - self._origin

    def describe(self) -> str:
        name = f"nemesis {self.nemesis.name}"
        if self.outcome == NOT_STARTED:
            return f"{name} not started: {self.why_not_started or 'the workload phase did not reach its start'}"
        if self.outcome == FAILED_TO_START:
            return f"{name} failed to start ({'; '.join(self.errors)})"
        text = f"{name} started at {self.started_at:.1f} s into the workload ({self.did[0]})"
        if self.healed_at is not None:
            text += f", healed at {self.healed_at:.1f} s"
        if self.recovered_at is not None:
            text += f", service usable again at {self.recovered_at:.1f} s"
        elif self.healed_at is not None:
            text += f", service not usable again within {RECOVERY_BOUND_S:.0f} s"
        return text + (f" (errors: {'; '.join(self.errors)})" if self.errors else "")

    def _record(self, supervisor: Supervisor) -> None:
        info, lower = MetricKind.INFO, Direction.LOWER_IS_BETTER
        figures = {"at_s": self.at_s, "started_at_s": self.started_at, "healed_at_s": self.healed_at}
        if self.healed_at is not None and self.recovered_at is not None:
            figures["recovered_after_s"] = self.recovered_at - self.healed_at
        supervisor.record(*(Metric(f"nemesis.{k}", v, "s", lower, info) for k, v in figures.items() if v is not None))
        supervisor.partial.environment.update(
            nemesis=self.nemesis.name,
            nemesis_outcome=self.outcome,
            nemesis_did="; ".join(self.did + self.errors) or self.describe(),
        )
        supervisor.replace_note(f"nemesis {self.nemesis.name} ", self.describe())
