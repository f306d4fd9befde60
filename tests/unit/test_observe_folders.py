"""The folder watch on real folders (tmp_path): moved away and back, deleted for good, replaced, untouched."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from regression_pipelines.kit.observe import folders


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
