"""Operation shapes of the Citus workload, each with its refusals by design and a builder. Pure.

A shape is one planner path (a router UPDATE, a MERGE whose ON clause needs repartitioning, a write of the
distribution key from another relation...). `by_design` lists the SQLSTATEs Citus may answer it with by design
(0A000 "feature not supported" for writes that would move a row between shards); a refusal of any other shape,
or with another code, is a finding. Builders draw values from the generator (seeded, adversarial domains).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from assets.citus_sharding.workload import (
    NAMES,
    NUMERIC,
    REGIONS,
    SCHEMA,
    STATUSES,
    Generator,
    Statement,
    _money,
    values,
)
from regression_pipelines.kit.generate.coverage import Shape

NOT_SUPPORTED = frozenset({"0A000"})
REPARTITION = (("citus.enable_repartition_joins", "on"),)
S = SCHEMA


@dataclass(frozen=True)
class ShapeSpec:
    shape: Shape
    weight: float
    build: Callable[[Generator], list[Statement]]
    deep_weight: float | None = None  # weight in the deep profile (default: the same)


def _region(g: Generator) -> int:
    return g.rng.randint(1, REGIONS)


def _status(g: Generator) -> str:
    return g.rng.choice(STATUSES)


def _in(keys: list[int]) -> str:
    return ", ".join(str(k) for k in sorted(set(keys)))


# --- queries -----------------------------------------------------------------------------------------------------


def router(g: Generator) -> list[Statement]:
    sql = f"SELECT id, region, balance, name FROM {S}.accounts WHERE id = {g.some_keys(1)[0]}"
    return [g.next("router", sql, query=True)]


def router_orders(g: Generator) -> list[Statement]:
    sql = f"SELECT order_id, amount, status FROM {S}.orders WHERE account_id = {g.existing()} ORDER BY order_id"
    return [g.next("router_orders", sql, query=True, ordered=True)]


def totals(g: Generator) -> list[Statement]:
    return [
        g.next("totals", f"SELECT count(*), sum(balance), min(balance), max(balance) FROM {S}.accounts", query=True)
    ]


def group_having(g: Generator) -> list[Statement]:
    sql = (
        f"SELECT region, count(*), sum(balance), avg(balance) FROM {S}.accounts GROUP BY region "
        f"HAVING count(*) > {g.rng.randint(0, g.accounts // REGIONS)}"
    )
    return [g.next("group_having", sql, query=True)]


def colocated_join(g: Generator) -> list[Statement]:
    sql = (
        f"SELECT a.region, o.status, count(*), sum(o.amount) FROM {S}.accounts a "
        f"JOIN {S}.orders o ON o.account_id = a.id GROUP BY a.region, o.status"
    )
    return [g.next("colocated_join", sql, query=True)]


def reference_join(g: Generator) -> list[Statement]:
    sql = (
        f"SELECT r.name, count(*), sum(a.balance * (1 + r.tax)) FROM {S}.accounts a "
        f"JOIN {S}.regions r ON r.id = a.region GROUP BY r.name"
    )
    return [g.next("reference_join", sql, query=True)]


def outer_join(g: Generator) -> list[Statement]:
    sql = (
        f"SELECT a.id, count(o.order_id), coalesce(sum(o.amount), 0) FROM {S}.accounts a "
        f"LEFT JOIN {S}.orders o ON o.account_id = a.id WHERE a.region = {_region(g)} GROUP BY a.id"
    )
    return [g.next("outer_join", sql, query=True)]


def distinct_on(g: Generator) -> list[Statement]:
    sql = f"SELECT DISTINCT ON (region) region, id, balance FROM {S}.accounts ORDER BY region, balance DESC, id"
    return [g.next("distinct_on", sql, query=True, ordered=True)]


def window_partitioned(g: Generator) -> list[Statement]:
    sql = (
        f"SELECT account_id, order_id, sum(amount) OVER (PARTITION BY account_id ORDER BY order_id), "
        f"row_number() OVER (PARTITION BY account_id ORDER BY amount DESC, order_id) "
        f"FROM {S}.orders WHERE account_id IN ({_in(g.some_keys(3))})"
    )
    return [g.next("window_partitioned", sql, query=True)]


def window_global(g: Generator) -> list[Statement]:
    sql = f"SELECT id, rank() OVER (ORDER BY balance DESC, id) FROM {S}.accounts ORDER BY 2, 1 LIMIT 10"
    return [g.next("window_global", sql, query=True, ordered=True)]


def order_limit(g: Generator) -> list[Statement]:
    sql = (
        f"SELECT id, balance FROM {S}.accounts WHERE region = {_region(g)} "
        f"ORDER BY balance DESC, id LIMIT {g.rng.randint(1, 20)}"
    )
    return [g.next("order_limit", sql, query=True, ordered=True)]


def order_limit_join(g: Generator) -> list[Statement]:
    sql = (
        f"SELECT o.account_id, o.order_id, o.amount FROM {S}.orders o JOIN {S}.accounts a ON a.id = o.account_id "
        f"WHERE a.region = {_region(g)} ORDER BY o.amount DESC, o.account_id, o.order_id LIMIT 10"
    )
    return [g.next("order_limit_join", sql, query=True, ordered=True)]


def subquery_in(g: Generator) -> list[Statement]:
    sql = (
        f"SELECT count(*), sum(balance) FROM {S}.accounts WHERE id IN "
        f"(SELECT account_id FROM {S}.orders WHERE amount > {_money(g.rng, 200)})"
    )
    return [g.next("subquery_in", sql, query=True)]


def cte(g: Generator) -> list[Statement]:
    sql = (
        f"WITH totals AS (SELECT account_id, sum(amount) AS total FROM {S}.orders GROUP BY account_id) "
        f"SELECT count(*), max(total) FROM totals WHERE total > {_money(g.rng, 300)}"
    )
    return [g.next("cte", sql, query=True)]


def non_colocated_join(g: Generator) -> list[Statement]:
    """A join on non-distribution columns with repartitioning off: refused by design."""
    sql = f"SELECT count(*) FROM {S}.orders o JOIN {S}.accounts a ON a.region = o.order_id % {REGIONS}"
    return [g.next("non_colocated_join", sql, query=True)]


def repartition_join(g: Generator) -> list[Statement]:
    """The same kind of join with repartition joins on: transfers.new_id against orders' distribution column."""
    sql = (
        f"SELECT count(*), sum(o.amount), count(DISTINCT t.account_id) FROM {S}.orders o "
        f"JOIN {S}.transfers t ON t.new_id = o.account_id WHERE t.amount > {NUMERIC.draw(g.rng, g.sink)}"
    )
    return [g.next("repartition_join", sql, query=True, settings=REPARTITION)]


