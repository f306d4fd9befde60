"""RabbitMQ (reused healthy broker on 5672, or the lab's own) as a Dagster resource."""

from __future__ import annotations

from typing import Any

import pika
import pika.exceptions
from dagster import ConfigurableResource
from pydantic import Field

from regression_pipelines.errors import ResourceConfigError
from resources._network import require_allowed_host

RESOURCE = "RabbitMQResource"


class RabbitMQResource(ConfigurableResource):
    """AMQP 0-9-1 connection settings; `connection()` returns a pika BlockingConnection."""

    host: str = Field(default="127.0.0.1", description="Broker host (loopback unless allow-listed)")
    port: int = Field(default=5672, description="AMQP port (the lab reports which broker it uses)")
    user: str = Field(default="guest", description="User name")
    password: str = Field(default="", description="Password; pass it with EnvVar('REGRESS_RABBITMQ_PASSWORD')")
    vhost: str = Field(default="/", description="Virtual host")
    connect_timeout_s: float = Field(default=5.0, description="Seconds before connecting gives up")
    allowed_hosts: list[str] = Field(default_factory=list, description="Non-loopback hosts you allow")
    management_url: str = Field(
        default="",
        description="Management HTTP API, e.g. http://host:15672 (optional): failed checks then name the policies, "
        "queue arguments and uptime it reports; the lab's broker is asked through rabbitmqctl instead",
    )

    def connection(self) -> pika.BlockingConnection:
        require_allowed_host(RESOURCE, self.host, self.allowed_hosts)
        params = pika.ConnectionParameters(
            host=self.host,
            port=self.port,
            virtual_host=self.vhost,
            credentials=pika.PlainCredentials(self.user, self.password),
            socket_timeout=self.connect_timeout_s,
            blocked_connection_timeout=self.connect_timeout_s,
            connection_attempts=1,
        )
        try:
            return pika.BlockingConnection(params)
        except pika.exceptions.ProbableAuthenticationError:
            raise ResourceConfigError(
                RESOURCE,
                "password",
                f"authentication failed for user {self.user!r}",
                "set REGRESS_RABBITMQ_USER / REGRESS_RABBITMQ_PASSWORD",
                self.password,
            ) from None
        except pika.exceptions.AMQPConnectionError as exc:
            raise ResourceConfigError(
                RESOURCE,
                "host/port",
                f"cannot connect to {self.host}:{self.port} ({type(exc).__name__})",
                "start the lab (`regress lab up`) or set REGRESS_RABBITMQ_HOST / REGRESS_RABBITMQ_PORT",
            ) from None

    def nemesis_endpoint(self) -> dict[str, Any]:
        """The broker as the kit's nemeses see it (no secrets); `probe` publishes one confirmed message to a
        server-named exclusive queue through a fresh connection (a broker in alarm blocks it: not usable)."""

        def probe() -> object:
            require_allowed_host(RESOURCE, self.host, self.allowed_hosts)
            params = pika.ConnectionParameters(
                host=self.host, port=self.port, virtual_host=self.vhost,
                credentials=pika.PlainCredentials(self.user, self.password), socket_timeout=2,
                blocked_connection_timeout=2, connection_attempts=1,
            )  # fmt: skip
            connection = pika.BlockingConnection(params)
            try:
                channel = connection.channel()
                channel.confirm_delivery()
                queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
                channel.basic_publish("", queue, b"probe", mandatory=True)
                return queue
            finally:
                if connection.is_open:
                    connection.close()

        return {"service": "rabbitmq", "host": self.host, "port": self.port, "vhost": self.vhost, "probe": probe}
