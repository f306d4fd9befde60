"""Black-box checks of a Citus cluster from its coordinator (and, for row placement, its nodes), shared by the
Citus areas.

Each returns one Invariant; a query that fails is reported in its check, not raised. Metadata checks cover
every distributed table of the database; the row check reads the run's own tables only (bounded sample).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from regression_pipelines.errors import ResourceConfigError
from regression_pipelines.kit.checkers import citus_layout as layout
from regression_pipelines.kit.checkers.citus_layout import ShardRange
from regression_pipelines.measure import describe_error
from regression_pipelines.results import Invariant

NODES_HEALTHY = "nodes_healthy"
PLACEMENTS_ACTIVE = "placements_active"
HASH_RANGES_COVER_INT32 = "hash_ranges_cover_int32"
ROWS_IN_RIGHT_SHARD = "rows_in_right_shard"
COLOCATION_CONSISTENT = "colocation_consistent"
NO_ORPHANS = "no_orphans"  # prepared transactions and cleanup records left on the cluster
ACTIVE_PLACEMENT = 1  # pg_dist_placement.shardstate of a usable placement

NodeConnector = Callable[[str, int], psycopg.Connection]


@dataclass(frozen=True)
class Placement:
    table: str
    shard_id: int
    low: int
    high: int
    shard: str  # qualified shard table name on its node
    host: str
    port: int


def _fail(name: str, what: str, exc: Exception) -> Invariant:
    return Invariant(name, False, f"could not {what}: {describe_error(exc)}")


def _listed(problems: list[str], limit: int = 5) -> str:
    more = f" (+{len(problems) - limit} more)" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more


def node_health(conn: psycopg.Connection) -> Invariant:
    """Every node active and every node reaches every other (citus_check_cluster_node_health)."""
    try:
        inactive = conn.execute(
            "SELECT nodename || ':' || nodeport FROM pg_dist_node WHERE NOT isactive AND noderole = 'primary'"
        ).fetchall()
        pairs = conn.execute(
            "SELECT from_nodename, from_nodeport, to_nodename, to_nodeport, result "
            "FROM citus_check_cluster_node_health()"
        ).fetchall()
    except psycopg.Error as exc:
        return _fail(NODES_HEALTHY, "check node health", exc)
    broken = [f"{a}:{b} -> {c}:{d}" for a, b, c, d, ok in pairs if not ok]
    problems = [f"node {n} inactive" for (n,) in inactive] + [f"{p} unreachable" for p in broken]
    facts = {"node_pairs": len(pairs), "failing_pairs": len(broken), "inactive_nodes": len(inactive)}
    if problems:
        return Invariant(NODES_HEALTHY, False, _listed(problems), facts)
    return Invariant(NODES_HEALTHY, True, f"{len(pairs)} node-to-node checks passed", facts)


def placements_active(conn: psycopg.Connection, own_tables: list[str]) -> Invariant:
    """Every shard has a placement, every placement is active, and the run's shard tables exist on their nodes."""
    try:
        inactive = conn.execute(
            "SELECT s.logicalrelid::text, p.shardid, p.shardstate FROM pg_dist_placement p "
            "JOIN pg_dist_shard s USING (shardid) WHERE p.shardstate <> %s",
            (ACTIVE_PLACEMENT,),
        ).fetchall()
        orphan = conn.execute(
            "SELECT s.logicalrelid::text, s.shardid FROM pg_dist_shard s "
            "WHERE NOT EXISTS (SELECT 1 FROM pg_dist_placement p WHERE p.shardid = s.shardid)"
        ).fetchall()
        total = conn.execute("SELECT count(*) FROM pg_dist_placement").fetchone()[0]
        missing = []
        for table in own_tables:
            missing += conn.execute(
                "SELECT nodename, nodeport, shardid, result FROM run_command_on_placements(%s, "
                "'SELECT 1 FROM %%s LIMIT 0') WHERE NOT success",
                (table,),
            ).fetchall()
    except psycopg.Error as exc:
        return _fail(PLACEMENTS_ACTIVE, "read placements", exc)
    problems = [f"{t} shard {s} placement state {st}" for t, s, st in inactive]
    problems += [f"{t} shard {s} has no placement" for t, s in orphan]
    problems += [f"shard {s} on {h}:{p} unreadable ({r.strip()[:80]})" for h, p, s, r in missing]
    facts = {"placements": total, "bad_placements": len(problems)}
    if problems:
        return Invariant(PLACEMENTS_ACTIVE, False, _listed(problems), facts)
    return Invariant(PLACEMENTS_ACTIVE, True, f"{total} placements active; run's shard tables all readable", facts)


