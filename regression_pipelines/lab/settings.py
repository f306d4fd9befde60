"""Where the local lab lives and which loopback ports it uses.

One place for every lab port and credential, so the lab, the resources and the tests agree. Every value can
be overridden from the environment (REGRESS_LAB_*), and REGRESS_LAB_PORT_OFFSET shifts every port at once so
two labs (e.g. two checkouts) can run side by side.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from regression_pipelines.matrix.citus_install import PINNED_VERSION as PINNED_CITUS_VERSION

REPO_ROOT = Path(__file__).resolve().parents[2]
LAB_HOST = "127.0.0.1"
# `regress serve`'s processes listen at these plus the offset too (serve/topology.py), so the layout check
# covers them: an offset of 1000 would put the webserver on the default lab's code server port.
SERVE_WEBSERVER_BASE_PORT, SERVE_GRPC_BASE_PORT = 3000, 4000
OFFSET_ENV = "REGRESS_LAB_PORT_OFFSET"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer port number; set it to e.g. {default}") from None


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean; set it to true or false")


# Until issue 7 the lab reused a broker on 5672 by default; true now fails loudly instead of being ignored.
RETIRED_REUSE_FLAG = "REGRESS_LAB_RABBITMQ_REUSE_DEFAULT"


@dataclass(frozen=True)
class LabSettings:
    """Ports and credentials of the lab. Defaults avoid the services' standard ports."""

    lab_dir: Path = field(default_factory=lambda: Path(os.environ.get("REGRESS_LAB_DIR", REPO_ROOT / ".lab")))
    postgres_port: int = 15432
    patroni_pg_ports: tuple[int, int, int] = (15433, 15434, 15435)
    patroni_rest_ports: tuple[int, int, int] = (18008, 18009, 18010)
    etcd_client_port: int = 12379
    etcd_peer_port: int = 12380
    haproxy_rw_port: int = 15000
    haproxy_ro_port: int = 15001
    haproxy_stats_port: int = 17000
    redis_port: int = 16379
    rabbitmq_port: int = 15673
    alertmanager_port: int = 19093
    # Dagster's own storage (`regress serve`): a private PostgreSQL that no area ever tests.
    dagster_storage_port: int = 15480
    # Lab-only credentials (loopback lab, never a real system). Resources read them through EnvVar.
    postgres_user: str = "regress"
    postgres_password: str = field(default="regress-lab-pw", repr=False)
    postgres_db: str = "regress"
    patroni_superuser_password: str = field(default="patroni-lab-pw", repr=False)
    patroni_replication_password: str = field(default="replicator-lab-pw", repr=False)
    rabbitmq_user: str = "guest"
    rabbitmq_password: str = field(default="guest", repr=False)
    dagster_storage_user: str = "dagster"
    dagster_storage_password: str = field(default="dagster-storage-lab-pw", repr=False)
    dagster_storage_db: str = "dagster"
    # Added for the lab runner: every name and port derives from settings so two labs can coexist.
    rabbitmq_dist_port: int = 25673
    rabbitmq_epmd_port: int = 14369
    # "host:port" of an outside RabbitMQ to use instead of the lab's own broker (rabbitmq_user/password).
    # Empty (the default): the lab runs its own, so destructive broker faults only hit a lab-started broker.
    rabbitmq_reuse: str = ""
    patroni_synchronous_mode: bool = False
    # Empty means http://127.0.0.1:<alertmanager_port + 1>/alerts (filled in by __post_init__).
    alertmanager_webhook_url: str = ""
    # Citus (optional: started only when a build of citus_version is installed): coordinator, 2 workers.
    citus_ports: tuple[int, int, int] = (15436, 15437, 15438)
    citus_superuser_password: str = field(default="citus-lab-pw", repr=False)
    # The Citus release the lab runs, from its private install (`make citus`, matrix.citus_install); "system"
    # runs the machine's own PostgreSQL 15 if Citus was `make install`ed into it.
    citus_version: str = PINNED_CITUS_VERSION

    def __post_init__(self) -> None:
        if not self.alertmanager_webhook_url:
            url = f"http://{LAB_HOST}:{self.alertmanager_port + 1}/alerts"
            object.__setattr__(self, "alertmanager_webhook_url", url)
        _ = self.rabbitmq_reuse_address  # a malformed value fails here, naming the setting

    @property
    def rabbitmq_reuse_address(self) -> tuple[str, int] | None:
        """(host, port) of the outside broker named by rabbitmq_reuse, or None when the lab runs its own."""
        raw = self.rabbitmq_reuse.strip()
        if not raw:
            return None
        host, _, port = raw.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                f"REGRESS_LAB_RABBITMQ_REUSE={raw!r} must be host:port of a running broker, e.g. 127.0.0.1:5672 "
                "(or empty, so the lab starts its own)"
            )
        return host or LAB_HOST, int(port)

    @property
    def lab_name(self) -> str:
        """A name unique per lab (ports differ between coexisting labs), used for node/cluster names."""
        return f"regress-lab-{self.etcd_client_port}"

    @property
    def rabbitmq_nodename(self) -> str:
        return f"regress-lab-{self.rabbitmq_port}@localhost"

    @property
    def patroni_members(self) -> tuple[str, str, str]:
        return ("pg0", "pg1", "pg2")

    @classmethod
    def from_env(cls) -> LabSettings:
        if _env_bool(RETIRED_REUSE_FLAG, False):
            raise ValueError(
                f"{RETIRED_REUSE_FLAG} is retired: the lab now starts its own RabbitMQ. To use an outside broker, "
                f"set REGRESS_LAB_RABBITMQ_REUSE=127.0.0.1:5672 instead (and unset {RETIRED_REUSE_FLAG})"
            )
        offset = _env_int(OFFSET_ENV, 0)
        base = cls()
        overrides: dict[str, object] = {}
        for f in fields(cls):
            value = getattr(base, f.name)
            env_name = "REGRESS_LAB_" + f.name.upper()
            if isinstance(value, bool):
                if env_name in os.environ:
                    overrides[f.name] = _env_bool(env_name, value)
            elif isinstance(value, int):
                overrides[f.name] = _env_int(env_name, value + offset)
            elif isinstance(value, tuple):
                raw = os.environ.get(env_name)
                if raw:
                    try:
                        overrides[f.name] = tuple(int(p) for p in raw.split(","))
                    except ValueError:
                        raise ValueError(
                            f"{env_name}={raw!r} must be three comma-separated ports, e.g. "
                            + ",".join(str(p) for p in value)
                        ) from None
                else:
                    overrides[f.name] = tuple(p + offset for p in value)
            elif isinstance(value, str) and env_name in os.environ:
                overrides[f.name] = os.environ[env_name]
        settings = cls(**overrides)  # type: ignore[arg-type]
        from regression_pipelines.lab.ports import check_layout  # here: ports reads the service registry

        check_layout(settings, offset)
        return settings


