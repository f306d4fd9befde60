"""The seeded workload both systems get: schema, initial rows and a bounded mix of generated operation shapes. Pure.

Statements are SQL with `@s` standing for the run's schema (so a mismatch is reported, and replayed, as plain
text); a prepared shape carries its parameters and runs with a server-side prepared statement. Values come from
the seed and the kit's adversarial domains (`kit.generate.values`: int64/int32 edges for keys, text edges,
numerics, timestamps; keys picked uniformly, skewed or colliding); nothing depends on time, sequences or
random() on the server, so Citus and PostgreSQL must give the same answers.

Why these shapes (see `shapes.py`): a workload that writes the distribution key only as `SET id = id + n` never
reaches the planner paths where Citus decides whether a SET may move a row (writes of the key from another
relation's column, from a subquery over the same table, in UPDATE ... FROM and MERGE), nor repartitioned MERGE
and joins, reference-table-only subqueries, generic plans of prepared statements (after five executions),
data-modifying CTEs, or router and multi-shard statements in one transaction. Each shape says which refusals
are by design for it (`shapes.SHAPES`), so an always-refused shape never hides an allowed one.

Tables: `accounts` (distributed by id), `orders` and `transfers` co-located with it, `regions` a reference
table, `notes` a plain local table on the coordinator (Citus tables only in a scalar subquery: issue 8313).
`transfers` is distributed by its SECOND column (`account_id`) and its first column `new_id` is a bigint
that is not its distribution column: a SET of `accounts.id` from `transfers.new_id` is a Var with the same
attribute number as the distribution column, from another relation (Citus issue 8087).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from regression_pipelines.kit.generate.values import INT32, INT64, NUMERIC, TEXT, TIMESTAMP, ValueSink, pick_keys

SCHEMA = "@s"
REGIONS = 5
STATUSES = ("new", "paid", "shipped")
FRESH_BASE = 10**12  # ids handed out by the generator for new keys live above the initial ones
NAMES = TEXT.without("nul")  # PostgreSQL text cannot hold NUL

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
    "transfers": (
        "new_id bigint NOT NULL, account_id bigint PRIMARY KEY, amount numeric NOT NULL, memo text NOT NULL, "
        "at timestamptz NOT NULL",
        "account_id",
    ),
    "regions": ("id int PRIMARY KEY, name text NOT NULL, tax numeric(8,4) NOT NULL, ticket bigserial", None),
    "notes": ("id int PRIMARY KEY, note text NOT NULL", None),  # stays a local table on the coordinator
}
REFERENCE = ("regions",)
COLUMNS = {
    "accounts": ("id", "region", "balance", "name"),
    "orders": ("account_id", "order_id", "amount", "status"),
    "transfers": ("new_id", "account_id", "amount", "memo", "at"),
    "regions": ("id", "name", "tax"),
    "notes": ("id", "note"),
}
DISTRIBUTION = {name: column for name, (_, column) in TABLES.items() if column}


@dataclass(frozen=True)
class Statement:
    """One step of the mix. `ordered`: the result has a total order (compare as lists, else as multisets).

    `params`+`prepared`: run as a server-side prepared statement (psycopg `prepare=True`), so the sixth
    execution of the same text uses PostgreSQL's generic plan. `settings`: Citus settings for this statement
    only (e.g. repartition joins on). `on_worker`: sent to a worker node instead of the coordinator (Citus
    worker nodes hold the metadata and plan distributed queries themselves, with local execution).
    """

    index: int
    kind: str
    sql: str
    query: bool = False
    ordered: bool = False
    copy_rows: tuple[tuple[Any, ...], ...] = ()
    params: tuple[Any, ...] = ()
    prepared: bool = False
    settings: tuple[tuple[str, str], ...] = ()
    on_worker: bool = False

    def text(self, schema: str = "<schema>") -> str:
        """The statement as a person reads it (COPY shows its row count, prepared ones their parameters)."""
        sql = self.sql.replace(SCHEMA, schema)
        if self.copy_rows:
            return f"{sql} -- {len(self.copy_rows)} rows"
        prefix = "".join(f"SET {name} = {value}; " for name, value in self.settings)
        where = " -- on a worker node" if self.on_worker else ""
        if self.prepared:
            return f"{prefix}{sql} -- prepared, params {list(self.params)!r}{where}"
        return f"{prefix}{sql}{where}"


def setup_sql(distributed: bool, shard_count: int) -> list[str]:
    """Create the tables; on Citus distribute them (orders and transfers co-located with accounts)."""
    out = [f"CREATE TABLE {SCHEMA}.{name} ({columns})" for name, (columns, _) in TABLES.items()]
    if distributed:
        out += [
            f"SELECT create_distributed_table('{SCHEMA}.accounts', 'id', shard_count => {shard_count}, "
            "colocate_with => 'none')",  # a colocation group of its own: other tables never share its metadata
            f"SELECT create_distributed_table('{SCHEMA}.orders', 'account_id', colocate_with => '{SCHEMA}.accounts')",
            f"SELECT create_distributed_table('{SCHEMA}.transfers', 'account_id', "
            f"colocate_with => '{SCHEMA}.accounts')",
            f"SELECT create_reference_table('{SCHEMA}.regions')",
        ]
    return out


def copy_sql(table: str) -> str:
    return f"COPY {SCHEMA}.{table} ({', '.join(COLUMNS[table])}) FROM STDIN"


def final_contents_sql() -> dict[str, str]:
    """Whole-table reads compared at the end (as multisets)."""
    return {name: f"SELECT {', '.join(COLUMNS[name])} FROM {SCHEMA}.{name}" for name in TABLES}


def _money(rng: random.Random, top: int = 1000) -> Decimal:
    return Decimal(rng.randint(0, top * 100)) / 100


class _NoSink:
    def value(self, domain: str, value_class: str) -> None:
        return None


@dataclass
class Generator:
    """Seeded source of rows and statements; remembers the keys it handed out so DML hits real rows."""

    seed: int
    accounts: int
    orders_per_account: int
    sink: ValueSink = field(default_factory=_NoSink)
    rng: random.Random = field(init=False)
    keys: list[int] = field(init=False, default_factory=list)  # account ids that exist (as far as it knows)
    new_ids: set[int] = field(init=False, default_factory=set)  # transfers.new_id values in use (kept unique)
    next_account: int = field(init=False, default=1)
    next_order: int = field(init=False, default=1)
    next_fresh: int = field(init=False, default=FRESH_BASE)
    index: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    # -- rows ---------------------------------------------------------------------------------------------------
    def initial_rows(self) -> dict[str, list[tuple[Any, ...]]]:
        rng = self.rng
        regions = [(r, f"region-{r}", Decimal(rng.randint(0, 2000)) / 10000) for r in range(1, REGIONS + 1)]
        accounts = [self.account() for _ in range(self.accounts)]
        orders = [self.order(a[0]) for a in accounts for _ in range(self.orders_per_account)]
        transfers = [self.transfer(a[0]) for a in accounts if rng.random() < 0.4]
        notes = [(i, NAMES.draw(rng, self.sink)) for i in range(1, 21)]
        return {"regions": regions, "accounts": accounts, "orders": orders, "transfers": transfers, "notes": notes}

    def account(self, key: int | None = None) -> tuple[Any, ...]:
        if key is None:
            key = self.next_account
            self.next_account += 1
        self.keys.append(key)
        return (key, self.rng.randint(1, REGIONS), _money(self.rng), f"acct-{key}")

    def order(self, account: int) -> tuple[Any, ...]:
        key = self.next_order
        self.next_order += 1
        return (account, key, _money(self.rng, 200), self.rng.choice(STATUSES))

    def transfer(self, account: int) -> tuple[Any, ...]:
        """A transfer row; its new_id is an existing account id (so MERGEs on it match) or a fresh one, unique."""
        new_id = self.existing() if self.rng.random() < 0.5 else self.fresh()
        if new_id in self.new_ids:
            new_id = self.fresh()
        self.new_ids.add(new_id)
        at = TIMESTAMP.draw(self.rng, self.sink)
        return (new_id, account, NUMERIC.draw(self.rng, self.sink), NAMES.draw(self.rng, self.sink), at)

    def fresh(self) -> int:
        self.next_fresh += self.rng.randint(1, 1000)
        return self.next_fresh

    def existing(self) -> int:
        return self.rng.choice(self.keys) if self.keys else 1

    def some_keys(self, count: int) -> list[int]:
        """Existing keys picked uniformly, skewed (hot keys) or colliding (the same two over and over)."""
        pattern = self.rng.choice(("uniform", "skewed", "colliding"))
        self.sink.value("key_pattern", pattern)
        return pick_keys(self.rng, self.keys or [1], count, pattern)

    def edge_key(self) -> int:
        """A new account id from the int64 or int32 edge classes (hashes of extreme values), else a fresh one."""
        domain = self.rng.choice((INT64, INT32))
        key = int(domain.draw(self.rng, self.sink))
        return key if key not in self.keys else self.fresh()

    def copy_batch(self, rows: int) -> Statement:
        """A COPY of new orders for existing accounts (the ingest figure)."""
        batch = tuple(self.order(self.existing()) for _ in range(rows))
        return self.next("copy_orders", copy_sql("orders"), copy_rows=batch)

    def next(self, kind: str, sql: str, **kw: Any) -> Statement:
        stmt = Statement(self.index, kind, sql, **kw)
        self.index += 1
        return stmt


def literal(value: Any) -> str:
    """A SQL literal for a generated value (text escaped, timestamps typed, NULL for None)."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'::timestamptz"
    return str(value)


def values(rows: list[tuple[Any, ...]]) -> str:
    return ", ".join("(" + ", ".join(literal(v) for v in row) + ")" for row in rows)
