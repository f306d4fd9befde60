"""delta-rs against the floor a Delta writer cannot beat: the same rows written and read as plain Parquet.

Run: .venv/bin/python -m benchmarks.delta_cdf.parquet_floor [--rounds 3] [--rows 200000] [--batches 20]
Each round appends `rows` in `batches` (hive-partitioned by `part`, as the area's table) with delta-rs
(CDF on) and with pyarrow's `write_to_dataset`, then reads the whole table back: delta-rs
(`to_pyarrow_table`, and DataFusion SQL through QueryBuilder, the area's delta-rs reader) against pyarrow
(`dataset(...).to_table()`). Rounds alternate which goes first; the figures are medians of the rounds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from deltalake import DeltaTable, QueryBuilder, write_deltalake

from assets.delta_cdf.model import partition_of
from assets.delta_cdf.workload import arrow_rows


def batches(rows: int, count: int, seed: int) -> list[pa.Table]:
    rng = random.Random(seed)
    size = rows // count
    return [
        arrow_rows(
            [
                (k, partition_of(k, 3), rng.randint(0, 10_000), rng.choice([None, "a", "b"]))
                for k in range(b * size, (b + 1) * size)
            ],
            with_note=True,
        )
        for b in range(count)
    ]


def delta_round(folder: Path, data: list[pa.Table]) -> dict[str, float]:
    uri = str(folder / "delta")
    config = {"delta.enableChangeDataFeed": "true"}
    started = time.perf_counter()
    for batch in data:
        write_deltalake(uri, batch, mode="append", partition_by=["part"], configuration=config)
    write_s = time.perf_counter() - started
    started = time.perf_counter()
    rows = DeltaTable(uri).to_pyarrow_table().num_rows
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    sql_rows = pa.table(QueryBuilder().register("t", DeltaTable(uri)).execute("SELECT * FROM t")).num_rows
    sql_s = time.perf_counter() - started
    assert rows == sql_rows == sum(b.num_rows for b in data)
    return {"write": rows / write_s, "read": rows / read_s, "read_sql": rows / sql_s}


def parquet_round(folder: Path, data: list[pa.Table]) -> dict[str, float]:
    root = str(folder / "parquet")
    started = time.perf_counter()
    for batch in data:
        pq.write_to_dataset(batch, root, partition_cols=["part"])
    write_s = time.perf_counter() - started
    started = time.perf_counter()
    rows = ds.dataset(root, format="parquet", partitioning="hive").to_table().num_rows
    read_s = time.perf_counter() - started
    assert rows == sum(b.num_rows for b in data)
    return {"write": rows / write_s, "read": rows / read_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    data = batches(args.rows, args.batches, seed=7)
    delta, plain = [], []
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="delta_floor_") as folder:
            if round_ % 2:
                plain.append(parquet_round(Path(folder), data))
                delta.append(delta_round(Path(folder), data))
            else:
                delta.append(delta_round(Path(folder), data))
                plain.append(parquet_round(Path(folder), data))

    def med(rounds: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    print(f"{args.rounds} rounds, {args.rows} rows in {args.batches} appends, medians (rows/s)")
    print(f"{'':<28} {'delta-rs':>12} {'parquet':>12} {'ratio':>8}")
    for label, d_key, p_key in (
        ("append (write)", "write", "write"),
        ("snapshot read (pyarrow)", "read", "read"),
        ("snapshot read (DataFusion)", "read_sql", "read"),
    ):
        d, p = med(delta, d_key), med(plain, p_key)
        print(f"{label:<28} {d:>12.4g} {p:>12.4g} {d / p:>8.2f}")


if __name__ == "__main__":
    main()