def hash_ranges(conn: psycopg.Connection) -> Invariant:
    """Every hash-distributed table's shard ranges tile the int32 range exactly."""
    try:
        rows = conn.execute(
            "SELECT s.logicalrelid::text, s.shardid, s.shardminvalue::int, s.shardmaxvalue::int "
            "FROM pg_dist_shard s JOIN pg_dist_partition p USING (logicalrelid) WHERE p.partmethod = 'h'"
        ).fetchall()
    except psycopg.Error as exc:
        return _fail(HASH_RANGES_COVER_INT32, "read shard ranges", exc)
    tables: dict[str, list[ShardRange]] = {}
    for table, shard, low, high in rows:
        tables.setdefault(table, []).append(ShardRange(shard, low, high))
    problems = [p for table, ranges in sorted(tables.items()) for p in layout.coverage_problems(table, ranges)]
    facts = {"tables": len(tables), "shards": len(rows), "range_problems": len(problems)}
    if problems:
        return Invariant(HASH_RANGES_COVER_INT32, False, _listed(problems), facts)
    return Invariant(
        HASH_RANGES_COVER_INT32, True, f"{len(tables)} tables, {len(rows)} shards tile the int32 range", facts
    )


def colocation(conn: psycopg.Connection) -> Invariant:
    """Co-located tables share ranges and placements; reference tables are on every node."""
    try:
        shards = conn.execute(
            "SELECT p.colocationid, p.logicalrelid::text, s.shardminvalue::int, s.shardmaxvalue::int, "
            "array_agg(pl.groupid ORDER BY pl.groupid) FROM pg_dist_partition p "
            "JOIN pg_dist_shard s USING (logicalrelid) JOIN pg_dist_placement pl USING (shardid) "
            "WHERE p.partmethod = 'h' GROUP BY 1, 2, 3, 4"
        ).fetchall()
        references = conn.execute(
            "SELECT p.logicalrelid::text, array_agg(pl.groupid) FROM pg_dist_partition p "
            "JOIN pg_dist_shard s USING (logicalrelid) JOIN pg_dist_placement pl USING (shardid) "
            "WHERE p.partmethod = 'n' AND p.repmodel = 't' GROUP BY 1"
        ).fetchall()
        groups = {
            g for (g,) in conn.execute("SELECT groupid FROM pg_dist_node WHERE isactive AND noderole = 'primary'")
        }
    except psycopg.Error as exc:
        return _fail(COLOCATION_CONSISTENT, "read colocation metadata", exc)
    by_group: dict[int, dict[str, list[layout.Slot]]] = {}
    for colocation_id, table, low, high, at in shards:
        by_group.setdefault(colocation_id, {}).setdefault(table, []).append((low, high, tuple(at)))
    problems = layout.colocation_problems(by_group)
    problems += layout.reference_problems({t: set(at) for t, at in references}, groups)
    facts = {"colocation_groups": len(by_group), "reference_tables": len(references), "problems": len(problems)}
    if problems:
        return Invariant(COLOCATION_CONSISTENT, False, _listed(problems), facts)
    detail = (
        f"{len(by_group)} colocation groups consistent; {len(references)} reference tables on all {len(groups)} nodes"
    )
    return Invariant(COLOCATION_CONSISTENT, True, detail, facts)


def own_placements(conn: psycopg.Connection, table: str) -> list[Placement]:
    rows = conn.execute(
        "SELECT s.shardid, s.shardminvalue::int, s.shardmaxvalue::int, shard_name(s.logicalrelid, s.shardid), "
        "n.nodename, n.nodeport FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) "
        "JOIN pg_dist_node n USING (groupid) WHERE s.logicalrelid = %s::regclass ORDER BY 2",
        (table,),
    ).fetchall()
    return [Placement(table, *row) for row in rows]


