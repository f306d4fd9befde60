"""A Patroni cluster behind HAProxy as a Dagster resource, plus its plain client.

Holds endpoints and credentials only; scenarios get a plain `ClusterTarget` (client.py) from `target()` and
read the cluster through view.py, so they stay free of Dagster. `target()` refuses non-loopback hosts unless
allow-listed, and `checked_target()` also proves that the REST API answers before anything else is attempted.
Defaults are Patroni's and HAProxy's usual ports; the lab profile passes the lab's (resources_config.py).
"""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from regression_pipelines.errors import ResourceConfigError
from resources._network import require_allowed_host
from resources.patroni.client import ClusterTarget, Member

RESOURCE = "PatroniResource"


class PatroniResource(ConfigurableResource):
    """Patroni REST API per member, each member's PostgreSQL port, and HAProxy's rw/ro ports."""

    host: str = Field(
        default="127.0.0.1", description="Host of every member and HAProxy (loopback unless allow-listed)"
    )
    member_names: list[str] = Field(default_factory=lambda: ["pg0", "pg1", "pg2"], description="Patroni member names")
    rest_ports: list[int] = Field(default_factory=lambda: [8008] * 3, description="Patroni REST port per member")
    pg_ports: list[int] = Field(default_factory=lambda: [5432] * 3, description="PostgreSQL port per member")
    haproxy_rw_port: int = Field(default=5000, description="HAProxy read-write port (-> /primary)")
    haproxy_ro_port: int = Field(default=5001, description="HAProxy read-only port (-> /replica)")
    user: str = Field(default="postgres", description="SQL role used for probes and the write ledger")
    password: str = Field(default="", description="Its password; pass it with EnvVar('REGRESS_PATRONI_PASSWORD')")
    dbname: str = Field(default="postgres", description="Database for probes and the write ledger")
    rest_username: str = Field(default="", description="Patroni REST basic-auth user (if restapi.authentication)")
    rest_password: str = Field(default="", description="Patroni REST basic-auth password")
    connect_timeout_s: int = Field(default=2, description="Seconds before a SQL connection attempt gives up")
    rest_timeout_s: float = Field(default=1.5, description="Seconds before a REST call gives up")
    allowed_hosts: list[str] = Field(default_factory=list, description="Non-loopback hosts you allow")

    def target(self) -> ClusterTarget:
        require_allowed_host(RESOURCE, self.host, self.allowed_hosts)
        if not (len(self.member_names) == len(self.rest_ports) == len(self.pg_ports)) or not self.member_names:
            raise ResourceConfigError(
                RESOURCE,
                "member_names/rest_ports/pg_ports",
                f"need one REST port and one PostgreSQL port per member, got {len(self.member_names)} names, "
                f"{len(self.rest_ports)} REST ports, {len(self.pg_ports)} PostgreSQL ports",
                "list the members in the same order in all three fields",
            )
        members = tuple(
            Member(n, r, p) for n, r, p in zip(self.member_names, self.rest_ports, self.pg_ports, strict=True)
        )
        return ClusterTarget(
            host=self.host,
            members=members,
            rw_port=self.haproxy_rw_port,
            ro_port=self.haproxy_ro_port,
            user=self.user,
            password=self.password,
            dbname=self.dbname,
            connect_timeout_s=self.connect_timeout_s,
            rest_timeout_s=self.rest_timeout_s,
            rest_auth=(self.rest_username, self.rest_password) if self.rest_username else None,
        )

    def checked_target(self) -> ClusterTarget:
        """`target()`, plus proof that at least one member's REST API answers as Patroni."""
        target = self.target()
        answers = [target.rest(m, "/patroni") for m in target.members]
        if not any(status == 200 and isinstance(body, dict) and "role" in body for status, body in answers):
            urls = ", ".join(target.rest_url(m, "/patroni") for m in target.members)
            raise ResourceConfigError(
                RESOURCE,
                "host/rest_ports",
                f"no Patroni REST API answered at {urls}",
                "start the lab (`regress lab up`) or set the Patroni host and REST ports",
                self.password,
                self.rest_password,
            )
        return target

    def nemesis_endpoint(self) -> dict[str, Any]:
        """The cluster as the kit's nemeses see it (no secrets): HAProxy's rw port and each member's ports;
        `probe` writes through HAProxy's rw port with a fresh connection (usable = a primary takes writes)."""

        def probe() -> object:
            with self.target().connect(self.haproxy_rw_port) as conn:
                return conn.execute("SELECT txid_current()").fetchone()

        members = [
            {"name": n, "rest_port": r, "pg_port": p}
            for n, r, p in zip(self.member_names, self.rest_ports, self.pg_ports, strict=False)
        ]
        return {
            "service": "patroni", "host": self.host, "port": self.haproxy_rw_port, "members": members,
            "user": self.user, "dbname": self.dbname, "probe": probe,
        }  # fmt: skip
