"""The lab's login role and database on a PostgreSQL server (the standalone one, the Patroni leader, and
any later PostgreSQL-based service), so resources connect with a password as on a real system."""

from __future__ import annotations

from regression_pipelines.lab.settings import LabSettings


def ensure_regress_role(host: str, port: int, password_of_admin: str | None, settings: LabSettings) -> None:
    """Create (or re-password) the login role and its database as `postgres`; idempotent.

    `host` may be a socket directory (trust auth, then `password_of_admin` is None) or an address.
    """
    import psycopg
    from psycopg import sql

    kwargs: dict[str, object] = {"host": host, "port": port, "user": "postgres", "dbname": "postgres"}
    if password_of_admin is not None:
        kwargs["password"] = password_of_admin
    with psycopg.connect(autocommit=True, connect_timeout=3, **kwargs) as conn:  # type: ignore[arg-type]
        role = sql.Identifier(settings.postgres_user)
        pw = sql.Literal(settings.postgres_password)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (settings.postgres_user,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        # CREATEROLE: areas create per-run roles (e.g. a non-owner role, so row-level security applies to it)
        conn.execute(sql.SQL(verb + " ROLE {} LOGIN CREATEROLE PASSWORD {}").format(role, pw))
        has_db = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (settings.postgres_db,)).fetchone()
        if not has_db:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(settings.postgres_db), role))
