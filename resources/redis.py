"""Redis (the lab's cache server by default) as a Dagster resource."""

from __future__ import annotations

from typing import Any

import redis
from dagster import ConfigurableResource
from pydantic import Field

from regression_pipelines.errors import ResourceConfigError, mask_secrets
from resources._network import require_allowed_host

RESOURCE = "RedisResource"


class RedisResource(ConfigurableResource):
    """Connection settings for one Redis server; `client()` returns a checked `redis.Redis`."""

    host: str = Field(default="127.0.0.1", description="Server host (loopback unless allow-listed)")
    port: int = Field(default=6379, description="Server port (the lab profile passes the lab's)")
    password: str = Field(default="", description="Password (AUTH); pass it with EnvVar('REGRESS_REDIS_PASSWORD')")
    db: int = Field(default=0, description="Logical database number")
    socket_timeout_s: float = Field(default=5.0, description="Seconds before a command gives up")
    allowed_hosts: list[str] = Field(default_factory=list, description="Non-loopback hosts you allow")

    def client(self, pool_size: int = 32) -> redis.Redis:
        require_allowed_host(RESOURCE, self.host, self.allowed_hosts)
        pool = redis.BlockingConnectionPool(
            host=self.host,
            port=self.port,
            password=self.password or None,
            db=self.db,
            socket_timeout=self.socket_timeout_s,
            socket_connect_timeout=self.socket_timeout_s,
            max_connections=pool_size,
            decode_responses=True,
        )
        client = redis.Redis(connection_pool=pool)
        try:
            client.ping()
        except redis.AuthenticationError as exc:
            raise ResourceConfigError(
                RESOURCE,
                "password",
                f"authentication failed ({exc})",
                "set REGRESS_REDIS_PASSWORD",
                self.password,
            ) from None
        except redis.ConnectionError as exc:
            raise ResourceConfigError(
                RESOURCE,
                "host/port",
                f"cannot connect to {self.host}:{self.port} ({mask_secrets(str(exc), self.password)})",
                "start the lab (`regress lab up`) or set REGRESS_REDIS_HOST / REGRESS_REDIS_PORT",
            ) from None
        return client

    def server_version(self) -> str:
        return str(self.client(pool_size=1).info("server")["redis_version"])

    def nemesis_endpoint(self) -> dict[str, Any]:
        """The server as the kit's nemeses see it (no secrets); `probe` writes a short-lived key, fresh client."""

        def probe() -> object:
            require_allowed_host(RESOURCE, self.host, self.allowed_hosts)
            timeout = min(self.socket_timeout_s, 2.0)
            client = redis.Redis(
                host=self.host, port=self.port, password=self.password or None, db=self.db,
                socket_timeout=timeout, socket_connect_timeout=timeout,
            )  # fmt: skip
            try:
                return client.set("regress:nemesis:probe", "1", px=1000)
            finally:
                client.close()

        return {"service": "redis", "host": self.host, "port": self.port, "db": self.db, "probe": probe}
