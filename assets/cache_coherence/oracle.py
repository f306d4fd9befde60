"""The oracles: what was committed when (and with which bytes), and when each cache entry may still be read.

- `CommitLog`: per key, the versions writers committed (value digests, deletions), with the monotonic time the
  statement was sent and the time the write returned (COMMIT and the cache update: the application's promise is
  that once a write returns no read sees older data), plus writes whose outcome is unknown (the connection broke).
  A read is stale when it serves a version older than the newest write that returned before the read started; a
  read is intact when its version was committed for that key with exactly the bytes it carries.
- `ExpiryLedger`: every cache write and TTL refresh (send and reply times, the TTL the application meant) and
  every hit. A hit is an expiry violation when no write or refresh that could have come before it could still
  be alive when the hit started: the server returned an entry after its TTL.
"""

from __future__ import annotations

import bisect
import math
import threading
from array import array
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

EXPIRY_SLACK_S = 0.005  # clock sources (monotonic here, Redis's wall clock) and millisecond rounding


@dataclass(frozen=True)
class Version:
    version: int
    deleted: bool
    digest: bytes  # b"" for a deletion
    sent: float
    committed: float  # when the write returned: COMMIT and the cache update done


@dataclass(frozen=True)
class Mismatch:
    """A read that returned something no writer committed for its key."""

    key: int
    version: int | None  # None: the row was absent
    source: str  # cache | db
    kind: str  # unknown_version | wrong_bytes | missing_row
    at: float


class CommitLog:
    """Committed and possibly committed versions per key; thread-safe."""

    def __init__(self, keys: int) -> None:
        self._lock = threading.Lock()
        self._committed: list[list[Version]] = [[] for _ in range(keys)]
        self._numbers: list[list[int]] = [[] for _ in range(keys)]  # the versions of _committed, for bisect
        self._maybe: list[list[Version]] = [[] for _ in range(keys)]
        self._deferred: list[tuple[int, int, bytes, str, float]] = []
        self._absent: list[tuple[int, float, float, int]] = []
        self.checked = 0
        self.mismatches: list[Mismatch] = []

    def initial(self, key: int, digest: bytes) -> None:
        self.record(key, Version(0, False, digest, 0.0, 0.0))

    def record(self, key: int, version: Version) -> None:
        with self._lock:
            numbers = self._numbers[key]
            index = bisect.bisect_left(numbers, version.version)
            numbers.insert(index, version.version)
            self._committed[key].insert(index, version)

    def maybe(self, key: int, deleted: bool, digest: bytes, sent: float) -> None:
        """A write whose outcome is unknown (the connection broke): a later read may legitimately show it."""
        with self._lock:
            self._maybe[key].append(Version(-1, deleted, digest, sent, math.inf))

    def latest(self, key: int) -> int:
        with self._lock:
            versions = self._committed[key]
            return versions[-1].version if versions else -1

    def latest_live(self, key: int) -> bool:
        """Whether the newest committed version of `key` is a row (not a deletion)."""
        with self._lock:
            versions = self._committed[key]
            return bool(versions) and not versions[-1].deleted

    def staleness(self, key: int, served_version: int, read_started: float) -> float:
        """Seconds since the first version newer than `served_version` was committed (0 if none)."""
        with self._lock:
            index = bisect.bisect_right(self._numbers[key], served_version)
            versions = self._committed[key]
            if index >= len(versions):
                return 0.0
            return max(0.0, read_started - versions[index].committed)

    def check(self, key: int, version: int, digest: bytes, source: str, at: float) -> None:
        """Judge one read's (version, bytes) now, or at the end when the version is not logged yet."""
        with self._lock:
            self.checked += 1
            found = self._find(key, version)
            if found is None:
                self._deferred.append((key, version, digest, source, at))
            elif found.deleted or found.digest != digest:
                self.mismatches.append(Mismatch(key, version, source, "wrong_bytes", at))

    def absent(self, key: int, started: float, done: float, latest_at_start: int) -> None:
        """The database said the row is absent; judged at the end (a deletion may not be logged yet)."""
        with self._lock:
            self.checked += 1
            self._absent.append((key, started, done, latest_at_start))

    def finish(self) -> list[Mismatch]:
        """Judge what could not be judged during the run; every mismatch, oldest first."""
        with self._lock:
            for key, version, digest, source, at in self._deferred:
                found = self._find(key, version)
                if found is None:
                    if not any(m.digest == digest and not m.deleted for m in self._maybe[key]):
                        self.mismatches.append(Mismatch(key, version, source, "unknown_version", at))
                elif found.deleted or found.digest != digest:
                    self.mismatches.append(Mismatch(key, version, source, "wrong_bytes", at))
            self._deferred.clear()
            for key, started, done, latest in self._absent:
                if not self._deleted_around(key, done, latest):
                    self.mismatches.append(Mismatch(key, None, "db", "missing_row", started))
            self._absent.clear()
            return sorted(self.mismatches, key=lambda m: m.at)

    def unaccounted(self, present: Mapping[int, int]) -> Unaccounted:
        """Keys whose row in the table (`present`: key -> version, read once the workload is over) the run's
        acknowledged writes cannot explain: gone although the newest write of the key was a row (a deletion by
        the run takes its version under the row lock, after any write it follows), or holding a version the run
        never committed for the key. Keys with a write of unknown outcome are left out, and so is a row that a
        deletion of the run seems to follow (an insert that waited on that deletion keeps the older version it
        drew). What is left was written by someone else, behind the cache's back."""
        gone, foreign = [], []
        with self._lock:
            for key, versions in enumerate(self._committed):
                if not versions or self._maybe[key]:
                    continue
                row = present.get(key)
                if row is None and not versions[-1].deleted:
                    gone.append(key)
                elif row is not None and self._find(key, row) is None:
                    foreign.append(key)
        return Unaccounted(gone, foreign)

    def _find(self, key: int, version: int) -> Version | None:
        numbers = self._numbers[key]
        index = bisect.bisect_left(numbers, version)
        return self._committed[key][index] if index < len(numbers) and numbers[index] == version else None

    def _deleted_around(self, key: int, done: float, latest_at_start: int) -> bool:
        """A deletion that may explain an absent row: the newest one before the read, or one sent before it ended."""
        if latest_at_start >= 0:
            newest = self._find(key, latest_at_start)
            if newest is not None and newest.deleted:
                return True
        later = self._committed[key][bisect.bisect_right(self._numbers[key], latest_at_start) :]
        deletions = [v for v in later if v.deleted]
        maybes = [m for m in self._maybe[key] if m.deleted]
        return any(d.sent <= done for d in deletions + maybes)


