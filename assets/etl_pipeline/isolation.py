"""Tenant isolation, probed as the workers act and judged by reading back as the owner.

For each tenant, as the non-owner worker role with that tenant set, the probe reads the table, updates every row
it can reach of other tenants and inserts a row for another tenant. It then switches back to the owner (who
bypasses row-level security) in the same transaction and reads what really happened: did the inserted row land,
under which tenant, and which tenants' rows carry the update's marker. A refused statement and a statement that
silently did nothing (a rule `DO INSTEAD NOTHING`, a trigger returning NULL) are both "no leak"; a row that
landed for another tenant is a leak whatever the statement said. Everything is rolled back.

Why not "no error means a leak": a rule or trigger that skips the insert raises nothing, and the old probe then
reported a leak that did not happen (issue 19).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping

import psycopg
from psycopg import sql

from assets.etl_pipeline import store
from assets.etl_pipeline.oracle import ISOLATION
from regression_pipelines.results import Invariant


def _expected_keys(expected: Mapping[str, str] | Collection[tuple[str, str]]) -> set[tuple[str, str]]:
    if isinstance(expected, Mapping):
        return {(tenant, job) for job, tenant in expected.items()}
    return set(expected)


def probe(
    connect: Callable[[], psycopg.Connection],
    names: store.Names,
    tenants: list[str],
    rows: list[tuple[str, str]],
    expected: Mapping[str, str] | Collection[tuple[str, str]],
    application: str = "",
) -> Invariant:
    """`rows`: (job id, tenant) of every loaded row read as the owner; `expected`: the (tenant, job id) of every
    job published (or a job id -> tenant mapping); `application`: the run's application_name prefix, so the run's
    own observer does not take the probe's writes for an outside session's."""
    keys = _expected_keys(expected)
    wrong = [job for job, tenant in rows if (tenant, job) not in keys]
    own = {tenant: sum(1 for _job, t in rows if t == tenant) for tenant in tenants}
    leaks: list[str] = []
    hidden: list[str] = []
    silent: list[str] = []
    table = sql.Identifier(names.jobs)
    with connect() as conn:
        conn.autocommit = False  # the tenant setting and the probe's writes are transaction-local
        if application:
            conn.execute("SELECT set_config('application_name', %s, false)", (f"{application}-isolation-probe",))
        store.worker_session(conn, names)
        for tenant in tenants:
            other = next((t for t in tenants if t != tenant), None)
            try:
                _probe_one(conn, table, names, tenant, other, own.get(tenant, 0), leaks, hidden, silent)
            finally:
                conn.rollback()  # the probe changes nothing (and the role is the worker's again)
    passed = not leaks and not wrong
    if passed:
        detail = (
            f"{len(tenants)} tenants probed, read back as the owner: none reads, updates or inserts another's rows; "
            "every row under its tenant"
        )
        if silent:
            detail += f" ({'; '.join(silent[:2])})"
    else:
        detail = "; ".join(leaks[:4] + ([f"{len(wrong)} rows under a tenant not their job's"] if wrong else []))
    if hidden:
        detail += f"; not a leak, but: {'; '.join(hidden[:2])}"
    facts: dict[str, float | int | str | bool] = {
        "leaks": len(leaks),
        "rows_under_wrong_tenant": len(wrong),
        "own_rows_hidden": len(hidden),
        "writes_silently_skipped": len(silent),
    }
    return Invariant(ISOLATION, passed, detail, facts)


def _probe_one(
    conn: psycopg.Connection,
    table: sql.Identifier,
    names: store.Names,
    tenant: str,
    other: str | None,
    own: int,
    leaks: list[str],
    hidden: list[str],
    silent: list[str],
) -> None:
    store.set_tenant(conn, tenant)
    seen, foreign = conn.execute(
        sql.SQL("SELECT count(*), count(*) FILTER (WHERE tenant_id <> %s) FROM {}").format(table), (tenant,)
    ).fetchone() or (0, 0)
    if foreign:
        leaks.append(f"{tenant!r} reads {foreign} rows of other tenants ({seen} visible, owns {own})")
    if seen - foreign < own:
        hidden.append(f"{tenant!r} sees {seen - foreign} of its {own} rows")
    if other is None:
        return
    marker = f"isolation-probe-{uuid.uuid4().hex[:8]}"
    probe_id = f"probe-{marker}"
    claimed = 0
    with conn.transaction():  # a savepoint: a refused write leaves the probe's transaction usable
        claimed = conn.execute(
            sql.SQL("UPDATE {} SET title = %s WHERE tenant_id <> %s").format(table), (marker, tenant)
        ).rowcount
    refused = False
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL("INSERT INTO {} (job_id, tenant_id, published_at) VALUES (%s, %s, 0)").format(table),
                (probe_id, other),
            )
    except psycopg.errors.InsufficientPrivilege:
        refused = True  # "new row violates row-level security policy"
    # Read back as the owner, in the same transaction (it sees the probe's own uncommitted writes).
    conn.execute("RESET ROLE")
    updated = conn.execute(
        sql.SQL("SELECT tenant_id, count(*) FROM {} WHERE title = %s GROUP BY tenant_id").format(table), (marker,)
    ).fetchall()
    landed = conn.execute(sql.SQL("SELECT tenant_id FROM {} WHERE job_id = %s").format(table), (probe_id,)).fetchall()
    foreign_updates = sum(int(n) for t, n in updated if t != tenant)
    if foreign_updates:
        leaks.append(f"{tenant!r} updated {foreign_updates} rows of other tenants (read back as the owner)")
    for (landed_under,) in landed:
        if landed_under != tenant:
            leaks.append(f"{tenant!r} inserted a row for {landed_under!r} (it landed: read back as the owner)")
    if not refused and not landed:
        silent.append(f"{tenant!r}'s insert for {other!r} raised no error and landed nowhere (a rule or trigger)")
    if claimed and not foreign_updates:
        silent.append(f"{tenant!r}'s update claimed {claimed} rows, none of another tenant changed")
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(names.role)))