def reference_only_subquery(g: Generator) -> list[Statement]:
    """Reference tables only, with a sequence call that keeps it off the router planner (Citus issue 8243)."""
    sql = (
        f"SELECT sub.name, nextval('{S}.regions_ticket_seq') > 0 FROM "
        f"(SELECT r1.name FROM {S}.regions r1 JOIN {S}.regions r2 ON r1.id = r2.id "
        f"WHERE r2.tax >= {g.rng.randint(0, 10) / 100} GROUP BY r1.name) sub"
    )
    return [g.next("reference_only_subquery", sql, query=True)]


def local_with_distributed_subquery(g: Generator) -> list[Statement]:
    """A local table whose target list holds a scalar subquery over a distributed table (Citus issue 8313): the
    only Citus table is in a subplan."""
    sql = (
        f"SELECT top, id FROM (SELECT (SELECT balance FROM {S}.accounts WHERE region = {_region(g)} "
        f"ORDER BY balance DESC, id LIMIT 1 OFFSET {g.rng.randint(0, 3)}) AS top, n.id FROM {S}.notes n "
        f"WHERE true::bool) sub WHERE sub.id = {g.rng.randint(1, 20)}"
    )
    return [g.next("local_with_distributed_subquery", sql, query=True)]


def reference_subquery_distributed(g: Generator) -> list[Statement]:
    sql = (
        f"SELECT region, count(*), sum(balance) FROM {S}.accounts WHERE region IN "
        f"(SELECT id FROM {S}.regions WHERE tax >= {g.rng.randint(0, 20) / 100}) GROUP BY region"
    )
    return [g.next("reference_subquery_distributed", sql, query=True)]


