"""The stale-read oracle: which version of each key was committed when, as the writers saw it."""

from __future__ import annotations

import bisect
import threading


class CommitLog:
    """Committed versions per key with their commit times (monotonic seconds), recorded after COMMIT returns.

    A read is stale when the cache returns a version older than the newest version committed before the
    read started; its staleness is how long that newer version had been committed.
    """

    def __init__(self, keys: int) -> None:
        self._lock = threading.Lock()
        self._versions: list[list[int]] = [[1] for _ in range(keys)]
        self._times: list[list[float]] = [[0.0] for _ in range(keys)]

    def record(self, key: int, version: int, committed_at: float) -> None:
        with self._lock:
            versions = self._versions[key]
            index = bisect.bisect_left(versions, version)
            versions.insert(index, version)
            self._times[key].insert(index, committed_at)

    def latest(self, key: int) -> int:
        with self._lock:
            return self._versions[key][-1]

    def staleness(self, key: int, served_version: int, read_started: float) -> float:
        """Seconds since the first version newer than `served_version` was committed (0 if none)."""
        with self._lock:
            versions = self._versions[key]
            index = bisect.bisect_right(versions, served_version)
            if index >= len(versions):
                return 0.0
            return max(0.0, read_started - self._times[key][index])
