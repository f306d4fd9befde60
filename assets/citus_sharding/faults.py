"""Real faults on the real cluster, each aimed at exactly one check, each with its undo.

They act on the run's own tables (and, for the gap, on their rows in pg_dist_shard, restored afterwards),
through the same connections a person would use: a worker's port for shard tables, the coordinator's
superuser for metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from assets.citus_sharding.workload import DISTRIBUTION
from regression_pipelines.kit.checkers.citus import NodeConnector, Placement, own_placements


@dataclass
class Injected:
    description: str
    undo: Callable[[], None]


def _nothing() -> None:
    """The fault lives in the run's own tables, which the run drops anyway."""


def _relation(shard: str) -> sql.Identifier:
    schema, _, name = shard.rpartition(".")
    return sql.Identifier(schema, name)


def _placement_of(conn: psycopg.Connection, table: str, key: int) -> Placement:
    shard = conn.execute("SELECT get_shard_id_for_distribution_column(%s, %s)", (table, key)).fetchone()[0]
    return next(p for p in own_placements(conn, table) if p.shard_id == shard)


def wrong_shard_row(conn: psycopg.Connection, connect_node: NodeConnector, schema: str) -> Injected:
    """A new account written straight into a shard whose range does not hold its hash."""
    table, key = f"{schema}.accounts", 10**12 + 7
    home = _placement_of(conn, table, key)
    place = next(p for p in own_placements(conn, table) if p.shard_id != home.shard_id)
    with connect_node(place.host, place.port) as node:
        node.execute(sql.SQL("INSERT INTO {} VALUES (%s, 1, 0, 'misplaced')").format(_relation(place.shard)), (key,))
    return Injected(f"account {key} inserted into {place.shard} on {place.host}:{place.port}", _nothing)


def leftover_prepared(conn: psycopg.Connection, connect_node: NodeConnector, schema: str) -> Injected:
    """A prepared transaction left behind on a worker (named so Citus's own recovery leaves it alone)."""
    host, port = conn.execute(
        "SELECT nodename, nodeport FROM pg_dist_node WHERE isactive ORDER BY groupid DESC LIMIT 1"
    ).fetchone()
    gid = f"regress_leftover_{schema}"
    with connect_node(host, port) as node:
        node.execute("BEGIN")
        node.execute("SELECT txid_current()")
        node.execute(sql.SQL("PREPARE TRANSACTION {}").format(sql.Literal(gid)))

    def undo() -> None:
        with connect_node(host, port) as node:
            found = node.execute("SELECT 1 FROM pg_prepared_xacts WHERE gid = %s", (gid,)).fetchone()
            if found:
                node.execute(sql.SQL("ROLLBACK PREPARED {}").format(sql.Literal(gid)))

    return Injected(f"prepared transaction {gid!r} left on {host}:{port}", undo)


def metadata_gap(conn: psycopg.Connection, superuser: Callable[[], psycopg.Connection], schema: str) -> Injected:
    """The top hash value of one shard range (in every co-located table, so colocation stays consistent)
    removed from pg_dist_shard: that value belongs to no shard. A range whose top value a row hashes to
    is skipped, so row placement stays right."""
    tables = {name: own_placements(conn, f"{schema}.{name}") for name in DISTRIBUTION}
    rows_at = sql.SQL(" + ").join(
        sql.SQL("(SELECT count(*) FROM {} WHERE worker_hash({}) = %(h)s)").format(
            sql.Identifier(schema, name), sql.Identifier(column)
        )
        for name, column in DISTRIBUTION.items()
    )
    accounts = tables["accounts"]
    query = sql.SQL("SELECT {}").format(rows_at)
    chosen = next((i for i, p in enumerate(accounts) if not conn.execute(query, {"h": p.high}).fetchone()[0]), 0)
    top = accounts[chosen].high
    shards = [places[chosen].shard_id for places in tables.values()]
    with superuser() as admin:
        admin.execute("UPDATE pg_dist_shard SET shardmaxvalue = %s WHERE shardid = ANY(%s)", (str(top - 1), shards))

    def undo() -> None:
        with superuser() as admin:
            admin.execute("UPDATE pg_dist_shard SET shardmaxvalue = %s WHERE shardid = ANY(%s)", (str(top), shards))

    return Injected(f"hash value {top} removed from shards {shards} in pg_dist_shard", undo)


def dropped_shard(conn: psycopg.Connection, connect_node: NodeConnector, schema: str) -> Injected:
    """One shard table of the co-located table dropped on its worker."""
    place = own_placements(conn, f"{schema}.orders")[0]
    with connect_node(place.host, place.port) as node:
        node.execute("SET citus.enable_manual_changes_to_shards = on")  # Citus refuses shard DDL otherwise
        node.execute(sql.SQL("DROP TABLE {}").format(_relation(place.shard)))
    return Injected(f"{place.shard} dropped on {place.host}:{place.port}", _nothing)


def lost_row(conn: psycopg.Connection, connect_node: NodeConnector, schema: str) -> Injected:
    """One account deleted straight from its shard: the coordinator never hears of it."""
    key = conn.execute(sql.SQL("SELECT min(id) FROM {}").format(sql.Identifier(schema, "accounts"))).fetchone()[0]
    place = _placement_of(conn, f"{schema}.accounts", key)
    with connect_node(place.host, place.port) as node:
        node.execute(sql.SQL("DELETE FROM {} WHERE id = %s").format(_relation(place.shard)), (key,))
    return Injected(f"account {key} deleted from {place.shard} on {place.host}:{place.port}", _nothing)