def _runs(g: Generator) -> int:
    """Executions of one prepared statement: more than five, so PostgreSQL switches to its generic plan."""
    return g.rng.randint(6, 9)


def prepared_router(g: Generator) -> list[Statement]:
    sql = f"SELECT id, region, balance, name FROM {S}.accounts WHERE id = %s"
    return [g.next("prepared_router", sql, query=True, params=(k,), prepared=True) for k in g.some_keys(_runs(g))]


def prepared_multi_shard(g: Generator) -> list[Statement]:
    sql = f"SELECT count(*), sum(balance) FROM {S}.accounts WHERE id = ANY(%s) OR region = %s"
    return [
        g.next("prepared_multi_shard", sql, query=True, params=(g.some_keys(3), _region(g)), prepared=True)
        for _ in range(_runs(g))
    ]


# --- DML ---------------------------------------------------------------------------------------------------------


def insert_accounts(g: Generator) -> list[Statement]:
    rows = []
    for _ in range(g.rng.randint(1, 4)):
        key = g.edge_key() if g.rng.random() < 0.5 else None
        key, region, _, _ = g.account(key)
        rows.append((key, region, NUMERIC.draw(g.rng, g.sink), NAMES.draw(g.rng, g.sink)))
    return [g.next("insert_accounts", f"INSERT INTO {S}.accounts VALUES {values(rows)}")]


def insert_orders(g: Generator) -> list[Statement]:
    rows = [g.order(k) for k in g.some_keys(g.rng.randint(1, 5))]
    return [g.next("insert_orders", f"INSERT INTO {S}.orders VALUES {values(rows)}")]


def copy_orders(g: Generator) -> list[Statement]:
    return [g.copy_batch(g.rng.randint(5, 40))]


def upsert(g: Generator) -> list[Statement]:
    rows = [(k, _region(g), _money(g.rng, 50), NAMES.draw(g.rng, g.sink)) for k in g.some_keys(2)]
    rows = list({r[0]: r for r in rows}.values())  # one row per key: ON CONFLICT cannot touch a row twice
    sql = (
        f"INSERT INTO {S}.accounts AS a VALUES {values(rows)} ON CONFLICT (id) DO UPDATE "
        "SET balance = a.balance + EXCLUDED.balance RETURNING id, balance"
    )
    return [g.next("upsert", sql)]


def update_router(g: Generator) -> list[Statement]:
    sql = (
        f"UPDATE {S}.accounts SET balance = balance + {_money(g.rng, 20)} WHERE id = {g.some_keys(1)[0]} "
        "RETURNING id, balance"
    )
    return [g.next("update_router", sql)]


def update_multi(g: Generator) -> list[Statement]:
    return [g.next("update_multi", f"UPDATE {S}.accounts SET balance = balance * 1.01 WHERE region = {_region(g)}")]


def update_subquery(g: Generator) -> list[Statement]:
    sql = (
        f"UPDATE {S}.accounts SET balance = balance - 1 WHERE id IN (SELECT account_id FROM {S}.orders "
        f"WHERE amount > {_money(g.rng, 200)} AND status = '{_status(g)}')"
    )
    return [g.next("update_subquery", sql)]


def update_from(g: Generator) -> list[Statement]:
    sql = (
        f"UPDATE {S}.orders o SET amount = o.amount + r.tax FROM {S}.accounts a, {S}.regions r "
        f"WHERE o.account_id = a.id AND a.region = r.id AND a.region = {_region(g)}"
    )
    return [g.next("update_from", sql)]


