"""Resource limits hit mid-run, set the way an operator sets them, and restored at heal.

- Redis: `maxmemory` just above the memory in use (20 kB of headroom, the margin that crashed cache_coherence
  in issue 17), with `allkeys-random` (keys vanish) or `noeviction` (writes get OOM errors).
- RabbitMQ: a memory alarm (`set_vm_memory_high_watermark 0`) or a disk alarm (`set_disk_free_limit` above
  the free space): the broker blocks every publishing connection until the alarm clears.
- PostgreSQL: `max_connections` needs a server restart (itself a restart nemesis, and it would also refuse the
  operator); the lighter equivalent chosen here is a `CONNECTION LIMIT` on each non-superuser role connected to
  the area's database, set to the connections it holds now: running sessions go on, any new connection gets
  "too many connections for role", exactly what a full server gives a client. The previous limits are restored.
"""

from __future__ import annotations

import contextlib
from typing import Any

from psycopg import sql

from regression_pipelines.kit.nemeses import lab
from regression_pipelines.kit.nemeses.base import Endpoint, NemesisError, Target
from regression_pipelines.kit.nemeses.service import ServiceNemesis
from regression_pipelines.lab.settings import LabSettings

REDIS_HEADROOM_BYTES = 20_000


class RedisMaxmemory(ServiceNemesis):
    service = "redis"
    destructive = True
    policy = "allkeys-random"

    def act(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        client = lab.redis_admin(s)
        try:
            before = {
                "maxmemory": client.config_get("maxmemory")["maxmemory"],
                "maxmemory-policy": client.config_get("maxmemory-policy")["maxmemory-policy"],
            }
            self.state(target)["before"] = before
            used = int(client.info("memory")["used_memory"])
            limit = used + REDIS_HEADROOM_BYTES
            client.config_set("maxmemory-policy", self.policy)
            client.config_set("maxmemory", str(limit))
        finally:
            client.close()
        return f"maxmemory {limit} bytes ({REDIS_HEADROOM_BYTES} above the {used} in use), policy {self.policy}"

    def heal(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        before = self.state(target).pop("before", None)
        if before is None:
            return "nothing to restore"
        client = lab.redis_admin(s)
        try:
            client.config_set("maxmemory", before["maxmemory"])
            client.config_set("maxmemory-policy", before["maxmemory-policy"])
        finally:
            client.close()
        return f"restored maxmemory {before['maxmemory']}, policy {before['maxmemory-policy']}"

    def healed(self, s: LabSettings, target: Target, endpoint: Endpoint) -> bool:
        return "before" not in self.state(target)


class RedisMaxmemoryRandom(RedisMaxmemory):
    name = "redis_maxmemory_random"
    description = "sets Redis maxmemory 20 kB above the memory in use with allkeys-random eviction (keys vanish)"


class RedisMaxmemoryNoeviction(RedisMaxmemory):
    name = "redis_maxmemory_noeviction"
    policy = "noeviction"
    description = "sets Redis maxmemory 20 kB above the memory in use with noeviction (writes get OOM errors)"


class RabbitmqAlarm(ServiceNemesis):
    service = "rabbitmq"
    destructive = True
    read: str  # an Erlang expression giving the current setting
    command: str

    def fault_value(self) -> str:
        raise NotImplementedError

    def restore_args(self, before: str) -> list[str]:
        return [before]

    def act(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        before = lab.rabbitmqctl(s, "eval", self.read).strip()
        self.state(target)["before"] = before
        lab.rabbitmqctl(s, self.command, self.fault_value())
        return f"{self.command} {self.fault_value()} (was {before}): publishers are blocked"

    def heal(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        before = self.state(target).pop("before", None)
        if before is None:
            return "nothing to restore"
        lab.rabbitmqctl(s, self.command, *self.restore_args(before))
        return f"{self.command} restored to {before}"

    def healed(self, s: LabSettings, target: Target, endpoint: Endpoint) -> bool:
        alarms = lab.rabbitmqctl(s, "eval", "rabbit_alarm:get_alarms().")
        return "resource_limit" not in alarms


class RabbitmqMemoryAlarm(RabbitmqAlarm):
    name = "rabbitmq_memory_alarm"
    description = "raises the broker's memory alarm (set_vm_memory_high_watermark 0): publishers block until healed"
    read = "vm_memory_monitor:get_vm_memory_high_watermark()."
    command = "set_vm_memory_high_watermark"

    def fault_value(self) -> str:
        return "0"

    def restore_args(self, before: str) -> list[str]:
        if before.startswith("{absolute"):  # {absolute,N}
            return ["absolute", before.strip("{}").split(",")[1]]
        return [before]


class RabbitmqDiskAlarm(RabbitmqAlarm):
    name = "rabbitmq_disk_alarm"
    description = (
        "raises the broker's disk alarm (set_disk_free_limit above the free space): publishers block until healed"  # noqa: E501
    )
    read = "rabbit_disk_monitor:get_disk_free_limit()."
    command = "set_disk_free_limit"

    def fault_value(self) -> str:
        return "100000GB"


ROLES_CONNECTED = """
SELECT r.rolname, r.rolconnlimit, count(*)
FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.backend_type = 'client backend' AND a.datname = %s AND NOT r.rolsuper
GROUP BY r.rolname, r.rolconnlimit
"""


class PostgresConnectionLimit(ServiceNemesis):
    name = "postgres_connection_limit"
    service = "postgres"
    destructive = True
    description = "sets CONNECTION LIMIT on every non-superuser role connected to the area's database to the connections it holds: new connections are refused until healed"  # noqa: E501

    def act(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        dbname = str(endpoint.extra.get("dbname") or s.postgres_db)
        user = str(endpoint.extra.get("user") or s.postgres_user)
        with lab.pg_admin(s, dbname) as conn:
            rows = {name: (limit, held) for name, limit, held in conn.execute(ROLES_CONNECTED, (dbname,)).fetchall()}
            if user not in rows:  # the area's login role is limited even when it holds no connection right now
                limit = conn.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
                if limit is None:
                    raise NemesisError(f"role {user!r} does not exist")
                rows[user] = (limit[0], 0)
            before: dict[str, Any] = {}
            for role, (limit, held) in rows.items():
                before[role] = limit
                self.state(target)["before"] = before
                conn.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(sql.Identifier(role), held))
        return "connection limit = connections held: " + ", ".join(f"{r} {h}" for r, (_, h) in sorted(rows.items()))

    def heal(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        before = self.state(target).pop("before", None)
        if not before:
            return "nothing to restore"
        dbname = str(endpoint.extra.get("dbname") or s.postgres_db)
        gone = []
        with lab.pg_admin(s, dbname) as conn:
            for role, limit in before.items():
                try:
                    conn.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(sql.Identifier(role), limit))
                except Exception:  # a per-run role the run has dropped meanwhile
                    with contextlib.suppress(Exception):
                        conn.rollback()
                    gone.append(role)
        note = f" ({', '.join(gone)} gone)" if gone else ""
        return "connection limits restored: " + ", ".join(f"{r} {v}" for r, v in sorted(before.items())) + note

    def healed(self, s: LabSettings, target: Target, endpoint: Endpoint) -> bool:
        return "before" not in self.state(target)


NEMESES = (
    RedisMaxmemoryRandom(),
    RedisMaxmemoryNoeviction(),
    RabbitmqMemoryAlarm(),
    RabbitmqDiskAlarm(),
    PostgresConnectionLimit(),
)
