"""Resource instances for the code location: lab defaults, every field overridable from the environment."""

from __future__ import annotations

import os

import dagster as dg

from regression_pipelines.lab.settings import lab_env_defaults
from resources.alerting import AlertingResource
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
    os.environ.setdefault("REGRESS_RABBITMQ_PORT", "5672")


def _optional_secret(name: str) -> dg.EnvVar | str:
    """A secret read through EnvVar when set (the UI then shows only its name); no password otherwise."""
    return dg.EnvVar(name) if os.environ.get(name) else ""


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
        ),
        "redis": RedisResource(
            host=env("REGRESS_REDIS_HOST", "127.0.0.1"),
            port=dg.EnvVar.int("REGRESS_REDIS_PORT"),
            password=_optional_secret("REGRESS_REDIS_PASSWORD"),
        ),
        "rabbitmq": RabbitMQResource(
            host=env("REGRESS_RABBITMQ_HOST", "127.0.0.1"),
            port=dg.EnvVar.int("REGRESS_RABBITMQ_PORT"),
            user=env("REGRESS_RABBITMQ_USER", "guest"),
            password=dg.EnvVar("REGRESS_RABBITMQ_PASSWORD"),
        ),
        "warehouse": WarehouseResource(path=env("REGRESS_WAREHOUSE_PATH"))
        if env("REGRESS_WAREHOUSE_PATH")
        else WarehouseResource(),
        "patroni": PatroniResource.for_lab(password=dg.EnvVar("REGRESS_PATRONI_PASSWORD")),
        "alerting": AlertingResource.from_env(),
        "delta": DeltaLakeResource(root=env("REGRESS_DELTA_ROOT", ".lab/delta")),
    }