def delete_router(g: Generator) -> list[Statement]:
    sql = (
        f"DELETE FROM {S}.orders WHERE account_id = {g.some_keys(1)[0]} AND amount < {_money(g.rng, 200)} "
        "RETURNING order_id, amount"
    )
    return [g.next("delete_router", sql)]


def delete_join(g: Generator) -> list[Statement]:
    sql = (
        f"DELETE FROM {S}.orders o USING {S}.accounts a WHERE o.account_id = a.id "
        f"AND a.balance < {_money(g.rng, 60)} AND o.status = '{_status(g)}'"
    )
    return [g.next("delete_join", sql)]


def merge(g: Generator) -> list[Statement]:
    sql = (
        f"MERGE INTO {S}.accounts a USING (SELECT account_id, sum(amount) AS total FROM {S}.orders "
        f"WHERE status = '{_status(g)}' GROUP BY account_id) o ON a.id = o.account_id "
        f"WHEN MATCHED AND a.balance > {_money(g.rng, 500)} THEN UPDATE SET balance = a.balance - o.total / 100 "
        "WHEN NOT MATCHED THEN INSERT VALUES (o.account_id, 1, o.total, 'merged')"
    )
    return [g.next("merge", sql)]


def update_reference(g: Generator) -> list[Statement]:
    return [g.next("update_reference", f"UPDATE {S}.regions SET tax = tax + 0.0010 WHERE id = {_region(g)}")]


def delete_account(g: Generator) -> list[Statement]:
    return [g.next("delete_account", f"DELETE FROM {S}.accounts WHERE id = {g.some_keys(1)[0]}")]


def update_distribution_key(g: Generator) -> list[Statement]:
    """The key moved by an expression of itself: always refused by Citus (it would move the row)."""
    sql = f"UPDATE {S}.accounts SET id = id + 100000000 WHERE id = {g.existing()}"
    return [g.next("update_distribution_key", sql)]


def insert_transfers(g: Generator) -> list[Statement]:
    rows = [g.transfer(k) for k in set(g.some_keys(g.rng.randint(1, 3)))]
    sql = (
        f"INSERT INTO {S}.transfers AS t VALUES {values(rows)} ON CONFLICT (account_id) DO UPDATE "
        "SET new_id = EXCLUDED.new_id, amount = t.amount + EXCLUDED.amount, memo = EXCLUDED.memo"
    )
    return [g.next("insert_transfers", sql)]


def key_from_other_relation(g: Generator) -> list[Statement]:
    """SET the key from a co-located relation's column that is not its key (Citus issue 8087): refused by design."""
    sql = (
        f"UPDATE {S}.accounts a SET id = t.new_id FROM {S}.transfers t "
        f"WHERE a.id = t.account_id AND a.id IN ({_in(g.some_keys(g.rng.randint(1, 3)))})"
    )
    return [g.next("key_from_other_relation", sql)]


def key_noop_from_other_relation(g: Generator) -> list[Statement]:
    """SET the key to the joined co-located key: a no-op Citus must allow."""
    sql = (
        f"UPDATE {S}.accounts a SET id = t.account_id, balance = a.balance + 1 FROM {S}.transfers t "
        f"WHERE a.id = t.account_id AND t.amount > {NUMERIC.draw(g.rng, g.sink)} RETURNING a.id, a.balance"
    )
    return [g.next("key_noop_from_other_relation", sql)]


def _shift(g: Generator) -> int:
    """An offset that moves keys to other shards (sometimes onto existing keys: colliding)."""
    return g.rng.choice((g.fresh(), 1, g.rng.randint(2, 50), -(2**31)))


def key_from_same_table(g: Generator) -> list[Statement]:
    """SET the key from a subquery over the same table (its first column, not the key): refused by design."""
    sql = (
        f"UPDATE {S}.accounts a SET id = s.id FROM (SELECT id + {_shift(g)} AS id, id AS old FROM {S}.accounts "
        f"WHERE id IN ({_in(g.some_keys(g.rng.randint(1, 3)))})) s WHERE a.id = s.old"
    )
    return [g.next("key_from_same_table", sql)]


