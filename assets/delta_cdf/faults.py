"""Real faults on the real table, each the kind of thing that breaks a change feed in the field.

Commits of their own (see ops.py for how each is committed):
- `cdf_off_commit`: CDF switched off for one UPDATE and back on; the commit's metrics then have no change rows.
- `skewed_clock_commit`: one append by a writer whose clock runs an hour behind (libfaketime), so its
  `_commit_timestamp` goes backwards.
- `compaction_by_rewrite`: a compaction job that rewrites the same rows with an overwrite instead of OPTIMIZE;
  downstream consumers get every row deleted and inserted again.
- `wrong_row_count_stats`: one append whose file statistics claim more rows than the file holds; engines that
  answer count(*) from statistics disagree with engines that scan.
Done to the table from outside the workload's operations (never shrunk: a replay cannot reproduce them):
- `drop_change_data`: a `_change_data` file deleted after its commit (an over-eager cleanup, a bucket lifecycle
  rule); replaying through that version must fail.
- `outside_writer`: another process (a backfill job, its own app id and user metadata) appends to the table.
- `delete_commit_file`: a commit JSON older than the newest checkpoint deleted (a log cleanup gone wrong).
- `delete_checkpoint`: the newest checkpoint deleted while `_last_checkpoint` still names it.
- `blocking_data_file`: after the workload, a data file of the newest version replaced by a FIFO: opening it
  for reading blocks forever (as a read from a hung mount does). Every read of that version must end in a
  timed-out read naming the engine and the version, never a hung run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from deltalake import DeltaTable

from assets.delta_cdf.model import rows_of
from assets.delta_cdf.ops import Op
from assets.delta_cdf.tablelog import checkpoints, commit_path, live_files, log_dir, read_log

OUTSIDE_THE_OPS = (
    "drop_change_data",
    "outside_writer",
    "delete_commit_file",
    "delete_checkpoint",
    "blocking_data_file",
)
OUTSIDE_APP = "regress-outside-backfill"
OUTSIDE_ROWS = 25
OUTSIDE_WRITER = """
import sys, pyarrow as pa
from deltalake import CommitProperties, Transaction, write_deltalake
uri, app, part, first = sys.argv[1], sys.argv[2], sys.argv[3] or None, int(sys.argv[4])
n = int(sys.argv[5])
data = pa.table({"id": pa.array(range(first, first + n), pa.int64()), "part": pa.array([part] * n, pa.string()),
                 "val": pa.array([7] * n, pa.int64())})
props = CommitProperties(custom_metadata={"userMetadata": "nightly backfill"}, app_transactions=[Transaction(app, 1)])
write_deltalake(uri, data, mode="append", schema_mode="merge", commit_properties=props)
"""


def drop_change_data(uri: str, version: int) -> str:
    """Delete the first `_change_data` file the commit at `version` wrote; returns its path in the table."""
    for line in commit_path(uri, version).read_text().splitlines():
        action = json.loads(line)
        if "cdc" in action:
            path = action["cdc"]["path"]
            (Path(uri) / path).unlink()
            return path
    raise RuntimeError(f"commit {version} wrote no _change_data file to drop")


def outside_writer(uri: str, parts: list[str | None]) -> str:
    """Another process appends rows under its own app id: an outside commit the model must account for."""
    first = 10**12
    subprocess.run(
        [sys.executable, "-c", OUTSIDE_WRITER, uri, OUTSIDE_APP, parts[0] or "", str(first), str(OUTSIDE_ROWS)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return f"process {OUTSIDE_APP} appended {OUTSIDE_ROWS} rows (ids from {first})"


def delete_commit_file(uri: str) -> str:
    """Delete a commit file covered by the newest checkpoint (the newest table still loads from it)."""
    found = checkpoints(uri)
    covered = [v for v in found if v >= 2 and v - 1 not in found]
    if not covered:
        raise RuntimeError("delete_commit_file needs a checkpoint after version 1: lower checkpoint_interval")
    version = covered[-1] - 1  # no checkpoint of its own: versions since the one before need this file
    commit_path(uri, version).unlink()
    return f"deleted _delta_log/{version:020d}.json (checkpoints at {found})"


def delete_checkpoint(uri: str) -> str:
    """Delete the newest checkpoint file; `_last_checkpoint` still names it."""
    found = checkpoints(uri)
    if not found:
        raise RuntimeError("delete_checkpoint needs a checkpoint: lower checkpoint_interval")
    removed = [p.name for p in log_dir(uri).glob(f"{found[-1]:020d}.checkpoint*.parquet")]
    for name in removed:
        (log_dir(uri) / name).unlink()
    return f"deleted {', '.join(removed)} (_last_checkpoint still names v{found[-1]})"


def rewrite_compaction(uri: str, with_note: bool) -> Op:
    """'Compaction' as an overwrite of the same rows: the rows do not change, the feed says they all did."""
    rows = tuple(rows_of(DeltaTable(uri).to_pyarrow_table().to_pylist()))
    return Op("rewrite_compaction", rows=rows, with_note=with_note)


def blocking_data_file(uri: str) -> str:
    """Replace a data file the newest version reads with a FIFO nobody writes to (its reads block on open)."""
    live = sorted(live_files(read_log(uri)))
    if not live:
        raise RuntimeError("blocking_data_file needs a table with a data file")
    path = Path(uri) / live[0]
    path.unlink()
    os.mkfifo(path)
    return f"replaced {live[0]} with a FIFO (reads of it block)"