def lab_env_defaults(settings: LabSettings | None = None) -> dict[str, str]:
    """The lab's facts as the REGRESS_* values the lab profile gives the resources (resources_config.py);
    nothing writes them into the environment. The broker is the lab's own (rabbitmq_port), or the outside one
    rabbitmq_reuse names.
    """
    s = settings or LabSettings.from_env()
    broker_host, broker_port = s.rabbitmq_reuse_address or (LAB_HOST, s.rabbitmq_port)
    return {
        "REGRESS_PG_HOST": LAB_HOST,
        "REGRESS_PG_PORT": str(s.postgres_port),
        "REGRESS_PG_USER": s.postgres_user,
        "REGRESS_PG_PASSWORD": s.postgres_password,
        "REGRESS_PG_DB": s.postgres_db,
        "REGRESS_REDIS_PORT": str(s.redis_port),
        "REGRESS_RABBITMQ_HOST": broker_host,
        "REGRESS_RABBITMQ_PORT": str(broker_port),
        "REGRESS_RABBITMQ_PASSWORD": s.rabbitmq_password,
        "REGRESS_PATRONI_PASSWORD": s.patroni_superuser_password,
        "REGRESS_CITUS_PORT": str(s.citus_ports[0]),
        "REGRESS_CITUS_USER": s.postgres_user,
        "REGRESS_CITUS_PASSWORD": s.postgres_password,
        "REGRESS_CITUS_DB": s.postgres_db,
        "REGRESS_CITUS_SUPERUSER_PASSWORD": s.citus_superuser_password,
    }
