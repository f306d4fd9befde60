"""A thread that takes a look at a service every `period_s` during a run, for observers of any service.

Why: a fault can come and go within the run (a trigger added and dropped, a server restarted before the judge
looks); the samples keep what the final look can no longer see. `look` must never raise (observers return a
state that says why there was no answer).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

State = TypeVar("State")


class Sampler(Generic[State]):
    """Samples `look()` every `period_s` until stopped (at most `keep` samples, evenly thinned)."""

    def __init__(self, look: Callable[[], State], period_s: float = 0.5, keep: int = 400, name: str = "observer"):
        self.look, self.period_s, self.keep = look, period_s, keep
        self.samples: list[State] = []
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Sampler[State]:
        self._thread.start()
        return self

    def stop(self) -> list[State]:
        """The samples so far (idempotent)."""
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        return list(self.samples)

    def _loop(self) -> None:
        while not self._halt.wait(self.period_s):
            try:
                self.samples.append(self.look())
            except Exception:  # an observer that raises anyway must not end the sampling thread's host
                continue
            if len(self.samples) > self.keep:
                self.samples = self.samples[::2]
