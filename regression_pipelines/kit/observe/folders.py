"""Whether the folders a run owns stayed where they were and writable: a table's folder moved away, deleted, or
replaced for a moment explains every read that failed with "not found", one made unwritable (permissions, an
immutable flag, a read-only mount; `os.access`, which sees all three, even for root) every write that failed,
and either is back by the time the judge looks.

Why a watch: the judge's look at the folder sees it back where it was and finds nothing; the looks taken every
`period_s` keep when it was missing. A path that did not exist at the first look is not watched (not made yet).
Reusable by any area whose state lives in files (a Delta table, a spool directory).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from regression_pipelines.kit.observe.watch import Sampler


@dataclass(frozen=True)
class FolderLook:
    at: float  # monotonic seconds
    inodes: dict[str, int | None]  # path -> its inode, None when it could not be found
    writable: dict[str, bool] = field(default_factory=dict)  # path (found) -> whether this process may write it


def look(paths: Sequence[str | Path], clock: Callable[[], float] = time.monotonic) -> FolderLook:
    """One look (never raises: a path that cannot be stat'ed is missing)."""
    inodes: dict[str, int | None] = {}
    writable: dict[str, bool] = {}
    for path in paths:
        try:
            inodes[str(path)] = os.stat(path).st_ino
            writable[str(path)] = os.access(path, os.W_OK)
        except OSError:
            inodes[str(path)] = None
    return FolderLook(clock(), inodes, writable)


def findings(looks: Sequence[FolderLook]) -> list[str]:
    """Per path present at the first look: the looks it was missing at, and whether it was replaced (another
    inode: deleted and made again, or swapped in by a rename), with when and how it stood at the last look."""
    if len(looks) < 2:
        return []
    first, last = looks[0], looks[-1]
    found = []
    for path, inode in first.inodes.items():
        if inode is None:
            continue
        missing = [x for x in looks if x.inodes.get(path) is None]
        replaced = [x for x in looks if x.inodes.get(path) not in (None, inode)]
        now = last.inodes.get(path)
        if missing:
            span = _span(first, missing)
            standing = "still missing at the last look" if now is None else "back by the last look"
            found.append(f"{path} was missing at {len(missing)} of {len(looks)} looks, {span} into the run "
                         f"({standing})")  # fmt: skip
        if first.writable.get(path, True):
            found += _unwritable(path, first, looks)
        if replaced:
            standing = "" if now is None or now == inode else ", and is another folder than the run made"
            found.append(f"{path} was replaced (another inode), seen {_span(first, replaced)} into the run"
                         f"{standing}")  # fmt: skip
    return found


def _unwritable(path: str, first: FolderLook, looks: Sequence[FolderLook]) -> list[str]:
    shut = [x for x in looks if x.inodes.get(path) is not None and not x.writable.get(path, True)]
    if not shut:
        return []
    last = looks[-1]
    standing = "still not at the last look" if shut[-1] is last else "writable again by the last look"
    return [f"{path} could not be written (permissions, an immutable flag or a read-only mount) at {len(shut)} of "
            f"{len(looks)} looks, {_span(first, shut)} into the run ({standing})"]  # fmt: skip


def _span(first: FolderLook, seen: Sequence[FolderLook]) -> str:
    start, end = f"{seen[0].at - first.at:.1f}", f"{seen[-1].at - first.at:.1f}"
    return f"{start} s" if start == end else f"{start}-{end} s"


class FolderWatch:
    """A look now, then one every `period_s` until stopped; `findings()` reads the looks so far plus one more,
    so a check judged mid-run is explained by what was seen up to then."""

    def __init__(self, paths: Sequence[str | Path], period_s: float = 0.5) -> None:
        self.paths = list(paths)
        self.first = look(self.paths)
        self.sampler: Sampler[FolderLook] = Sampler(lambda: look(self.paths), period_s, name="folder-watch")

    def start(self) -> FolderWatch:
        self.sampler.start()
        return self

    def findings(self) -> list[str]:
        return findings([self.first, *list(self.sampler.samples), look(self.paths)])

    def stop(self) -> None:
        self.sampler.stop()