@dataclass(frozen=True)
class Unaccounted:
    """Rows the run's acknowledged writes cannot explain (`CommitLog.unaccounted`), by key."""

    gone: list[int]  # absent, though the run's newest write of the key was a row
    foreign: list[int]  # present at a version the run never committed for the key

    def describe(self, table: str) -> str:
        """One sentence, or "" when every row is the run's own."""
        parts = [
            f"{len(keys)} {'row' if len(keys) == 1 else 'rows'} {what} (e.g. keys {', '.join(map(str, keys[:5]))})"
            for keys, what in (
                (self.gone, "gone that the run never deleted"),
                (self.foreign, "at a version the run never wrote for that key"),
            )
            if keys
        ]
        if not parts:
            return ""
        return f"rows of {table} after the workload that the run's acknowledged writes cannot explain: " + "; ".join(
            parts
        )


@dataclass
class _Writes:
    sent: list[float] = field(default_factory=list)
    alive_until: list[float] = field(default_factory=list)


class ExpiryLedger:
    """Cache writes/refreshes and hits per key, in monotonic seconds; judged once the workload is over."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writes: dict[int, _Writes] = defaultdict(_Writes)
        self._hits: dict[int, array] = defaultdict(lambda: array("d"))

    def wrote(self, key: int, sent: float, done: float, ttl_ms: int) -> None:
        """A cache write or refresh the server applied (or may have: an error) with the TTL the application meant;
        ttl 0 means no expiry."""
        alive_until = math.inf if ttl_ms <= 0 else done + ttl_ms / 1000
        with self._lock:
            writes = self._writes[key]
            writes.sent.append(sent)
            writes.alive_until.append(alive_until)

    def hit(self, key: int, sent: float, done: float) -> None:
        with self._lock:
            self._hits[key].extend((sent, done))

    @property
    def hits(self) -> int:
        return sum(len(h) // 2 for h in self._hits.values())

    def violations(self) -> list[tuple[int, float, float]]:
        """(key, hit started, latest moment any earlier write could keep the entry alive) of each hit after expiry."""
        found = []
        with self._lock:
            for key, hits in self._hits.items():
                writes = self._writes.get(key)
                order = sorted(range(len(writes.sent)), key=writes.sent.__getitem__) if writes else []
                sent = [writes.sent[i] for i in order] if writes else []
                alive = _running_max([writes.alive_until[i] for i in order]) if writes else []
                for i in range(0, len(hits), 2):
                    started, done = hits[i], hits[i + 1]
                    last = bisect.bisect_right(sent, done) - 1
                    until = alive[last] if last >= 0 else -math.inf
                    if started > until + EXPIRY_SLACK_S:
                        found.append((key, started, until))
        return sorted(found, key=lambda v: v[1])


def _running_max(values: list[float]) -> list[float]:
    out, best = [], -math.inf
    for value in values:
        best = max(best, value)
        out.append(best)
    return out
