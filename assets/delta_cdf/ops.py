"""Operations of the workload as data: what each commit does to the rows (for the model) and how to commit it.

An `Op` is plain data (JSON round trip), so a failing run can be shrunk and written next to the run as a case
that replays on a fresh table (`python -m assets.delta_cdf.replay <case.json>`). `commit(uri, table, props)`
makes the commit with delta-rs; `change()` is its logical effect for the model.
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
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, write_deltalake

from assets.delta_cdf.model import Change, MergeClauses, Row
from regression_pipelines.errors import ResourceConfigError

TAG = "regress.op"
AMOUNT = pa.decimal128(38, 9)
TIMESTAMP = pa.timestamp("us", tz="UTC")
CLOCK_SKEW = "-1h"
MERGE_KINDS = ("merge", "merge_clauses", "merge_large", "merge_schema")
# Latency bucket of each op kind (the metric names predate the finer kinds).
BUCKET = {
    "create": "append",
    "append": "append",
    "schema_append": "schema",
    "update": "update",
    "delete": "delete",
    **dict.fromkeys(MERGE_KINDS, "merge"),
    "overwrite": "overwrite",
    "optimize": "optimize",
    "cdf_property": "property",
    "skewed_clock_append": "append",
    "wrong_stats_append": "append",
    "rewrite_compaction": "optimize",
}


@dataclass(frozen=True)
class Op:
    """One commit to make. `rows` are full rows (append, merge source, overwrite); `keys` + `delta` for
    update/delete; `part` the partition an overwrite replaces; `flag` is CDF on/off for `cdf_property`."""

    kind: str
    rows: tuple[Row, ...] = ()
    keys: tuple[int, ...] = ()
    delta: int = 0
    part: str | None = None
    clauses: MergeClauses = field(default_factory=MergeClauses)
    with_note: bool = False
    flag: bool = False
    settings: tuple[tuple[str, str], ...] = ()  # create: table properties

    def __post_init__(self) -> None:
        if self.kind not in BUCKET:
            raise ValueError(f"unknown op kind {self.kind!r}; use one of {', '.join(BUCKET)}")

    @property
    def bucket(self) -> str:
        return BUCKET[self.kind]

    def change(self) -> Change:
        k = self.kind
        if k in ("create", "append", "skewed_clock_append", "wrong_stats_append"):
            return Change("append", rows=self.rows, label=k)
        if k == "schema_append":
            return Change("schema_append", rows=self.rows)
        if k in ("update", "delete"):
            return Change(k, keys=self.keys, delta=self.delta)
        if k in MERGE_KINDS:
            return Change("merge", rows=self.rows, clauses=self.clauses, label=k)
        if k == "overwrite":
            return Change("overwrite_partition", rows=self.rows, part=self.part)
        labels = {"optimize": "OPTIMIZE", "rewrite_compaction": "compaction by rewrite"}
        return Change("neutral", label=labels.get(k, f"CDF {'on' if self.flag else 'off'}"))

    def commit(self, uri: str, table: DeltaTable | None, props: CommitProperties) -> Any:
        return COMMITTERS[self.kind](self, uri, table, props)

    # -- JSON ---------------------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = [_row_json(r) for r in self.rows]
        data["settings"] = dict(self.settings)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Op:
        clauses = data.get("clauses") or {}
        return cls(
            kind=data["kind"],
            rows=tuple(_row_from_json(r) for r in data.get("rows", ())),
            keys=tuple(data.get("keys", ())),
            delta=int(data.get("delta", 0)),
            part=data.get("part"),
            clauses=MergeClauses(
                tuple(clauses.get("ops", ())), clauses.get("by_source", "none"), clauses.get("by_source_part")
            ),
            with_note=bool(data.get("with_note")),
            flag=bool(data.get("flag")),
            settings=tuple(sorted((data.get("settings") or {}).items())),
        )

    def without_rows(self, rows: tuple[Row, ...]) -> Op:
        return replace(self, rows=rows)


def _row_json(row: Row) -> list[Any]:
    return [str(v) if isinstance(v, Decimal) else v for v in row]


def _row_from_json(values: list[Any]) -> Row:
    key, part, val, big, amount, ts, note = values
    return (key, part, val, big, None if amount is None else Decimal(amount), ts, note)


def arrow_rows(rows: tuple[Row, ...] | list[Row], with_note: bool, ops: tuple[str, ...] = ()) -> pa.Table:
    columns = {
        "id": pa.array([r[0] for r in rows], pa.int64()),
        "part": pa.array([r[1] for r in rows], pa.string()),
        "val": pa.array([r[2] for r in rows], pa.int64()),
        "big": pa.array([r[3] for r in rows], pa.int64()),
        "amount": pa.array([r[4] for r in rows], AMOUNT),
        "ts": pa.array([r[5] for r in rows], TIMESTAMP),
    }
    if with_note:
        columns["note"] = pa.array([r[6] for r in rows], pa.string())
    if ops:
        columns["op"] = pa.array(list(ops), pa.string())
    return pa.table(columns)


def sql_text(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def part_predicate(part: str | None, alias: str = "") -> str:
    column = f"{alias}.part" if alias else "part"
    return f"{column} IS NULL" if part is None else f"{column} = {sql_text(part)}"


def in_list(keys: tuple[int, ...]) -> str:
    return "id IN (" + ", ".join(str(k) for k in keys) + ")"


# --- how each kind is committed with delta-rs ------------------------------------------------------------------


def _create(op: Op, uri: str, _: DeltaTable | None, props: CommitProperties) -> None:
    data = arrow_rows(op.rows, with_note=False)
    write_deltalake(uri, data, partition_by=["part"], configuration=dict(op.settings), commit_properties=props)


def _append(op: Op, uri: str, dt: DeltaTable | None, props: CommitProperties) -> None:
    schema_mode = "merge" if op.kind == "schema_append" else None
    write_deltalake(
        dt, arrow_rows(op.rows, op.with_note), mode="append", schema_mode=schema_mode, commit_properties=props
    )


def _update(op: Op, uri: str, dt: DeltaTable | None, props: CommitProperties) -> dict:
    return dt.update(updates={"val": f"val + {op.delta}"}, predicate=in_list(op.keys), commit_properties=props)


def _delete(op: Op, uri: str, dt: DeltaTable | None, props: CommitProperties) -> dict:
    return dt.delete(predicate=in_list(op.keys), commit_properties=props)


def _merge(op: Op, uri: str, dt: DeltaTable | None, props: CommitProperties) -> dict:
    """Every MERGE shape: a plain upsert, several clauses, a large matched set, schema evolution."""
    clauses = op.clauses
    data = arrow_rows(op.rows, op.with_note, ops=clauses.ops)
    evolve = {"merge_schema": True} if op.kind == "merge_schema" else {}  # deltalake < 0.25 lacks the argument
    merger = dt.merge(data, "t.id = s.id", source_alias="s", target_alias="t", commit_properties=props, **evolve)
    columns = [c for c in data.column_names if c != "op"]
    sets = {c: f"s.{c}" for c in columns if c not in ("id", "part")}
    if not clauses.ops:
        merger = merger.when_matched_update(updates=sets).when_not_matched_insert(
            updates={c: f"s.{c}" for c in columns}
        )
    else:
        merger = (
            merger.when_matched_update(updates=sets, predicate="s.op = 'U'")
            .when_matched_delete(predicate="s.op = 'D'")
            .when_not_matched_insert(updates={c: f"s.{c}" for c in columns}, predicate="s.op = 'U'")
        )
    predicate = part_predicate(clauses.by_source_part, "t")
    if clauses.by_source == "delete":
        merger = merger.when_not_matched_by_source_delete(predicate=predicate)
    elif clauses.by_source == "update":
        merger = merger.when_not_matched_by_source_update(updates={"val": "t.val + 1"}, predicate=predicate)
    return merger.execute()


def _overwrite(op: Op, uri: str, dt: DeltaTable | None, props: CommitProperties) -> None:
    write_deltalake(
        dt,
        arrow_rows(op.rows, op.with_note),
        mode="overwrite",
        predicate=part_predicate(op.part),
        commit_properties=props,
    )


def _optimize(op: Op, uri: str, dt: DeltaTable | None, props: CommitProperties) -> dict:
    return dt.optimize.compact(commit_properties=props)


def _cdf_property(op: Op, uri: str, dt: DeltaTable | None, props: CommitProperties) -> None:
    dt.alter.set_table_properties({"delta.enableChangeDataFeed": str(op.flag).lower()}, commit_properties=props)


# --- faults that are commits of their own (see faults.py for why each is real) -----------------------------------

SKEWED_WRITER = """
import sys, pyarrow.parquet as pq
from deltalake import CommitProperties, write_deltalake
uri, data, key, tag = sys.argv[1:5]
write_deltalake(uri, pq.read_table(data), mode="append", commit_properties=CommitProperties(custom_metadata={key: tag}))
"""


def _skewed_clock_append(op: Op, uri: str, dt: DeltaTable | None, props: CommitProperties) -> None:
    """An append made by a separate writer process whose clock is an hour behind (libfaketime)."""
    faketime = shutil.which("faketime")
    if faketime is None:
        raise ResourceConfigError(
            "delta_cdf", "fault", "skewed_clock_commit needs the faketime binary", "apt-get install faketime"
        )
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "rows.parquet")
        pq.write_table(arrow_rows(op.rows, op.with_note), path)
        tag = props.custom_metadata[TAG]
        subprocess.run(
            [faketime, "-f", CLOCK_SKEW, sys.executable, "-c", SKEWED_WRITER, uri, path, TAG, tag],
            check=True,
            capture_output=True,
            timeout=60,
        )


def _wrong_stats_append(op: Op, uri: str, dt: DeltaTable | None, props: CommitProperties, extra: int = 7) -> None:
    """An append whose data file is right but whose row-count statistic claims `extra` more rows.

    Written as a writer does it: one Parquet file in the partition folder, then the next log entry created only
    if absent (put-if-absent, as the protocol requires). The rows must share a partition (one file).
    """
    parts = {r[1] for r in op.rows}
    if len(parts) != 1:
        raise ValueError(f"wrong_stats_append writes one file: rows must share a partition, got {sorted(parts)}")
    (part,) = parts
    data = arrow_rows(op.rows, op.with_note)
    relative = f"part={part}/part-00000-{uuid.uuid4()}-c000.snappy.parquet"
    pq.write_table(data.drop_columns(["part"]), os.path.join(uri, relative), compression="snappy")
    now = int(time.time() * 1000)
    commit_info = {
        "timestamp": now,
        "operation": "WRITE",
        "operationParameters": {"mode": "Append"},
        "operationMetrics": {"num_added_files": 1, "num_added_rows": data.num_rows},
        "engineInfo": "regress-wrong-stats-writer",
        **props.custom_metadata,
    }
    add = {
        "path": relative,
        "partitionValues": {"part": part},
        "size": os.path.getsize(os.path.join(uri, relative)),
        "modificationTime": now,
        "dataChange": True,
        "stats": json.dumps({"numRecords": data.num_rows + extra}),
    }
    version = dt.version() + 1
    with open(Path(uri) / "_delta_log" / f"{version:020d}.json", "x") as entry:
        entry.write(json.dumps({"commitInfo": commit_info}) + "\n" + json.dumps({"add": add}) + "\n")


def _rewrite_compaction(op: Op, uri: str, dt: DeltaTable | None, props: CommitProperties) -> None:
    """'Compaction' as an overwrite of the same rows: the rows do not change, the feed says they all did."""
    write_deltalake(dt, arrow_rows(op.rows, op.with_note), mode="overwrite", commit_properties=props)


COMMITTERS = {
    "create": _create,
    "append": _append,
    "schema_append": _append,
    "update": _update,
    "delete": _delete,
    **dict.fromkeys(MERGE_KINDS, _merge),
    "overwrite": _overwrite,
    "optimize": _optimize,
    "cdf_property": _cdf_property,
    "skewed_clock_append": _skewed_clock_append,
    "wrong_stats_append": _wrong_stats_append,
    "rewrite_compaction": _rewrite_compaction,
}
