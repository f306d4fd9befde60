"""Faults on what the run created, from outside its code: the silent kinds that issue 17 found guessed wrongly.

- PostgreSQL, on every table the run registered (kind "table", schema-qualified): an outside writer (as the
  superuser, so row-level security does not stop it) deleting and editing rows during the window; a BEFORE
  INSERT OR UPDATE trigger that silently drops one row in ten (RETURN NULL); a conditional `DO INSTEAD NOTHING`
  rule on INSERT that does the same (and makes INSERT ... RETURNING fail, as rules do).
- RabbitMQ, on every queue the run registered (kind "queue"): an operator policy that caps the queues
  (`max-length` 10, the default drop-head overflow: the oldest messages are dropped) or gives their messages a
  100 ms TTL. Applied at a priority above any policy of the run's; removed at heal.

Not destructive: each acts only on the run's own objects (and undoes what it added at heal).
"""

from __future__ import annotations

import json
import random
import re

from psycopg import sql

from regression_pipelines.kit.nemeses import lab
from regression_pipelines.kit.nemeses.base import Endpoint, NemesisError, Target
from regression_pipelines.kit.nemeses.service import ServiceNemesis, Window
from regression_pipelines.lab.settings import LabSettings

TRIGGER = "regress_nemesis_drop_rows"
RULE = "regress_nemesis_drop_inserts"
POLICY_PRIORITY = 999
DROP_ONE_IN = 10

EDITABLE = """
SELECT a.attname, t.typcategory
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
  AND t.typcategory IN ('N', 'S')
  AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND a.attnum = ANY(i.indkey))
ORDER BY a.attnum
"""


def table_identifier(name: str) -> sql.Identifier:
    """'schema.table' (or 'table') as a quoted identifier; the run registers names it made."""
    return sql.Identifier(*name.split(".", 1))


class PostgresTableNemesis(ServiceNemesis):
    service = "postgres"
    destructive = False
    objects = "table"

    def dbname(self, s: LabSettings, endpoint: Endpoint) -> str:
        return str(endpoint.extra.get("dbname") or s.postgres_db)