def merge_key_from_source(g: Generator) -> list[Statement]:
    sql = (
        f"MERGE INTO {S}.accounts a USING (SELECT * FROM {S}.transfers WHERE account_id IN "
        f"({_in(g.some_keys(g.rng.randint(1, 3)))})) t ON a.id = t.account_id "
        "WHEN MATCHED THEN UPDATE SET id = t.new_id"
    )
    return [g.next("merge_key_from_source", sql)]


def merge_key_from_same_table(g: Generator) -> list[Statement]:
    sql = (
        f"MERGE INTO {S}.accounts a USING (SELECT id + {_shift(g)} AS id, id AS old FROM {S}.accounts "
        f"WHERE id IN ({_in(g.some_keys(g.rng.randint(1, 3)))})) s ON a.id = s.old "
        "WHEN MATCHED THEN UPDATE SET id = s.id"
    )
    return [g.next("merge_key_from_same_table", sql)]


def merge_repartition(g: Generator) -> list[Statement]:
    """MERGE whose ON clause joins the target's key to a source column that is not the source's key (a
    repartitioned MERGE); the actions read that source column (Citus issue 8180 when it is not the source's first
    column). Source keys are unique (transfers.new_id, orders.order_id), so each target row matches once."""
    if g.rng.random() < 0.5:
        source, column, other = f"{S}.transfers", "new_id", "memo"
    else:
        source, column, other = f"{S}.orders", "order_id", "status"
    sets = g.rng.choice(
        (
            f"region = (t.{column} % 5)::int + 1",
            f"balance = t.{column}",
            f"balance = a.balance + 1, name = t.{other}",
        )
    )
    insert = (
        f" WHEN NOT MATCHED AND t.{column} < 1000000000 THEN INSERT VALUES (t.{column}, 1, 0, 'merged')"
        if g.rng.random() < 0.5
        else ""
    )
    sql = (
        f"MERGE INTO {S}.accounts a USING {source} t ON (a.id = t.{column}) WHEN MATCHED THEN UPDATE SET {sets}{insert}"
    )
    return [g.next("merge_repartition", sql)]


def merge_repartition_same_table(g: Generator) -> list[Statement]:
    if g.rng.random() < 0.5:
        sql = (
            f"MERGE INTO {S}.orders o USING {S}.orders s ON (o.account_id = s.order_id) "
            "WHEN MATCHED THEN UPDATE SET amount = s.order_id % 1000"
        )
    else:
        sql = (
            f"MERGE INTO {S}.accounts a USING (SELECT region::bigint AS region, max(id) AS top FROM {S}.accounts "
            "GROUP BY region) s ON (a.id = s.region) WHEN MATCHED THEN UPDATE SET region = s.region"
        )
    return [g.next("merge_repartition_same_table", sql)]


def insert_select_repartition(g: Generator) -> list[Statement]:
    """INSERT ... SELECT of keys from a non-key column of another relation, ON CONFLICT DO UPDATE."""
    sql = (
        f"INSERT INTO {S}.accounts AS a (id, region, balance, name) SELECT t.new_id, 1, 0, 'via transfer' "
        f"FROM {S}.transfers t WHERE t.amount > {NUMERIC.draw(g.rng, g.sink)} "
        "ON CONFLICT (id) DO UPDATE SET balance = a.balance + 1"
    )
    return [g.next("insert_select_repartition", sql)]


def insert_select_same_table(g: Generator) -> list[Statement]:
    sql = (
        f"INSERT INTO {S}.accounts AS a (id, region, balance, name) SELECT id + {_shift(g)}, region, balance, "
        f"name || '+' FROM {S}.accounts WHERE id IN ({_in(g.some_keys(g.rng.randint(1, 4)))}) "
        "ON CONFLICT (id) DO UPDATE SET balance = a.balance + EXCLUDED.balance"
    )
    return [g.next("insert_select_same_table", sql)]


