"""Tenant isolation, probed as the workers act: the non-owner role with one tenant set may neither read nor
write another tenant's rows, and no row landed under a tenant other than its job's."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import psycopg
from psycopg import sql

from assets.etl_pipeline import store
from assets.etl_pipeline.oracle import ISOLATION
from regression_pipelines.results import Invariant


def probe(
    connect: Callable[[], psycopg.Connection],
    names: store.Names,
    tenants: list[str],
    rows: list[tuple[str, str]],
    expected: Mapping[str, str],
) -> Invariant:
    """`rows`: (job id, tenant) of every loaded row read as the owner; `expected`: each job's true tenant."""
    leaks: list[str] = []
    wrong = [job for job, tenant in rows if expected.get(job) != tenant]
    table = sql.Identifier(names.jobs)
    with connect() as conn:
        conn.autocommit = False  # the tenant setting is transaction-local
        store.worker_session(conn, names)
        for tenant in tenants:
            other = next((t for t in tenants if t != tenant), None)
            store.set_tenant(conn, tenant)
            seen, foreign = conn.execute(
                sql.SQL("SELECT count(*), count(*) FILTER (WHERE tenant_id <> %s) FROM {}").format(table), (tenant,)
            ).fetchone() or (0, 0)
            own = sum(1 for _job, t in rows if t == tenant)
            if foreign or seen != own:
                leaks.append(f"{tenant} reads {foreign} rows of other tenants ({seen} visible, owns {own})")
            if other is not None:
                updated = conn.execute(
                    sql.SQL("UPDATE {} SET title = title WHERE tenant_id <> %s").format(table), (tenant,)
                ).rowcount
                if updated:
                    leaks.append(f"{tenant} updated {updated} rows of other tenants")
                try:
                    conn.execute(
                        sql.SQL("INSERT INTO {} (job_id, tenant_id, published_at) VALUES (%s, %s, 0)").format(table),
                        (f"probe-{tenant}", other),
                    )
                    leaks.append(f"{tenant} inserted a row for {other}")
                except psycopg.errors.InsufficientPrivilege:
                    pass  # "new row violates row-level security policy": what we want
            conn.rollback()  # the probe changes nothing
    passed = not leaks and not wrong
    detail = (
        f"{len(tenants)} tenants probed: none reads, updates or inserts another's rows; every row under its tenant"
        if passed
        else "; ".join(leaks[:4] + ([f"{len(wrong)} rows under a tenant not their job's"] if wrong else []))
    )
    return Invariant(ISOLATION, passed, detail, {"leaks": len(leaks), "rows_under_wrong_tenant": len(wrong)})