class PostgresOutsideWriter(PostgresTableNemesis):
    name = "postgres_outside_writer"
    description = "an outside session deletes one row and edits another (a non-key number or text column) in each of the run's tables every 0.25 s during nemesis_for_s"  # noqa: E501

    def act(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        dbname, rng = self.dbname(s, endpoint), random.Random(f"{self.name}:{target.seed}")
        tally = {"deleted": 0, "edited": 0}

        def tick() -> str | None:
            with lab.pg_admin(s, dbname) as conn:
                for table in target.created("table"):
                    tally["deleted"] += _delete_one(conn, table, rng)
                    tally["edited"] += _edit_one(conn, table, rng)
            return "tick"

        self.state(target).update(window=Window(self.name, tick), tally=tally)
        return f"outside writer started on {', '.join(target.created('table'))}"

    def heal(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        window = self.state(target).pop("window", None)
        if window is None:
            return "no outside writer running"
        ran = window.stop()
        tally = self.state(target).get("tally", {})
        return f"outside writer stopped ({ran}): deleted {tally['deleted']} rows, edited {tally['edited']}"


def _delete_one(conn: object, table: str, rng: random.Random) -> int:
    statement = sql.SQL(
        "DELETE FROM {t} WHERE ctid = (SELECT ctid FROM {t} OFFSET floor(random() * "
        "greatest((SELECT count(*) FROM {t}), 1))::int LIMIT 1)"
    ).format(t=table_identifier(table))
    return conn.execute(statement).rowcount  # type: ignore[attr-defined]


def _edit_one(conn: object, table: str, rng: random.Random) -> int:
    columns = conn.execute(EDITABLE, (table,)).fetchall()  # type: ignore[attr-defined]
    if not columns:
        return 0
    column, category = rng.choice(columns)
    change = "{c} + 1" if category == "N" else "{c} || ' (edited by nemesis)'"
    statement = sql.SQL(
        "UPDATE {t} SET {c} = " + change + " WHERE ctid = (SELECT ctid FROM {t} OFFSET floor(random() * "
        "greatest((SELECT count(*) FROM {t}), 1))::int LIMIT 1)"
    ).format(t=table_identifier(table), c=sql.Identifier(column))
    return conn.execute(statement).rowcount  # type: ignore[attr-defined]


class PostgresDropRowsTrigger(PostgresTableNemesis):
    name = "postgres_drop_rows_trigger"
    description = "adds a BEFORE INSERT OR UPDATE trigger to each of the run's tables that silently drops one row in ten (RETURN NULL)"  # noqa: E501

    def act(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        tables = target.created("table")
        self.state(target)["tables"] = tables
        with lab.pg_admin(s, self.dbname(s, endpoint)) as conn:
            for table in tables:
                schema = table.split(".", 1)[0] if "." in table else "public"
                function = sql.Identifier(schema, TRIGGER)
                conn.execute(
                    sql.SQL(
                        "CREATE OR REPLACE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                        "IF abs(hashtext(NEW::text)) % {n} = 0 THEN RETURN NULL; END IF; RETURN NEW; END $$"
                    ).format(f=function, n=sql.Literal(DROP_ONE_IN))
                )
                conn.execute(
                    sql.SQL(
                        "CREATE OR REPLACE TRIGGER {name} BEFORE INSERT OR UPDATE ON {t} FOR EACH ROW EXECUTE "
                        "FUNCTION {f}()"
                    ).format(name=sql.Identifier(TRIGGER), t=table_identifier(table), f=function)
                )
        return f"trigger {TRIGGER} drops one row in {DROP_ONE_IN} on {', '.join(tables)}"

    def heal(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        tables = self.state(target).pop("tables", [])
        with lab.pg_admin(s, self.dbname(s, endpoint)) as conn:
            for table in tables:  # every trigger first: tables of one schema share its function
                if _exists(conn, table):
                    conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                        sql.Identifier(TRIGGER), table_identifier(table)))  # fmt: skip
            for schema in dict.fromkeys(t.split(".", 1)[0] if "." in t else "public" for t in tables):
                conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(sql.Identifier(schema, TRIGGER)))
        return f"trigger removed from {len(tables)} tables"

    def healed(self, s: LabSettings, target: Target, endpoint: Endpoint) -> bool:
        with lab.pg_admin(s, self.dbname(s, endpoint)) as conn:
            return conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname = %s", (TRIGGER,)).fetchone()[0] == 0


class PostgresDropInsertsRule(PostgresTableNemesis):
    name = "postgres_drop_inserts_rule"
    description = "adds a conditional ON INSERT DO INSTEAD NOTHING rule to each of the run's tables: one insert in ten silently vanishes (INSERT ... RETURNING fails)"  # noqa: E501

    def act(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        tables = target.created("table")
        self.state(target)["tables"] = tables
        with lab.pg_admin(s, self.dbname(s, endpoint)) as conn:
            for table in tables:
                conn.execute(
                    sql.SQL(
                        "CREATE OR REPLACE RULE {r} AS ON INSERT TO {t} WHERE abs(hashtext(NEW::text)) % {n} = 0 "
                        "DO INSTEAD NOTHING"
                    ).format(r=sql.Identifier(RULE), t=table_identifier(table), n=sql.Literal(DROP_ONE_IN))
                )
        return f"rule {RULE} drops one insert in {DROP_ONE_IN} on {', '.join(tables)}"

    def heal(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        tables = self.state(target).pop("tables", [])
        with lab.pg_admin(s, self.dbname(s, endpoint)) as conn:
            for table in tables:
                if _exists(conn, table):
                    conn.execute(sql.SQL("DROP RULE IF EXISTS {} ON {}").format(
                        sql.Identifier(RULE), table_identifier(table)))  # fmt: skip
        return f"rule removed from {len(tables)} tables"

    def healed(self, s: LabSettings, target: Target, endpoint: Endpoint) -> bool:
        with lab.pg_admin(s, self.dbname(s, endpoint)) as conn:
            return conn.execute("SELECT count(*) FROM pg_rules WHERE rulename = %s", (RULE,)).fetchone()[0] == 0


def _exists(conn: object, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]  # type: ignore[attr-defined]


# -- RabbitMQ policies on the run's queues ----------------------------------------------------------------------


class RabbitmqQueuePolicy(ServiceNemesis):
    service = "rabbitmq"
    destructive = False
    objects = "queue"
    definition: dict[str, object]

    def policy_name(self, target: Target) -> str:
        return f"regress-nemesis-{self.name}-{target.area}"

    def act(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        queues = target.created("queue")
        pattern = "^(" + "|".join(re.escape(q) for q in queues) + ")$"
        vhost = str(endpoint.extra.get("vhost") or "/")
        name = self.policy_name(target)
        self.state(target)["policy"] = (name, vhost)
        lab.rabbitmqctl(
            s, "set_policy", "-p", vhost, "--priority", str(POLICY_PRIORITY), "--apply-to", "queues",
            name, pattern, json.dumps(self.definition),
        )  # fmt: skip
        return f"policy {name} {json.dumps(self.definition)} on {', '.join(queues)}"

    def heal(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        policy = self.state(target).pop("policy", None)
        if policy is None:
            return "no policy set"
        name, vhost = policy
        try:
            lab.rabbitmqctl(s, "clear_policy", "-p", vhost, name)
        except NemesisError as exc:
            if "does not exist" not in str(exc).lower():
                raise
        return f"policy {name} cleared"

    def healed(self, s: LabSettings, target: Target, endpoint: Endpoint) -> bool:
        vhost = str(endpoint.extra.get("vhost") or "/")
        listed = lab.rabbitmqctl(s, "list_policies", "-p", vhost, "--no-table-headers")
        return self.policy_name(target) not in [line.split("\t")[1] for line in listed.splitlines() if "\t" in line]


class RabbitmqMaxLengthPolicy(RabbitmqQueuePolicy):
    name = "rabbitmq_max_length_policy"
    description = "an operator policy caps each of the run's queues at 10 messages (drop-head: the oldest are dropped) during nemesis_for_s"  # noqa: E501
    definition = {"max-length": 10, "overflow": "drop-head"}  # noqa: RUF012


class RabbitmqTtlPolicy(RabbitmqQueuePolicy):
    name = "rabbitmq_ttl_policy"
    description = "an operator policy gives messages in each of the run's queues a 100 ms TTL (expired: dropped or dead-lettered) during nemesis_for_s"  # noqa: E501
    definition = {"message-ttl": 100}  # noqa: RUF012


NEMESES = (
    PostgresOutsideWriter(),
    PostgresDropRowsTrigger(),
    PostgresDropInsertsRule(),
    RabbitmqMaxLengthPolicy(),
    RabbitmqTtlPolicy(),
)