def upsert_sets_key(g: Generator) -> list[Statement]:
    key = g.existing()
    sql = (
        f"INSERT INTO {S}.accounts AS a VALUES ({key}, 1, 0, 'x') ON CONFLICT (id) DO UPDATE "
        f"SET id = EXCLUDED.id + {_shift(g)}"
    )
    return [g.next("upsert_sets_key", sql)]


def modifying_cte(g: Generator) -> list[Statement]:
    key = g.some_keys(1)[0]
    if g.rng.random() < 0.5:
        sql = (
            f"WITH moved AS (DELETE FROM {S}.orders WHERE account_id = {key} AND status = '{_status(g)}' "
            "RETURNING account_id, order_id, amount) "
            f"INSERT INTO {S}.orders SELECT account_id, order_id + {g.fresh()}, amount, 'moved' FROM moved"
        )
        return [g.next("modifying_cte", sql)]
    sql = (
        f"WITH upd AS (UPDATE {S}.accounts SET balance = balance + 1 WHERE region = {_region(g)} RETURNING id, balance)"
        " SELECT count(*), sum(balance) FROM upd"
    )
    return [g.next("modifying_cte", sql, query=True)]


def mixed_transaction(g: Generator) -> list[Statement]:
    """Router and multi-shard statements in one transaction (one multi-statement string: all or nothing)."""
    key, other = g.some_keys(2)
    order = g.order(other)
    parts = [
        f"UPDATE {S}.accounts SET balance = balance + 1 WHERE id = {key}",
        f"UPDATE {S}.orders SET amount = amount + 1 WHERE status = '{_status(g)}'",
        f"INSERT INTO {S}.orders VALUES {values([order])}",
        f"SELECT count(*), sum(amount) FROM {S}.orders WHERE account_id IN ({key}, {other})",
    ]
    return [g.next("mixed_transaction", "; ".join(parts), query=True)]


def prepared_update_router(g: Generator) -> list[Statement]:
    sql = f"UPDATE {S}.accounts SET balance = balance + %s WHERE id = %s RETURNING id, balance"
    return [
        g.next("prepared_update_router", sql, params=(_money(g.rng, 5), k), prepared=True)
        for k in g.some_keys(_runs(g))
    ]


def _multi_row_insert(g: Generator, kind: str, on_worker: bool) -> list[Statement]:
    """A prepared two-row INSERT: first both rows for one key (one shard), then for two keys (two shards): a plan
    cached for the single-shard case must not be reused for the multi-shard one (Citus issue 8330)."""
    sql = f"INSERT INTO {S}.orders VALUES (%s, %s, %s, 'prepared'), (%s, %s, %s, 'prepared')"
    runs, out = _runs(g), []
    for i in range(runs):
        first = g.existing()
        second = first if i < runs - 2 else g.existing()
        params = (first, g.fresh(), _money(g.rng, 50), second, g.fresh(), _money(g.rng, 50))
        out.append(g.next(kind, sql, params=params, prepared=True, on_worker=on_worker))
    return out


def prepared_insert_multi_row(g: Generator) -> list[Statement]:
    return _multi_row_insert(g, "prepared_insert_multi_row", on_worker=False)


def prepared_insert_on_worker(g: Generator) -> list[Statement]:
    return _multi_row_insert(g, "prepared_insert_on_worker", on_worker=True)


def _spec(build: Callable[[Generator], list[Statement]], cls: str, weight: float, *, refused: bool = False,
          deep: float | None = None) -> ShapeSpec:  # fmt: skip
    return ShapeSpec(Shape(build.__name__, cls, NOT_SUPPORTED if refused else frozenset()), weight, build, deep)


