"""Resource instances for the code location: lab defaults, every field overridable from the environment.

The one place where lab settings meet resources (resources/ never imports the lab): lab ports and lab-only
credentials become environment defaults or explicit config here.
"""

from __future__ import annotations

import os

import dagster as dg

from regression_pipelines.lab.settings import LAB_HOST, LabSettings, lab_env_defaults
from resources.alerting import AlertingResource
from resources.citus import CitusResource
from resources.delta import DeltaLakeResource
from resources.patroni import PatroniResource
from resources.postgres import PostgresResource
from resources.rabbitmq import RabbitMQResource
from resources.redis import RedisResource
from resources.warehouse import WarehouseResource


def apply_lab_defaults() -> None:
    """Point unset REGRESS_* variables at the lab, so EnvVar resolves and secrets stay out of config."""
    for name, value in lab_env_defaults().items():
        os.environ.setdefault(name, value)


ALLOWED_HOSTS_ENV = "REGRESS_ALLOWED_HOSTS"


def allowed_hosts() -> list[str]:
    """Non-loopback hosts the team allows every resource to reach (REGRESS_ALLOWED_HOSTS, comma-separated):
    how a deployment points the resources at its real clusters without a resources block in run config
    (which would replace the resource's environment-set fields, passwords included)."""
    return [h.strip() for h in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",") if h.strip()]


def _optional_secret(name: str) -> dg.EnvVar | str:
    """A secret read through EnvVar when set (the UI then shows only its name); no password otherwise."""
    return dg.EnvVar(name) if os.environ.get(name) else ""


def lab_patroni(settings: LabSettings | None = None, **overrides: object) -> PatroniResource:
    """The lab's Patroni cluster (REGRESS_LAB_PORT_OFFSET honoured); used by the code location and tests."""
    s = settings or LabSettings.from_env()
    values: dict[str, object] = {
        "member_names": list(s.patroni_members),
        "rest_ports": list(s.patroni_rest_ports),
        "pg_ports": list(s.patroni_pg_ports),
        "haproxy_rw_port": s.haproxy_rw_port,
        "haproxy_ro_port": s.haproxy_ro_port,
        "password": s.patroni_superuser_password,
    }
    values.update(overrides)
    return PatroniResource(**values)  # type: ignore[arg-type]


def lab_alerting(settings: LabSettings | None = None) -> AlertingResource:
    """Alert sinks from REGRESS_* variables, with the lab's Alertmanager as the default receiver."""
    s = settings or LabSettings.from_env()
    return AlertingResource.from_env(default_alertmanager_url=f"http://{LAB_HOST}:{s.alertmanager_port}")


def build_resources() -> dict[str, object]:
    apply_lab_defaults()
    env = os.environ.get
    return {
        "postgres": PostgresResource(
            host=env("REGRESS_PG_HOST", "127.0.0.1"),
            port=dg.EnvVar.int("REGRESS_PG_PORT"),
            user=dg.EnvVar("REGRESS_PG_USER"),
            password=dg.EnvVar("REGRESS_PG_PASSWORD"),
            dbname=dg.EnvVar("REGRESS_PG_DB"),
            allowed_hosts=allowed_hosts(),
        ),
        "redis": RedisResource(
            host=env("REGRESS_REDIS_HOST", "127.0.0.1"),
            port=dg.EnvVar.int("REGRESS_REDIS_PORT"),
            password=_optional_secret("REGRESS_REDIS_PASSWORD"),
            allowed_hosts=allowed_hosts(),
        ),
        "rabbitmq": RabbitMQResource(
            host=env("REGRESS_RABBITMQ_HOST", "127.0.0.1"),
            port=dg.EnvVar.int("REGRESS_RABBITMQ_PORT"),
            user=env("REGRESS_RABBITMQ_USER", "guest"),
            password=dg.EnvVar("REGRESS_RABBITMQ_PASSWORD"),
            allowed_hosts=allowed_hosts(),
        ),
        "warehouse": WarehouseResource(path=env("REGRESS_WAREHOUSE_PATH"))
        if env("REGRESS_WAREHOUSE_PATH")
        else WarehouseResource(),
        "patroni": lab_patroni(password=dg.EnvVar("REGRESS_PATRONI_PASSWORD"), allowed_hosts=allowed_hosts()),
        "alerting": lab_alerting(),
        "citus": CitusResource(
            host=env("REGRESS_CITUS_HOST", "127.0.0.1"),
            port=dg.EnvVar.int("REGRESS_CITUS_PORT"),
            user=dg.EnvVar("REGRESS_CITUS_USER"),
            password=dg.EnvVar("REGRESS_CITUS_PASSWORD"),
            dbname=dg.EnvVar("REGRESS_CITUS_DB"),
            superuser_password=_optional_secret("REGRESS_CITUS_SUPERUSER_PASSWORD"),
        ),
        "delta": DeltaLakeResource(
            root=env("REGRESS_DELTA_ROOT", str(LabSettings.from_env().lab_dir / "delta")),
            spark_connect_url=env("REGRESS_SPARK_CONNECT_URL", ""),
            spark_delta_jars=env("REGRESS_SPARK_DELTA_JARS", ""),
            allowed_hosts=allowed_hosts(),
        ),
    }
