"""Removing a folder a run made, so that a failure says so.

Why not `shutil.rmtree(path, ignore_errors=True)`: it returns quietly when a passing fault (an immutable or
read-only folder, a file held open on a filesystem that refuses) keeps part of the tree, so the supervisor's
bounded retry never retries and `no_leftovers` only finds the folder at the end, without the cause. Seen: a
Delta table's `_delta_log` made immutable (`chattr +i`) for 3 s left the table behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


def remove_tree(path: str | Path) -> None:
    """Remove `path` and everything under it (absent already: nothing to do); raises OSError naming the path and
    the first failure when any of it is still there."""
    failures: list[str] = []

    def note(_func: Any, failed: str, exc_info: Any) -> None:
        failures.append(f"{failed}: {exc_info[1]}")

    shutil.rmtree(path, onerror=note)
    if Path(path).exists() or Path(path).is_symlink():
        first = failures[0] if failures else "still there after removal"
        raise OSError(f"{path} could not be removed ({len(failures)} failures; first: {first})")
