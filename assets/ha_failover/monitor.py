"""Watches a cluster during a fault: who REST calls leader, and which members accept writes directly.

Two members accepting a write in the same probe round is split brain, whatever HAProxy does with it.
The leader timeline gives the time to a new leader. Bounded by `max_rounds` and `stop()`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from resources.patroni.client import ClusterTarget
from resources.patroni.view import writable_members


@dataclass(frozen=True)
class Sample:
    at: float  # epoch seconds when the round started
    rest_leaders: tuple[str, ...]
    writable: tuple[str, ...]


class ClusterMonitor(threading.Thread):
    def __init__(self, target: ClusterTarget, interval_s: float = 0.25, max_rounds: int = 2000) -> None:
        super().__init__(name="ha-monitor", daemon=True)
        self.target = target
        self.interval_s = interval_s
        self.max_rounds = max_rounds
        self.samples: list[Sample] = []
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def rest_leaders(self) -> tuple[str, ...]:
        with ThreadPoolExecutor(max_workers=len(self.target.members)) as pool:
            codes = list(pool.map(lambda m: self.target.rest(m, "/primary", timeout_s=1.0)[0], self.target.members))
        return tuple(m.name for m, code in zip(self.target.members, codes, strict=True) if code == 200)

    def run(self) -> None:
        for _ in range(self.max_rounds):
            if self._halt.is_set():
                return
            started = time.time()
            leaders = self.rest_leaders()
            writable = tuple(writable_members(self.target))
            self.samples.append(Sample(started, leaders, writable))
            self._halt.wait(max(0.0, self.interval_s - (time.time() - started)))


@dataclass(frozen=True)
class LeaderTimeline:
    time_to_leader_s: float | None  # fault -> a leader again (new or the same restarted); None: never seen
    new_leader: str | None
    leader_lost: bool  # some round after the fault saw no serving leader, or a different one


def _serving_leader(sample: Sample) -> str | None:
    """The one member REST calls leader, if it also accepts writes on its own port."""
    if len(sample.rest_leaders) == 1 and sample.rest_leaders[0] in sample.writable:
        return sample.rest_leaders[0]
    return None


def leader_timeline(samples: Sequence[Sample], old_leader: str, fault_at: float) -> LeaderTimeline:
    """From the first round without the old leader serving, to the first round with one serving leader.

    "Serving" needs REST and SQL to agree, so a postmaster restarted in place (same leader) counts too.
    """
    after = [s for s in samples if s.at >= fault_at]
    lost_index = next((i for i, s in enumerate(after) if _serving_leader(s) != old_leader), None)
    if lost_index is None:
        return LeaderTimeline(0.0, old_leader, False)
    back = next((s for s in after[lost_index:] if _serving_leader(s) is not None), None)
    if back is None:
        return LeaderTimeline(None, None, True)
    return LeaderTimeline(back.at - fault_at, _serving_leader(back), True)


def split_brain_rounds(samples: Sequence[Sample]) -> list[Sample]:
    """Rounds in which two or more members accepted a write on their own port."""
    return [s for s in samples if len(s.writable) > 1]
