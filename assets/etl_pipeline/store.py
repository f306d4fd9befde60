"""The PostgreSQL side: per-run tables with row-level security, a non-owner worker role, batch loads.

Tables and role are named per run and dropped afterwards. Workers `SET ROLE` to the non-owner role (an owner
bypasses RLS) and set the tenant in every transaction (`set_config(..., is_local => true)`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

TENANT_SETTING = "etl.tenant"
ROW_COLUMNS = ("issue_key", "title", "status", "priority", "story_points", "labels")


@dataclass(frozen=True)
class Names:
    """Every database object of one run."""

    jobs: str
    failed: str
    role: str

    @classmethod
    def for_run(cls, run: str) -> Names:
        return cls(jobs=f"etl_{run}_jobs", failed=f"etl_{run}_failed_jobs", role=f"etl_{run}_worker")


def create(conn: psycopg.Connection, names: Names, idempotent: bool = True, rls: bool = True) -> None:
    """Tables, RLS policies and the worker role. `idempotent=False` (a fault) drops the key on job_id."""
    login = conn.execute("SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    if not (login and login[0]):
        raise PermissionError(
            "the login role needs CREATEROLE to create the per-run non-owner worker role "
            "(an owner bypasses row-level security)"
        )
    jobs, failed, role = (sql.Identifier(n) for n in (names.jobs, names.failed, names.role))
    # A job id is the tenant's own: two tenants may use the same one, so a job is (tenant_id, job_id). Keyed on
    # job_id alone, ON CONFLICT DO NOTHING silently dropped the second tenant's job (issue 19).
    key = sql.SQL(", PRIMARY KEY (tenant_id, job_id)" if idempotent else "")
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (job_id text NOT NULL, tenant_id text NOT NULL, issue_key text, title text, "
            "status text, priority int, story_points int, labels jsonb, published_at double precision NOT NULL, "
            "loaded_at double precision NOT NULL DEFAULT extract(epoch FROM clock_timestamp()){})"
        ).format(jobs, key)
    )
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (job_id text NOT NULL, tenant_id text NOT NULL, stage text NOT NULL, "
            "error_details text NOT NULL, body text, failed_at timestamptz NOT NULL DEFAULT clock_timestamp(), "
            "PRIMARY KEY (tenant_id, job_id))"
        ).format(failed)
    )
    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(role))
    conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(role))
    for table in (jobs, failed):
        conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON {} TO {}").format(table, role))
        condition = sql.SQL("tenant_id = current_setting({}, true)").format(sql.Literal(TENANT_SETTING))
        conn.execute(
            sql.SQL("CREATE POLICY tenant_isolation ON {} USING ({}) WITH CHECK ({})").format(
                table, condition, condition
            )
        )
        if rls:
            conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(table))


def drop(conn: psycopg.Connection, names: Names) -> None:
    """Remove everything `create` made; each step on its own, so one failure does not keep the rest."""
    statements = [
        sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(names.jobs)),
        sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(names.failed)),
        sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(names.role)),
    ]
    for statement in statements:
        try:
            conn.execute(statement)
        except psycopg.Error:
            if not conn.autocommit:
                conn.rollback()


def leftovers(conn: psycopg.Connection, names: Names) -> list[str]:
    """Objects of this run still present (empty after a clean `drop`)."""
    tables = conn.execute(
        "SELECT tablename FROM pg_tables WHERE tablename = ANY(%s)", ([names.jobs, names.failed],)
    ).fetchall()
    roles = conn.execute("SELECT rolname FROM pg_roles WHERE rolname = %s", (names.role,)).fetchall()
    return [r[0] for r in tables + roles]


def worker_session(conn: psycopg.Connection, names: Names) -> None:
    """Make this connection act as the non-owner worker role for the rest of its life."""
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(names.role)))
    conn.commit()


def set_tenant(conn: psycopg.Connection, tenant: str) -> None:
    """Scope the current transaction to one tenant (the RLS policies read it)."""
    conn.execute("SELECT set_config(%s, %s, true)", (TENANT_SETTING, tenant))


def load_rows(
    conn: psycopg.Connection,
    names: Names,
    tenant: str,
    rows: Sequence[tuple[str, float, dict[str, Any]]],
    idempotent: bool = True,
) -> None:
    """Insert one tenant's (job_id, published_at, row) batch in the current transaction; upsert on job_id."""
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in ("job_id", "tenant_id", "published_at", *ROW_COLUMNS))
    values = sql.SQL(", ").join(sql.Placeholder() for _ in range(3 + len(ROW_COLUMNS)))
    statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(sql.Identifier(names.jobs), columns, values)
    if idempotent:
        statement += sql.SQL(" ON CONFLICT (tenant_id, job_id) DO NOTHING")
    set_tenant(conn, tenant)
    with conn.cursor() as cur:
        cur.executemany(statement, [_params(job_id, tenant, published, row) for job_id, published, row in rows])


def _params(job_id: str, tenant: str, published: float, row: dict[str, Any]) -> tuple[Any, ...]:
    labels = row.get("labels")
    values = [row.get(c) for c in ROW_COLUMNS]
    values[ROW_COLUMNS.index("labels")] = json.dumps(labels) if labels is not None else None
    return (job_id, tenant, published, *values)


def record_failure(
    conn: psycopg.Connection, names: Names, job_id: str, tenant: str, stage: str, error: str, body: bytes
) -> None:
    """One invalid job in `failed_jobs` (idempotent: a redelivered reject writes nothing new); commits."""
    set_tenant(conn, tenant)
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (job_id, tenant_id, stage, error_details, body) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (tenant_id, job_id) DO NOTHING"
        ).format(sql.Identifier(names.failed)),
        (job_id, tenant, stage, error, body[:512].decode("utf-8", "replace").replace("\x00", "")),
    )
    conn.commit()


def counts(conn: psycopg.Connection, names: Names) -> tuple[int, int]:
    """(distinct loaded jobs, failed jobs) as the owner sees them (RLS does not apply to the owner)."""
    distinct = sql.SQL("SELECT count(DISTINCT (tenant_id, job_id)) FROM {}")
    jobs = conn.execute(distinct.format(sql.Identifier(names.jobs))).fetchone()
    failed = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(names.failed))).fetchone()
    return int(jobs[0]) if jobs else 0, int(failed[0]) if failed else 0


def fetch_all(conn: psycopg.Connection, table: str, columns: Iterable[str]) -> list[tuple[Any, ...]]:
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in columns), sql.Identifier(table)
    )
    return conn.execute(query).fetchall()