SHAPES: dict[str, ShapeSpec] = {
    spec.shape.name: spec
    for spec in (
        _spec(router, "query", 10),
        _spec(router_orders, "query", 6),
        _spec(totals, "query", 4),
        _spec(group_having, "query", 4),
        _spec(colocated_join, "query", 5),
        _spec(reference_join, "query", 4),
        _spec(outer_join, "query", 3),
        _spec(distinct_on, "query", 2),
        _spec(window_partitioned, "query", 3),
        _spec(window_global, "query", 2),
        _spec(order_limit, "query", 4),
        _spec(order_limit_join, "query", 2),
        _spec(subquery_in, "query", 3),
        _spec(cte, "query", 3),
        _spec(non_colocated_join, "query", 1, refused=True),
        _spec(repartition_join, "repartition", 3),
        _spec(reference_only_subquery, "reference_subquery", 2),
        _spec(reference_subquery_distributed, "reference_subquery", 2),
        _spec(local_with_distributed_subquery, "local_subquery", 1.5),
        _spec(prepared_router, "prepared", 0.4),
        _spec(prepared_multi_shard, "prepared", 0.25),
        _spec(insert_accounts, "dml", 7),
        _spec(insert_orders, "dml", 6),
        _spec(copy_orders, "dml", 3),
        _spec(upsert, "dml", 6),
        _spec(update_router, "dml", 8),
        _spec(update_multi, "dml", 4),
        _spec(update_subquery, "dml", 3),
        _spec(update_from, "dml", 3),
        _spec(delete_router, "dml", 5),
        _spec(delete_join, "dml", 2),
        _spec(merge, "merge", 3),
        _spec(update_reference, "dml", 2),
        _spec(delete_account, "dml", 1.5),
        _spec(update_distribution_key, "key_write", 1, refused=True),
        _spec(insert_transfers, "dml", 4),
        _spec(key_from_other_relation, "key_write", 3, refused=True),
        # Refused up to 13.2.0; recognised as a no-op since 13.2.1 (#8214): the coverage account tells which.
        _spec(key_noop_from_other_relation, "key_write", 2, refused=True),
        _spec(key_from_same_table, "key_write", 2, refused=True),
        _spec(merge_key_from_source, "key_write", 2, refused=True),
        _spec(merge_key_from_same_table, "key_write", 1.5, refused=True),
        _spec(merge_repartition, "merge", 3),
        _spec(merge_repartition_same_table, "merge", 1),
        _spec(insert_select_repartition, "insert_select", 2),
        _spec(insert_select_same_table, "insert_select", 2),
        _spec(upsert_sets_key, "key_write", 1, refused=True),
        _spec(modifying_cte, "cte_dml", 3),
        _spec(mixed_transaction, "transaction", 3),
        _spec(prepared_update_router, "prepared", 0.4),
        _spec(prepared_insert_multi_row, "prepared", 0.3),
        _spec(prepared_insert_on_worker, "prepared", 0.3),
    )
}


def build(g: Generator, name: str) -> list[Statement]:
    return SHAPES[name].build(g)


def mix(g: Generator, count: int, deep: bool = False) -> list[Statement]:
    """`count` statements drawn by shape weight; a prepared shape emits its run of executions together."""
    names = list(SHAPES)
    chances = [(s.deep_weight if deep and s.deep_weight is not None else s.weight) for s in SHAPES.values()]
    out: list[Statement] = []
    while len(out) < count:
        out.extend(build(g, g.rng.choices(names, weights=chances)[0]))
    return out[:count]


def shape_of(kind: str) -> Shape:
    """The shape a statement kind belongs to (COPY batches and final reads included)."""
    spec = SHAPES.get(kind)
    return spec.shape if spec is not None else Shape(kind, "other")


def value_classes() -> dict[str, list[str]]:
    """Every value class the workload can draw (declared in the coverage account, so unreached ones show)."""
    from regression_pipelines.kit.generate.values import INT32, INT64, TIMESTAMP

    domains = (INT32, INT64, NUMERIC, NAMES, TIMESTAMP)
    return {d.name: d.class_names for d in domains} | {"key_pattern": ["uniform", "skewed", "colliding"]}
