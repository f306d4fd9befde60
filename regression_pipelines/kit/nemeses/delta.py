"""Faults on the files of the run's Delta table (kind "delta_table": its path), as storage or another job does.

Removed files: a commit JSON (the newest but one: readers then see a gap, "Expected contiguous commit
files"), the newest checkpoint (`_last_checkpoint` then points at nothing), the `_change_data` files (the
feed of those versions is gone). Added files: unreferenced garbage (a junk Parquet file in the data folder,
junk next to the log and in `_change_data`; the protocol says readers ignore them), a corrupt commit (the next
version's JSON, not JSON: the next writer collides with it and readers fail to parse it), and an outside
writer committing appends of existing rows to the table during the window. Files are never restored: the
faults are permanent, as they are when storage loses or gains a file; what "recovered" means for the table
is the area's to judge (the filesystem itself is always usable, so `recovered` is true once healed).

Not destructive: each acts only on the run's own table, and only under the delta resource's root.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from regression_pipelines.kit.nemeses.base import Nemesis, NemesisError, Target
from regression_pipelines.kit.nemeses.service import Window

LOG = "_delta_log"
CHANGE_DATA = "_change_data"
WAIT_FOR_FILES_S = 3.0  # a removal waits this long at most for the files it removes to exist


class DeltaNemesis(Nemesis):
    services: ClassVar[frozenset[str]] = frozenset({"delta"})
    destructive: ClassVar[bool] = False

    def check(self, target: Target) -> None:
        endpoint = target.endpoint("delta")
        root = str(endpoint.extra.get("root", ""))
        if not root or "://" in root:
            raise NemesisError(
                f"nemesis {self.name} acts on local table folders only; the delta resource's root is {root!r}"
            )

    def tables(self, target: Target) -> list[Path]:
        """The run's Delta tables, each checked to lie under the resource's root (never anything else)."""
        root = Path(str(target.endpoint("delta").extra["root"])).resolve()
        names = target.created("delta_table")
        if not names:
            raise NemesisError("nothing to act on: the run has registered no delta_table yet")
        paths = [Path(name).resolve() for name in names]
        outside = [str(p) for p in paths if root not in p.parents]
        if outside:
            raise NemesisError(f"refused: {', '.join(outside)} is not under the delta root {root}")
        return paths

    def stop(self, target: Target) -> str:
        window = target.state.pop(self.name, None)
        return f"stopped: {window.stop()}" if isinstance(window, Window) else "nothing to heal (files stay as they are)"


def commits(table: Path) -> list[Path]:
    return sorted((table / LOG).glob("[0-9]" * 20 + ".json"))


def checkpoints(table: Path) -> list[Path]:
    return sorted((table / LOG).glob("*.checkpoint*.parquet"))


def _wait_for(find: Callable[[], list[Path]], at_least: int) -> list[Path]:
    deadline = time.monotonic() + WAIT_FOR_FILES_S
    while True:
        found = find()
        if len(found) >= at_least or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)


class DeltaRemoveCommit(DeltaNemesis):
    name = "delta_remove_commit"
    description = "deletes the newest-but-one commit JSON of the run's Delta table (a gap in the log)"

    def start(self, target: Target) -> str:
        removed = []
        for table in self.tables(target):
            found = _wait_for(lambda t=table: commits(t), 2)
            if len(found) < 2:
                raise NemesisError(f"{table.name} has {len(found)} commits; need 2 to remove one")
            found[-2].unlink()
            removed.append(f"{table.name}/{LOG}/{found[-2].name}")
        return f"removed {', '.join(removed)}"


class DeltaRemoveDuringWindow(DeltaNemesis):
    """Removes the files `find` gives as soon as they appear, for the whole window. Starting waits (at most
    WAIT_FOR_FILES_S) for the first of them: with none, the nemesis could not act, and says so."""

    what = "files"
    why_none = ""

    def find(self, table: Path) -> list[Path]:
        raise NotImplementedError

    def start(self, target: Target) -> str:
        tables = self.tables(target)
        names = ", ".join(t.name for t in tables)
        first = _wait_for(lambda: [path for table in tables for path in self.find(table)], 1)
        if not first:
            raise NemesisError(f"could not act: no {self.what} in {names} within {WAIT_FOR_FILES_S:g} s{self.why_none}")
        for path in first:
            path.unlink(missing_ok=True)

        def tick() -> str | None:
            gone = [path for table in tables for path in self.find(table)]
            for path in gone:
                path.unlink(missing_ok=True)
            return f"removed {len(gone)}" if gone else None

        target.state[self.name] = Window(self.name, tick, 0.1)
        return f"removed {len(first)} {self.what} from {names} and removing new ones during the window"


class DeltaRemoveCheckpoint(DeltaRemoveDuringWindow):
    name = "delta_remove_checkpoint"
    description = "deletes every checkpoint of the run's Delta table as soon as it appears during nemesis_for_s (_last_checkpoint then points at nothing)"  # noqa: E501

    what = "checkpoint"
    why_none = " (the table writes one every delta.checkpointInterval commits: lower it, or start the nemesis later)"

    def find(self, table: Path) -> list[Path]:
        return checkpoints(table)


class DeltaRemoveChangeData(DeltaRemoveDuringWindow):
    name = "delta_remove_change_data"
    description = "deletes the _change_data files of the run's Delta table, and every one written during nemesis_for_s"  # noqa: E501

    what = "_change_data file"
    why_none = " (only UPDATE, DELETE and MERGE on a table with delta.enableChangeDataFeed write them)"

    def find(self, table: Path) -> list[Path]:
        return list((table / CHANGE_DATA).rglob("*.parquet"))


class DeltaGarbageFiles(DeltaNemesis):
    name = "delta_garbage_files"
    description = "adds unreferenced junk files to the run's Delta table (a junk Parquet file, junk in _delta_log and _change_data): readers must ignore them"  # noqa: E501

    def start(self, target: Target) -> str:
        added = []
        rng = random.Random(f"{self.name}:{target.seed}")
        for table in self.tables(target):
            junk = bytes(rng.getrandbits(8) for _ in range(256))
            for path in (
                table / f"part-99999-regress-nemesis-{rng.getrandbits(32):08x}.c000.snappy.parquet",
                table / LOG / "regress-nemesis-junk.tmp",
                table / CHANGE_DATA / f"cdc-99999-regress-nemesis-{rng.getrandbits(32):08x}.c000.snappy.parquet",
            ):
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(junk)
                added.append(str(path.relative_to(table.parent)))
        return f"added {', '.join(added)}"


class DeltaCorruptCommit(DeltaNemesis):
    name = "delta_corrupt_commit"
    description = "writes the next commit JSON of the run's Delta table with garbage (not JSON): the next writer collides, readers fail"  # noqa: E501

    def start(self, target: Target) -> str:
        added = []
        for table in self.tables(target):
            found = _wait_for(lambda t=table: commits(t), 1)
            version = int(found[-1].stem) + 1 if found else 0
            path = table / LOG / f"{version:020d}.json"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # never overwrite a real commit
            with os.fdopen(fd, "w") as out:
                out.write('{"commitInfo": {"operation": "WRITE", garbage written by regress nemesis\n')
            added.append(f"{table.name}/{LOG}/{path.name}")
        return f"added corrupt commit {', '.join(added)}"


class DeltaOutsideWriter(DeltaNemesis):
    name = "delta_outside_writer"
    description = "an outside writer commits appends of existing rows (in the table's current schema) to the run's Delta table every 0.3 s during nemesis_for_s"  # noqa: E501

    def start(self, target: Target) -> str:
        tables = self.tables(target)

        def tick() -> str | None:
            done = [did for table in tables if (did := append_existing_rows(table))]
            return "; ".join(done) or None

        target.state[self.name] = Window(self.name, tick, 0.3)
        return f"outside writer appending to {', '.join(t.name for t in tables)}"


def append_existing_rows(table: Path, rows: int = 5, attempts: int = 5) -> str:
    """Append copies of `rows` existing rows, shaped to the table's schema as it is when writing: columns the
    rows lack are null, every column cast to the table's type. A schema that changed or a commit race between
    reading and committing is retried (as an outside job would) up to `attempts` times; the last error raises."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake
    from deltalake.exceptions import CommitFailedError, SchemaMismatchError

    for attempt in range(attempts):
        current = DeltaTable(str(table))
        schema = pa.schema(current.schema().to_arrow())
        found = current.to_pyarrow_dataset().head(rows)
        if not found.num_rows:
            return ""
        columns = [
            found.column(f.name).cast(f.type) if f.name in found.column_names else pa.nulls(found.num_rows, f.type)
            for f in schema
        ]
        data = pa.Table.from_arrays(columns, schema=schema)
        try:
            write_deltalake(str(table), data, mode="append")
        except (CommitFailedError, SchemaMismatchError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))
            continue
        return f"appended {found.num_rows} rows to {table.name}" + (f" (try {attempt + 1})" if attempt else "")
    return ""


NEMESES = (
    DeltaRemoveCommit(),
    DeltaRemoveCheckpoint(),
    DeltaRemoveChangeData(),
    DeltaGarbageFiles(),
    DeltaCorruptCommit(),
    DeltaOutsideWriter(),
)
