"""Killed client connections, the way an operator or a failing proxy does it: the server drops its clients.

PostgreSQL: `pg_terminate_backend` of every client backend of a non-superuser role in the area's database;
Redis: `CLIENT KILL TYPE normal` (every normal client but the one asking); RabbitMQ: `rabbitmqctl
close_all_connections`. One shot at the start; the window is the time the area has to reconnect before its
workload ends. Destructive: on a shared server it also drops other clients.
"""

from __future__ import annotations

import time

from regression_pipelines.kit.nemeses import lab
from regression_pipelines.kit.nemeses.base import Endpoint, NemesisError, Target
from regression_pipelines.kit.nemeses.service import ServiceNemesis
from regression_pipelines.lab.settings import LabSettings

WAIT_FOR_CLIENTS_S = 3.0
TERMINATE = """
SELECT a.pid, r.rolname, pg_terminate_backend(a.pid)
FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.backend_type = 'client backend' AND a.datname = %s AND a.pid <> pg_backend_pid() AND NOT r.rolsuper
"""


class PostgresKillConnections(ServiceNemesis):
    name = "postgres_kill_connections"
    service = "postgres"
    destructive = True
    description = "terminates every non-superuser client backend of the area's database (pg_terminate_backend)"

    def act(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        """Terminate the clients there are; wait up to WAIT_FOR_CLIENTS_S for one (an area's workers may still be
        connecting), and say "nothing to act on" rather than report a fault that never touched anyone."""
        dbname = str(endpoint.extra.get("dbname") or s.postgres_db)
        deadline = time.monotonic() + WAIT_FOR_CLIENTS_S
        with lab.pg_admin(s, dbname) as conn:
            while not (rows := conn.execute(TERMINATE, (dbname,)).fetchall()) and time.monotonic() < deadline:
                time.sleep(0.1)
        if not rows:
            raise NemesisError(
                f"nothing to act on: no non-superuser client backend on {dbname} within {WAIT_FOR_CLIENTS_S:g} s"
            )
        roles = sorted({row[1] for row in rows})
        return f"terminated {sum(1 for row in rows if row[2])} backends of {dbname} (roles {', '.join(roles)})"

    def heal(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        return "nothing to heal (clients reconnect on their own)"


class RedisKillConnections(ServiceNemesis):
    name = "redis_kill_connections"
    service = "redis"
    destructive = True
    description = "closes every normal Redis client connection (CLIENT KILL TYPE normal)"

    def act(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        client = lab.redis_admin(s)
        try:
            killed = client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        finally:
            client.close()
        return f"closed {killed} Redis client connections"

    def heal(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        return "nothing to heal (clients reconnect on their own)"


class RabbitmqKillConnections(ServiceNemesis):
    name = "rabbitmq_kill_connections"
    service = "rabbitmq"
    destructive = True
    description = "closes every AMQP connection of the lab's broker (rabbitmqctl close_all_connections)"

    def act(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        said = lab.rabbitmqctl(s, "close_all_connections", f"regress nemesis {self.name} ({target.area})")
        return f"closed every AMQP connection of the lab broker{f' ({said[:120]})' if said else ''}"

    def heal(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        return "nothing to heal (clients reconnect on their own)"


NEMESES = (PostgresKillConnections(), RedisKillConnections(), RabbitmqKillConnections())
