"""Where a Patroni cluster lives and how to talk to it: REST per member, SQL per member and via HAProxy.

Plain Python (no Dagster): the resource builds a `ClusterTarget`, every scenario takes one. Every network
call here has a short timeout, because these helpers run while members are killed or paused.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import psycopg

from regression_pipelines.errors import mask_secrets

READ_ONLY_SQLSTATE = "25006"  # read_only_sql_transaction: a standby refused a write


@dataclass(frozen=True)
class Member:
    name: str
    rest_port: int
    pg_port: int


@dataclass(frozen=True)
class ClusterTarget:
    """Endpoints and credentials of one Patroni cluster behind HAProxy."""

    host: str
    members: tuple[Member, ...]
    rw_port: int
    ro_port: int
    user: str
    password: str = field(repr=False)
    dbname: str = "postgres"
    connect_timeout_s: int = 2
    rest_timeout_s: float = 1.5
    rest_auth: tuple[str, str] | None = field(default=None, repr=False)

    def member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(f"no member named {name!r} (known: {[m.name for m in self.members]})")

    def member_by_pg_port(self, port: int) -> Member | None:
        return next((m for m in self.members if m.pg_port == port), None)

    def rest_url(self, member: Member, path: str) -> str:
        return f"http://{self.host}:{member.rest_port}{path}"

    def mask(self, text: str) -> str:
        return mask_secrets(text, self.password, self.rest_auth[1] if self.rest_auth else None)

    # --- SQL -------------------------------------------------------------------------------------------------
    def conninfo(self, port: int, statement_timeout_ms: int = 3000) -> str:
        return psycopg.conninfo.make_conninfo(
            host=self.host,
            port=port,
            user=self.user,
            password=self.password or None,
            dbname=self.dbname,
            connect_timeout=self.connect_timeout_s,
            application_name="regression_pipelines.ha",
            options=f"-c statement_timeout={statement_timeout_ms}",
            # A paused server must not hang a client forever: give up on unacknowledged data quickly.
            tcp_user_timeout=max(1000, statement_timeout_ms),
            keepalives=1,
            keepalives_idle=1,
            keepalives_interval=1,
            keepalives_count=2,
        )

    def connect(self, port: int, statement_timeout_ms: int = 3000) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(port, statement_timeout_ms), autocommit=True)

    # --- REST ------------------------------------------------------------------------------------------------
    def rest(
        self,
        member: Member,
        path: str,
        method: str = "GET",
        body: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> tuple[int, Any]:
        """(HTTP status, parsed JSON or text); status 0 means no answer (member down or paused)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.rest_url(member, path), data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.rest_auth:
            import base64

            token = base64.b64encode(f"{self.rest_auth[0]}:{self.rest_auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s or self.rest_timeout_s) as response:
                return response.status, _parse(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _parse(exc.read())
        except (OSError, ValueError):
            return 0, None


def _parse(raw: bytes) -> Any:
    text = raw.decode(errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text