def rows_in_right_shard(
    conn: psycopg.Connection, connect_node: NodeConnector, tables: dict[str, str], sample: int, seed: int
) -> Invariant:
    """Each row's worker_hash lies in its shard's range: every row of a shard up to `sample` rows, else a
    seeded Bernoulli sample of about `sample` rows. A shard table that is missing is left to placements_active."""
    checked = misplaced = missing = 0
    problems: list[str] = []
    nodes: dict[tuple[str, int], psycopg.Connection] = {}
    try:
        for table, column in tables.items():
            for place in own_placements(conn, table):
                node = nodes.get((place.host, place.port))
                if node is None:
                    node = nodes[(place.host, place.port)] = connect_node(place.host, place.port)
                outside, seen = _count_outside(node, place, column, sample, seed)
                if seen < 0:
                    missing += 1
                    continue
                checked += seen
                misplaced += outside
                if outside:
                    problems.append(
                        f"{outside} of {seen} rows of {place.shard} on {place.host}:{place.port} hash outside "
                        f"[{place.low}, {place.high}]"
                    )
    except (psycopg.Error, ResourceConfigError) as exc:  # a node that cannot be reached: judged, not raised
        return _fail(ROWS_IN_RIGHT_SHARD, "read shard rows", exc)
    finally:
        for node in nodes.values():
            node.close()
    facts = {"rows_checked": checked, "rows_misplaced": misplaced, "shards_unreadable": missing}
    if problems:
        return Invariant(ROWS_IN_RIGHT_SHARD, False, _listed(problems), facts)
    note = f" ({missing} shard tables missing: see placements_active)" if missing else ""
    return Invariant(ROWS_IN_RIGHT_SHARD, True, f"{checked} rows checked, all in their shard's range{note}", facts)


def _count_outside(node: psycopg.Connection, place: Placement, column: str, sample: int, seed: int) -> tuple[int, int]:
    """(rows outside the range, rows looked at) for one placement; (0, -1) when its table is missing."""
    schema, _, name = place.shard.rpartition(".")
    relation = sql.Identifier(schema, name) if schema else sql.Identifier(name)
    try:
        total = node.execute(sql.SQL("SELECT count(*) FROM {}").format(relation)).fetchone()[0]
    except psycopg.errors.UndefinedTable:
        return 0, -1
    source = sql.SQL("{}").format(relation)
    if total > sample:
        percent = sql.Literal(min(100.0, 100.0 * sample / total))
        source = sql.SQL("{} TABLESAMPLE BERNOULLI ({}) REPEATABLE ({})").format(relation, percent, sql.Literal(seed))
    query = sql.SQL(
        "SELECT count(*) FILTER (WHERE h < {lo} OR h > {hi}), count(*) "
        "FROM (SELECT worker_hash({col}) AS h FROM {src}) t"
    ).format(lo=sql.Literal(place.low), hi=sql.Literal(place.high), col=sql.Identifier(column), src=source)
    outside, seen = node.execute(query).fetchone()
    return int(outside), int(seen)


def leftovers(conn: psycopg.Connection, settle_s: float = 1.0) -> Invariant:
    """No prepared transaction stays on any node (looked at twice, `settle_s` apart, so a 2PC commit in flight
    is not counted), and no resource waits in pg_dist_cleanup."""
    query = (
        "SELECT nodeid, success, result FROM run_command_on_all_nodes("
        "$$SELECT coalesce(string_agg(gid, ',' ORDER BY gid), '') FROM pg_prepared_xacts$$)"
    )
    try:
        first = _prepared(conn.execute(query).fetchall())
        if first:
            time.sleep(settle_s)
        second = _prepared(conn.execute(query).fetchall()) if first else set()
        cleanup = conn.execute(
            "SELECT object_type, object_name, policy_type FROM pg_dist_cleanup ORDER BY record_id"
        ).fetchall()
    except psycopg.Error as exc:
        return _fail(NO_ORPHANS, "read prepared transactions and cleanup records", exc)
    stuck = sorted(first & second)
    problems = [f"prepared transaction {gid!r} on node {node}" for node, gid in stuck]
    problems += [f"cleanup record: object type {t} {name!r} (policy {p})" for t, name, p in cleanup]
    facts = {"prepared_transactions": len(stuck), "cleanup_records": len(cleanup)}
    if problems:
        return Invariant(NO_ORPHANS, False, _listed(problems), facts)
    return Invariant(NO_ORPHANS, True, "no prepared transactions left on any node; no cleanup records", facts)


def _prepared(rows: list[tuple[int, bool, str]]) -> set[tuple[int, str]]:
    found = set()
    for node, ok, result in rows:
        if not ok:
            found.add((node, f"(node unreadable: {result[:60]})"))
            continue
        found.update((node, gid) for gid in result.split(",") if gid)
    return found


def shard_rows(conn: psycopg.Connection, table: str) -> list[int]:
    """Rows per shard of one table (for the skew figure)."""
    rows = conn.execute(
        "SELECT result FROM run_command_on_shards(%s, 'SELECT count(*) FROM %%s') WHERE success", (table,)
    ).fetchall()
    return [int(r) for (r,) in rows]
