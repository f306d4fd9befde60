"""The folder watch on real folders (tmp_path): moved away and back, deleted for good, replaced, untouched."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from regression_pipelines.kit.observe import folders
from regression_pipelines.removal import remove_tree


def _looks(*paths: Path) -> folders.FolderLook:
    return folders.look(paths)


def test_an_untouched_folder_and_one_not_made_yet_say_nothing(tmp_path: Path) -> None:
    table, later = tmp_path / "table", tmp_path / "later"
    table.mkdir()
    first = _looks(table, later)
    later.mkdir()
    assert folders.findings([first, _looks(table, later), _looks(table, later)]) == []


def test_a_folder_moved_away_and_back_is_named_with_when_and_back(tmp_path: Path) -> None:
    table = tmp_path / "table"
    table.mkdir()
    first = _looks(table)
    table.rename(tmp_path / "moved")
    gone = _looks(table)
    (tmp_path / "moved").rename(table)
    (finding,) = folders.findings([first, gone, _looks(table)])
    assert finding.startswith(f"{table} was missing at 1 of 3 looks, ")
    assert finding.endswith(" into the run (back by the last look)")


def test_a_folder_deleted_for_good_and_one_replaced(tmp_path: Path) -> None:
    gone, swapped = tmp_path / "gone", tmp_path / "swapped"
    gone.mkdir()
    swapped.mkdir()
    first = _looks(gone, swapped)
    shutil.rmtree(gone)
    (tmp_path / "other").mkdir()
    swapped.rmdir()
    (tmp_path / "other").rename(swapped)
    missing, replaced = folders.findings([first, _looks(gone, swapped)])
    assert missing.startswith(f"{gone} was missing at 1 of 2 looks") and "still missing at the last look" in missing
    assert replaced.startswith(f"{swapped} was replaced (another inode), seen ")
    assert replaced.endswith("and is another folder than the run made")


def test_the_watch_keeps_a_moment_the_last_look_cannot_see(tmp_path: Path) -> None:
    table = tmp_path / "table"
    table.mkdir()
    watch = folders.FolderWatch([table], period_s=0.02).start()
    try:
        table.rename(tmp_path / "moved")
        deadline = time.monotonic() + 30  # a loaded host: wait for a look while it is away, never a timing check
        while all(x.inodes[str(table)] is not None for x in list(watch.sampler.samples)):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        (tmp_path / "moved").rename(table)
        (finding,) = watch.findings()
        assert "back by the last look" in finding
    finally:
        watch.stop()


def _immutable(path: Path, on: bool) -> bool:
    """chattr +i / -i (root on ext4 here); False where the filesystem or user cannot."""
    done = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True, check=False)
    return done.returncode == 0


def test_a_folder_made_unwritable_for_a_moment_is_named_even_for_root(tmp_path: Path) -> None:
    """Root ignores permission bits, so the fault tried from outside was an immutable _delta_log (chattr +i): every
    commit failed while it lasted. os.access sees it; permission bits stand in where chattr cannot run."""
    log = tmp_path / "table" / "_delta_log"
    log.mkdir(parents=True)
    first = _looks(log)
    if not _immutable(log, True):
        if os.geteuid() == 0:
            pytest.skip("chattr cannot set the immutable flag here, and root ignores permission bits")
        log.chmod(0o555)
    try:
        shut = _looks(log)
        with pytest.raises(OSError, match="could not be removed"):
            remove_tree(log.parent)  # a cleanup that fails says so (the supervisor retries it, then names it)
    finally:
        _immutable(log, False)
        log.chmod(0o755)
    (finding,) = folders.findings([first, shut, _looks(log)])
    assert finding.startswith(f"{log} could not be written (permissions, an immutable flag or a read-only mount) "
                              "at 1 of 3 looks, ")  # fmt: skip
    assert finding.endswith("(writable again by the last look)")
    remove_tree(log.parent)
    assert not log.parent.exists()
    remove_tree(log.parent)  # already gone: nothing to do
