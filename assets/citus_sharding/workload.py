"""The seeded workload both systems get: schema, initial rows and a bounded random mix of DML and queries. Pure.

Statements are literal SQL with `@s` standing for the run's schema (so a mismatch is reported, and replayed,
as plain text). Values come from the seed; nothing depends on time, sequences or random() on the server, so
Citus and PostgreSQL must give the same answers. A few statement kinds are refused by Citus by design
(updating a distribution column, a join on a non-distribution column): they exercise the unsupported path.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

SCHEMA = "@s"
REGIONS = 5
STATUSES = ("new", "paid", "shipped")

TABLES = {  # name -> (columns with types, distribution column or None for the reference table)
    "accounts": (
        "id bigint PRIMARY KEY, region int NOT NULL, balance numeric(14,2) NOT NULL, name text NOT NULL",
        "id",
    ),
    "orders": (
        "account_id bigint NOT NULL, order_id bigint NOT NULL, amount numeric(14,2) NOT NULL, status text NOT NULL, "
        "PRIMARY KEY (account_id, order_id)",
        "account_id",
    ),
    "regions": ("id int PRIMARY KEY, name text NOT NULL, tax numeric(8,4) NOT NULL", None),
}
COLUMNS = {
    "accounts": ("id", "region", "balance", "name"),
    "orders": ("account_id", "order_id", "amount", "status"),
    "regions": ("id", "name", "tax"),
}


@dataclass(frozen=True)
class Statement:
    """One step of the mix. `ordered`: the result has a total order (compare as lists, else as multisets)."""

    index: int
    kind: str
    sql: str
    query: bool = False
    ordered: bool = False
    copy_rows: tuple[tuple[Any, ...], ...] = ()

    def text(self, schema: str = "<schema>") -> str:
        """The statement as a person reads it (COPY shows its row count, not its rows)."""
        if self.copy_rows:
            return f"{self.sql.replace(SCHEMA, schema)} -- {len(self.copy_rows)} rows"
        return self.sql.replace(SCHEMA, schema)


def setup_sql(distributed: bool, shard_count: int) -> list[str]:
    """Create the three tables; on Citus distribute them (orders co-located with accounts, regions reference)."""
    out = [f"CREATE TABLE {SCHEMA}.{name} ({columns})" for name, (columns, _) in TABLES.items()]
    if distributed:
        out += [
            f"SELECT create_distributed_table('{SCHEMA}.accounts', 'id', shard_count => {shard_count}, "
            "colocate_with => 'none')",  # a colocation group of its own: other tables never share its metadata
            f"SELECT create_distributed_table('{SCHEMA}.orders', 'account_id', colocate_with => '{SCHEMA}.accounts')",
            f"SELECT create_reference_table('{SCHEMA}.regions')",
        ]
    return out


def copy_sql(table: str) -> str:
    return f"COPY {SCHEMA}.{table} ({', '.join(COLUMNS[table])}) FROM STDIN"


def _money(rng: random.Random, top: int = 1000) -> Decimal:
    return Decimal(rng.randint(0, top * 100)) / 100


@dataclass
class Generator:
    """Seeded source of rows and statements; remembers which keys it handed out so DML hits real rows."""

    seed: int
    accounts: int
    orders_per_account: int
    rng: random.Random = field(init=False)
    next_account: int = field(init=False, default=1)
    next_order: int = field(init=False, default=1)
    index: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def initial_rows(self) -> dict[str, list[tuple[Any, ...]]]:
        rng = self.rng
        regions = [(r, f"region-{r}", Decimal(rng.randint(0, 2000)) / 10000) for r in range(1, REGIONS + 1)]
        accounts = [self._account() for _ in range(self.accounts)]
        orders = [self._order(a[0]) for a in accounts for _ in range(self.orders_per_account)]
        return {"regions": regions, "accounts": accounts, "orders": orders}

    def copy_batch(self, rows: int) -> Statement:
        """A COPY of new orders for existing accounts (the ingest figure)."""
        batch = tuple(self._order(self._existing()) for _ in range(rows))
        return self._next("copy_orders", copy_sql("orders"), copy_rows=batch)

    def _account(self) -> tuple[Any, ...]:
        key = self.next_account
        self.next_account += 1
        return (key, self.rng.randint(1, REGIONS), _money(self.rng), f"acct-{key}")

    def _order(self, account: int) -> tuple[Any, ...]:
        key = self.next_order
        self.next_order += 1
        return (account, key, _money(self.rng, 200), self.rng.choice(STATUSES))

    def _existing(self) -> int:
        return self.rng.randint(1, max(1, self.next_account - 1))

    def _next(self, kind: str, sql: str, **kw: Any) -> Statement:
        stmt = Statement(self.index, kind, sql, **kw)
        self.index += 1
        return stmt

    def mix(self, count: int, query_share: float = 0.6) -> list[Statement]:
        """`count` statements, about `query_share` of them queries, the rest DML (COPY included)."""
        out = []
        for _ in range(count):
            if self.rng.random() < query_share:
                out.append(self._query())
            else:
                out.append(self._dml())
        return out

    # --- DML ---------------------------------------------------------------------------------------------

    def _dml(self) -> Statement:
        rng, s = self.rng, SCHEMA
        kind = rng.choices(
            [
                "insert_accounts", "insert_orders", "copy_orders", "upsert", "update_router", "update_multi",
                "update_subquery", "update_from", "delete_router", "delete_join", "merge", "update_reference",
                "delete_account", "update_distribution_key",
            ],
            weights=[8, 8, 4, 8, 10, 5, 4, 4, 6, 3, 4, 3, 2, 2],
        )[0]  # fmt: skip
        if kind == "insert_accounts":
            rows = [self._account() for _ in range(rng.randint(1, 4))]
            return self._next(kind, f"INSERT INTO {s}.accounts VALUES {_values(rows)}")
        if kind == "insert_orders":
            rows = [self._order(self._existing()) for _ in range(rng.randint(1, 5))]
            return self._next(kind, f"INSERT INTO {s}.orders VALUES {_values(rows)}")
        if kind == "copy_orders":
            return self.copy_batch(rng.randint(5, 40))
        if kind == "upsert":
            rows = [(self._existing(), rng.randint(1, REGIONS), _money(rng, 50), "upserted") for _ in range(2)]
            rows = list({r[0]: r for r in rows}.values())  # one row per key: ON CONFLICT cannot touch a row twice
            return self._next(
                kind,
                f"INSERT INTO {s}.accounts AS a VALUES {_values(rows)} ON CONFLICT (id) DO UPDATE "
                "SET balance = a.balance + EXCLUDED.balance RETURNING id, balance",
            )
        if kind == "update_router":
            return self._next(
                kind,
                f"UPDATE {s}.accounts SET balance = balance + {_money(rng, 20)} WHERE id = {self._existing()} "
                "RETURNING id, balance",
            )
        if kind == "update_multi":
            return self._next(kind, f"UPDATE {s}.accounts SET balance = balance * 1.01 WHERE region = {_region(rng)}")
        if kind == "update_subquery":
            return self._next(
                kind,
                f"UPDATE {s}.accounts SET balance = balance - 1 WHERE id IN "
                f"(SELECT account_id FROM {s}.orders WHERE amount > {_money(rng, 200)} AND status = '{_status(rng)}')",
            )
        if kind == "update_from":
            return self._next(
                kind,
                f"UPDATE {s}.orders o SET amount = o.amount + r.tax FROM {s}.accounts a, {s}.regions r "
                f"WHERE o.account_id = a.id AND a.region = r.id AND a.region = {_region(rng)}",
            )
        if kind == "delete_router":
            return self._next(
                kind,
                f"DELETE FROM {s}.orders WHERE account_id = {self._existing()} AND amount < {_money(rng, 200)} "
                "RETURNING order_id, amount",
            )
        if kind == "delete_join":
            return self._next(
                kind,
                f"DELETE FROM {s}.orders o USING {s}.accounts a WHERE o.account_id = a.id "
                f"AND a.balance < {_money(rng, 60)} AND o.status = '{_status(rng)}'",
            )
        if kind == "merge":
            return self._next(
                kind,
                f"MERGE INTO {s}.accounts a USING (SELECT account_id, sum(amount) AS total FROM {s}.orders "
                f"WHERE status = '{_status(rng)}' GROUP BY account_id) o ON a.id = o.account_id "
                f"WHEN MATCHED AND a.balance > {_money(rng, 500)} THEN UPDATE SET balance = a.balance - o.total / 100 "
                "WHEN NOT MATCHED THEN INSERT VALUES (o.account_id, 1, o.total, 'merged')",
            )
        if kind == "update_reference":
            return self._next(kind, f"UPDATE {s}.regions SET tax = tax + 0.0010 WHERE id = {_region(rng)}")
        if kind == "delete_account":
            return self._next(kind, f"DELETE FROM {s}.accounts WHERE id = {self._existing()}")
        return self._next(kind, f"UPDATE {s}.accounts SET id = id + 100000000 WHERE id = {self._existing()}")

    # --- queries -----------------------------------------------------------------------------------------

    def _query(self) -> Statement:
        rng, s = self.rng, SCHEMA
        kind = rng.choices(
            [
                "router", "router_orders", "totals", "group_having", "colocated_join", "reference_join",
                "outer_join", "distinct_on", "window_partitioned", "window_global", "order_limit",
                "order_limit_join", "subquery_in", "cte", "non_colocated_join",
            ],
            weights=[12, 8, 5, 5, 6, 5, 4, 3, 4, 3, 5, 3, 3, 3, 2],
        )[0]  # fmt: skip
        q = {"query": True}
        if kind == "router":
            return self._next(
                kind, f"SELECT id, region, balance, name FROM {s}.accounts WHERE id = {self._existing()}", **q
            )
        if kind == "router_orders":
            return self._next(
                kind,
                f"SELECT order_id, amount, status FROM {s}.orders WHERE account_id = {self._existing()} "
                "ORDER BY order_id",
                ordered=True, **q,
            )  # fmt: skip
        if kind == "totals":
            return self._next(kind, f"SELECT count(*), sum(balance), min(balance), max(balance) FROM {s}.accounts", **q)
        if kind == "group_having":
            return self._next(
                kind,
                f"SELECT region, count(*), sum(balance), avg(balance) FROM {s}.accounts GROUP BY region "
                f"HAVING count(*) > {rng.randint(0, self.accounts // REGIONS)}",
                **q,
            )
        if kind == "colocated_join":
            return self._next(
                kind,
                f"SELECT a.region, o.status, count(*), sum(o.amount) FROM {s}.accounts a "
                f"JOIN {s}.orders o ON o.account_id = a.id GROUP BY a.region, o.status",
                **q,
            )
        if kind == "reference_join":
            return self._next(
                kind,
                f"SELECT r.name, count(*), sum(a.balance * (1 + r.tax)) FROM {s}.accounts a "
                f"JOIN {s}.regions r ON r.id = a.region GROUP BY r.name",
                **q,
            )
        if kind == "outer_join":
            return self._next(
                kind,
                f"SELECT a.id, count(o.order_id), coalesce(sum(o.amount), 0) FROM {s}.accounts a "
                f"LEFT JOIN {s}.orders o ON o.account_id = a.id WHERE a.region = {_region(rng)} GROUP BY a.id",
                **q,
            )
        if kind == "distinct_on":
            return self._next(
                kind,
                f"SELECT DISTINCT ON (region) region, id, balance FROM {s}.accounts ORDER BY region, balance DESC, id",
                ordered=True, **q,
            )  # fmt: skip
        if kind == "window_partitioned":
            keys = ", ".join(str(self._existing()) for _ in range(3))
            return self._next(
                kind,
                f"SELECT account_id, order_id, sum(amount) OVER (PARTITION BY account_id ORDER BY order_id), "
                f"row_number() OVER (PARTITION BY account_id ORDER BY amount DESC, order_id) "
                f"FROM {s}.orders WHERE account_id IN ({keys})",
                **q,
            )
        if kind == "window_global":
            return self._next(
                kind,
                f"SELECT id, rank() OVER (ORDER BY balance DESC, id) FROM {s}.accounts ORDER BY 2, 1 LIMIT 10",
                ordered=True, **q,
            )  # fmt: skip
        if kind == "order_limit":
            return self._next(
                kind,
                f"SELECT id, balance FROM {s}.accounts WHERE region = {_region(rng)} "
                f"ORDER BY balance DESC, id LIMIT {rng.randint(1, 20)}",
                ordered=True, **q,
            )  # fmt: skip
        if kind == "order_limit_join":
            return self._next(
                kind,
                f"SELECT o.account_id, o.order_id, o.amount FROM {s}.orders o JOIN {s}.accounts a "
                f"ON a.id = o.account_id WHERE a.region = {_region(rng)} "
                "ORDER BY o.amount DESC, o.account_id, o.order_id LIMIT 10",
                ordered=True, **q,
            )  # fmt: skip
        if kind == "subquery_in":
            return self._next(
                kind,
                f"SELECT count(*), sum(balance) FROM {s}.accounts WHERE id IN "
                f"(SELECT account_id FROM {s}.orders WHERE amount > {_money(rng, 200)})",
                **q,
            )
        if kind == "cte":
            return self._next(
                kind,
                f"WITH totals AS (SELECT account_id, sum(amount) AS total FROM {s}.orders GROUP BY account_id) "
                f"SELECT count(*), max(total) FROM totals WHERE total > {_money(rng, 300)}",
                **q,
            )
        return self._next(
            kind,
            f"SELECT count(*) FROM {s}.orders o JOIN {s}.accounts a ON a.region = o.order_id % {REGIONS}",
            **q,
        )


def _values(rows: list[tuple[Any, ...]]) -> str:
    return ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def _region(rng: random.Random) -> int:
    return rng.randint(1, REGIONS)


def _status(rng: random.Random) -> str:
    return rng.choice(STATUSES)


def final_contents_sql() -> dict[str, str]:
    """Whole-table reads compared at the end (as multisets)."""
    return {name: f"SELECT {', '.join(COLUMNS[name])} FROM {SCHEMA}.{name}" for name in TABLES}
