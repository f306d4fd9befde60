"""Real faults on the real table, each the kind of thing that breaks a change feed in the field.

- `drop_change_data`: a `_change_data` file deleted after its commit (an over-eager cleanup or a lifecycle
  rule on the bucket); replaying through that version must fail.
- `cdf_off_commit`: CDF switched off for one UPDATE and back on; the commit's metrics then have no change rows.
- `skewed_clock_commit`: one append by a writer whose clock runs an hour behind (libfaketime), so its
  `_commit_timestamp` goes backwards.
- `compaction_by_rewrite`: a compaction job that rewrites the same rows with an overwrite instead of OPTIMIZE;
  downstream consumers get every row deleted and inserted again.
- `wrong_row_count_stats`: one append by a writer whose file statistics claim more rows than the file holds;
  engines that answer count(*) from statistics disagree with engines that scan.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, write_deltalake

from assets.delta_cdf.model import Change, Row
from assets.delta_cdf.workload import TAG, Step, arrow_rows
from regression_pipelines.errors import ResourceConfigError

CLOCK_SKEW = "-1h"
SKEWED_WRITER = """
import sys, pyarrow.parquet as pq
from deltalake import CommitProperties, write_deltalake
uri, data, key, tag = sys.argv[1:5]
props = CommitProperties(custom_metadata={key: tag})
write_deltalake(uri, pq.read_table(data), mode="append", commit_properties=props)
"""


def log_file(uri: str, version: int) -> Path:
    return Path(uri) / "_delta_log" / f"{version:020d}.json"


def drop_change_data(uri: str, version: int) -> str:
    """Delete the first `_change_data` file the commit at `version` wrote; returns its path in the table."""
    for line in log_file(uri, version).read_text().splitlines():
        action = json.loads(line)
        if "cdc" in action:
            path = action["cdc"]["path"]
            (Path(uri) / path).unlink()
            return path
    raise RuntimeError(f"commit {version} wrote no _change_data file to drop")


def skewed_clock_append(uri: str, rows: tuple[Row, ...], with_note: bool) -> Step:
    """An append made by a separate writer process whose clock is an hour behind."""
    faketime = shutil.which("faketime")
    if faketime is None:
        raise ResourceConfigError(
            "delta_cdf", "fault", "skewed_clock_commit needs the faketime binary", "apt-get install faketime"
        )
    data = arrow_rows(rows, with_note)

    def commit(dt: DeltaTable, props: CommitProperties) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "rows.parquet")
            pq.write_table(data, path)
            tag = props.custom_metadata[TAG]
            subprocess.run(
                [faketime, "-f", CLOCK_SKEW, sys.executable, "-c", SKEWED_WRITER, uri, path, TAG, tag],
                check=True,
                capture_output=True,
                timeout=60,
            )

    return Step("append", Change("append", rows=rows, label="skewed clock"), commit)


def rewrite_compaction(current: dict[int, Row], with_note: bool) -> Step:
    """'Compaction' as an overwrite of the same rows: the table's rows do not change, the feed says they all did."""
    data = arrow_rows(sorted(current.values()), with_note)

    def commit(dt: DeltaTable, props: CommitProperties) -> None:
        write_deltalake(dt, data, mode="overwrite", commit_properties=props)

    return Step("optimize", Change("neutral", label="compaction by rewrite"), commit)


def wrong_stats_append(uri: str, rows: tuple[Row, ...], with_note: bool, extra_rows: int = 7) -> Step:
    """An append committed by a writer that writes the data file right but its row count statistic wrong.

    The commit is written as a writer does it: one Parquet file in the partition folder, then the next log
    entry created only if absent (so a concurrent commit is never overwritten). The rows must share a
    partition (one file).
    """
    parts = {r[1] for r in rows}
    if len(parts) != 1:
        raise ValueError(f"wrong_stats_append writes one file: rows must share a partition, got {sorted(parts)}")
    (part,) = parts
    data = arrow_rows(rows, with_note)

    def commit(dt: DeltaTable, props: CommitProperties) -> None:
        relative = f"part={part}/part-00000-{uuid.uuid4()}-c000.snappy.parquet"
        pq.write_table(data.drop_columns(["part"]), os.path.join(uri, relative), compression="snappy")
        now = int(time.time() * 1000)
        stats = {"numRecords": data.num_rows + extra_rows}
        actions = [
            {
                "commitInfo": {
                    "timestamp": now,
                    "operation": "WRITE",
                    "operationParameters": {"mode": "Append"},
                    "operationMetrics": {"num_added_files": 1, "num_added_rows": data.num_rows},
                    "engineInfo": "regress-wrong-stats-writer",
                    **props.custom_metadata,
                }
            },
            {
                "add": {
                    "path": relative,
                    "partitionValues": {"part": part},
                    "size": os.path.getsize(os.path.join(uri, relative)),
                    "modificationTime": now,
                    "dataChange": True,
                    "stats": json.dumps(stats),
                }
            },
        ]
        with open(log_file(uri, dt.version() + 1), "x") as entry:  # put-if-absent, as the protocol requires
            entry.write("\n".join(json.dumps(a) for a in actions) + "\n")

    return Step("append", Change("append", rows=rows, label="wrong row count statistics"), commit)
