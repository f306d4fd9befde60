"""The pipeline's files: the seeded source batch it publishes from, and the loaded rows kept after the run.

The generator's jobs are written to Parquet and read back, so the file really is the pipeline's input (the
`source_batch` stage); the loaded table is exported before the run drops it (the `loaded_jobs` stage). DuckDB
reads each file back to describe it, so the stages' figures are the files' own, not what memory believed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from assets.etl_pipeline.generator import Job
from assets.etl_pipeline.quality import COLUMNS
from regression_pipelines.results import StageValue

SOURCE_SCHEMA = pa.schema([("job_id", pa.string()), ("tenant", pa.string()), ("body", pa.binary()),
                           ("valid", pa.bool_()), ("shape", pa.string()), ("value_classes", pa.string())])  # fmt: skip
LOADED_COLUMNS = (*COLUMNS, "published_at", "loaded_at")  # what the run reads back from the loaded table
LOADED_SCHEMA = pa.schema(
    [(c, pa.int64() if c in ("priority", "story_points") else pa.string()) for c in COLUMNS]
    + [("published_at", pa.float64()), ("loaded_at", pa.float64())]
)
ROW_COUNT = "dagster/row_count"  # the key Dagster's UI shows as an asset's row count


def write_source(jobs: Sequence[Job], path: Path) -> None:
    """The batch in publish order, bodies as raw bytes (malformed and poison ones included)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {
        "job_id": [j.job_id for j in jobs],
        "tenant": [j.tenant for j in jobs],
        "body": [j.body for j in jobs],
        "valid": [j.valid for j in jobs],
        "shape": [j.shape for j in jobs],
        "value_classes": [json.dumps(j.values) if j.values else None for j in jobs],
    }
    pq.write_table(pa.table(columns, schema=SOURCE_SCHEMA), path)


def read_source(path: Path) -> list[Job]:
    """The jobs the producers publish: exactly what the file holds, in its order."""
    table = pq.read_table(path)
    rows = table.to_pylist()
    return [
        Job(
            r["job_id"],
            r["tenant"],
            r["body"],
            r["valid"],
            r.get("shape") or "valid_job",
            tuple(tuple(v) for v in json.loads(r.get("value_classes") or "[]")),
        )  # fmt: skip
        for r in rows
    ]


def export_loaded(rows: Sequence[tuple[Any, ...]], path: Path) -> None:
    """The loaded table's rows (LOADED_COLUMNS, in that order), kept after the run drops the table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {name: [row[i] for row in rows] for i, name in enumerate(LOADED_COLUMNS)}
    pq.write_table(pa.table(columns, schema=LOADED_SCHEMA), path)


def source_stage(path: Path, seed: int) -> dict[str, StageValue]:
    """What the source batch holds: rows per tenant and malformed bodies, counted by DuckDB from the file."""
    with duckdb.connect() as conn:
        per_tenant = _per_tenant(conn, path, "tenant")
        malformed = conn.execute("SELECT count(*) FROM read_parquet(?) WHERE NOT valid", [str(path)]).fetchone()
    return {
        "path": path,
        ROW_COUNT: sum(per_tenant.values()),
        "rows_per_tenant": per_tenant,
        "malformed": int(malformed[0]) if malformed else 0,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "seed": seed,
    }


def loaded_stage(path: Path, table: str) -> dict[str, StageValue]:
    """What the loaded table held at the end of the run (the table itself is dropped with the run)."""
    with duckdb.connect() as conn:
        per_tenant = _per_tenant(conn, path, "tenant_id")
    return {"table": table, "path": path, ROW_COUNT: sum(per_tenant.values()), "rows_per_tenant": per_tenant}


def _per_tenant(conn: duckdb.DuckDBPyConnection, path: Path, column: str) -> dict[str, int]:
    query = f"SELECT {column}, count(*) FROM read_parquet(?) GROUP BY {column} ORDER BY {column}"  # noqa: S608
    return {str(tenant): int(count) for tenant, count in conn.execute(query, [str(path)]).fetchall()}
