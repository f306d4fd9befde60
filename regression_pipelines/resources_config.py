"""Resource instances per deployment profile, the way Dagster's example projects pick resources per deployment
(project_fully_featured: `resources_by_deployment_name[os.environ["DAGSTER_DEPLOYMENT"]]`).

`REGRESS_PROFILE` names the profile:

- `lab` (the default): the local lab. Its facts (ports, lab-only passwords) come from the lab settings
  (`lab/settings.py`, the one place they live, REGRESS_LAB_PORT_OFFSET honoured) and reach the resources only
  here. A REGRESS_* variable that is set still wins (secrets then go through EnvVar), so a test can point one
  resource elsewhere.
- `deployed`: everything from the environment (the Helm chart's ConfigMap and secret). Nothing falls back to
  the lab: a missing or malformed variable fails definition loading with one message that lists every name.

The environment is only read, never written: a profile decides, nothing is defaulted behind anyone's back.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

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

PROFILE_ENV = "REGRESS_PROFILE"
LAB, DEPLOYED = "lab", "deployed"
ALLOWED_HOSTS_ENV = "REGRESS_ALLOWED_HOSTS"

# What a deployment must set (deployed profile). Citus is optional: without REGRESS_CITUS_HOST the Citus areas
# are skipped ("no Citus configured"); with it, the rest of its group must be there too.
REQUIRED = (
    "REGRESS_PG_HOST", "REGRESS_PG_PORT", "REGRESS_PG_USER", "REGRESS_PG_PASSWORD", "REGRESS_PG_DB",
    "REGRESS_REDIS_HOST", "REGRESS_REDIS_PORT",
    "REGRESS_RABBITMQ_HOST", "REGRESS_RABBITMQ_PORT", "REGRESS_RABBITMQ_USER", "REGRESS_RABBITMQ_PASSWORD",
    "REGRESS_PATRONI_HOST", "REGRESS_PATRONI_MEMBERS", "REGRESS_PATRONI_PASSWORD",
    "REGRESS_DELTA_ROOT",
)  # fmt: skip
CITUS_REQUIRED = ("REGRESS_CITUS_HOST", "REGRESS_CITUS_PORT", "REGRESS_CITUS_USER", "REGRESS_CITUS_PASSWORD",
                  "REGRESS_CITUS_DB")  # fmt: skip
PORTS = ("REGRESS_PG_PORT", "REGRESS_REDIS_PORT", "REGRESS_RABBITMQ_PORT", "REGRESS_CITUS_PORT",
         "REGRESS_PATRONI_HAPROXY_RW_PORT", "REGRESS_PATRONI_HAPROXY_RO_PORT")  # fmt: skip
PORT_LISTS = ("REGRESS_PATRONI_REST_PORTS", "REGRESS_PATRONI_PG_PORTS")


class ProfileError(ValueError):
    """The profile cannot build its resources; one line naming every variable to set or fix."""


def profile_name(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    name = env.get(PROFILE_ENV, "").strip() or LAB
    if name not in PROFILES:
        raise ProfileError(f"{PROFILE_ENV}={name!r} is not a profile; use one of {', '.join(PROFILES)}")
    return name


def allowed_hosts() -> list[str]:
    """Non-loopback hosts the team allows every resource to reach (REGRESS_ALLOWED_HOSTS, comma-separated):
    how a deployment points the resources at its real clusters without a resources block in run config
    (which would replace the resource's environment-set fields, passwords included)."""
    return [h.strip() for h in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",") if h.strip()]


def _optional_secret(name: str) -> dg.EnvVar | str:
    """A secret read through EnvVar when set (the UI then shows only its name); no password otherwise."""
    return dg.EnvVar(name) if os.environ.get(name) else ""


# --- lab ---------------------------------------------------------------------------------------------------


@dataclass
class _LabValues:
    """The lab's facts as REGRESS_* values; a variable set in the environment wins (a secret through EnvVar)."""

    facts: dict[str, str] = field(default_factory=dict)

    def text(self, name: str, fallback: str = "") -> str:
        return os.environ.get(name) or self.facts.get(name, fallback)

    def port(self, name: str) -> int:
        return int(self.text(name))

    def secret(self, name: str) -> dg.EnvVar | str:
        return dg.EnvVar(name) if os.environ.get(name) else self.facts.get(name, "")


def lab_patroni(settings: LabSettings | None = None, **overrides: object) -> PatroniResource:
    """The lab's Patroni cluster (REGRESS_LAB_PORT_OFFSET honoured); used by the lab profile and tests."""
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


def lab_resources(settings: LabSettings | None = None) -> dict[str, object]:
    s = settings or LabSettings.from_env()
    lab = _LabValues(lab_env_defaults(s))
    hosts = allowed_hosts()
    return {
        "postgres": PostgresResource(
            host=lab.text("REGRESS_PG_HOST"),
            port=lab.port("REGRESS_PG_PORT"),
            user=lab.text("REGRESS_PG_USER"),
            password=lab.secret("REGRESS_PG_PASSWORD"),
            dbname=lab.text("REGRESS_PG_DB"),
            allowed_hosts=hosts,
        ),
        "redis": RedisResource(
            host=lab.text("REGRESS_REDIS_HOST", LAB_HOST),
            port=lab.port("REGRESS_REDIS_PORT"),
            password=_optional_secret("REGRESS_REDIS_PASSWORD"),
            allowed_hosts=hosts,
        ),
        "rabbitmq": RabbitMQResource(
            host=lab.text("REGRESS_RABBITMQ_HOST"),
            port=lab.port("REGRESS_RABBITMQ_PORT"),
            user=lab.text("REGRESS_RABBITMQ_USER", s.rabbitmq_user),
            password=lab.secret("REGRESS_RABBITMQ_PASSWORD"),
            allowed_hosts=hosts,
        ),
        "warehouse": _warehouse(),
        "patroni": lab_patroni(s, password=lab.secret("REGRESS_PATRONI_PASSWORD"), allowed_hosts=hosts),
        "alerting": lab_alerting(s),
        "citus": CitusResource(
            host=lab.text("REGRESS_CITUS_HOST", LAB_HOST),
            port=lab.port("REGRESS_CITUS_PORT"),
            user=lab.text("REGRESS_CITUS_USER"),
            password=lab.secret("REGRESS_CITUS_PASSWORD"),
            dbname=lab.text("REGRESS_CITUS_DB"),
            superuser_password=lab.secret("REGRESS_CITUS_SUPERUSER_PASSWORD"),
            allowed_hosts=hosts,
        ),
        "delta": _delta(lab.text("REGRESS_DELTA_ROOT", str(s.lab_dir / "delta")), hosts),
    }


# --- deployed ----------------------------------------------------------------------------------------------


def missing_for_deployment(environ: Mapping[str, str] | None = None) -> tuple[list[str], list[str]]:
    """(missing names, malformed `NAME=value` texts) for the deployed profile; secrets' values never shown."""
    env = os.environ if environ is None else environ
    required = list(REQUIRED)
    if env.get("REGRESS_CITUS_HOST", "").strip():
        required += CITUS_REQUIRED
    missing = [name for name in required if not env.get(name, "").strip()]
    malformed = [f"{n}={env[n]!r} (a port number)" for n in PORTS if env.get(n) and not _is_port(env[n])]
    malformed += [
        f"{n}={env[n]!r} (comma-separated port numbers)"
        for n in PORT_LISTS
        if env.get(n) and not all(_is_port(p) for p in env[n].split(","))
    ]
    return missing, malformed


def _is_port(text: str) -> bool:
    return text.strip().isdigit() and 0 < int(text) < 65536


def deployment_problem(environ: Mapping[str, str] | None = None) -> str:
    """The one-line error for an incomplete deployment, or '' when every variable is there."""
    missing, malformed = missing_for_deployment(environ)
    if not missing and not malformed:
        return ""
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing)}")
    if malformed:
        parts.append(f"malformed {', '.join(malformed)}")
    return (
        f"{PROFILE_ENV}=deployed: {'; '.join(parts)}. Set them in the environment (Helm: the regress-config "
        "ConfigMap and the regress-secrets secret, deploy/README.md); the deployed profile never uses the "
        f"lab's values ({PROFILE_ENV}=lab is the local lab)"
    )


def _ports(name: str, default: int, members: int) -> list[int]:
    raw = os.environ.get(name, "")
    return [int(p) for p in raw.split(",")] if raw else [default] * members


def deployed_resources() -> dict[str, object]:
    problem = deployment_problem()
    if problem:
        raise ProfileError(problem)
    env, hosts = os.environ.get, allowed_hosts()
    members = [m.strip() for m in os.environ["REGRESS_PATRONI_MEMBERS"].split(",") if m.strip()]
    citus = env("REGRESS_CITUS_HOST")
    return {
        "postgres": PostgresResource(
            host=dg.EnvVar("REGRESS_PG_HOST"),
            port=dg.EnvVar.int("REGRESS_PG_PORT"),
            user=dg.EnvVar("REGRESS_PG_USER"),
            password=dg.EnvVar("REGRESS_PG_PASSWORD"),
            dbname=dg.EnvVar("REGRESS_PG_DB"),
            allowed_hosts=hosts,
        ),
        "redis": RedisResource(
            host=dg.EnvVar("REGRESS_REDIS_HOST"),
            port=dg.EnvVar.int("REGRESS_REDIS_PORT"),
            password=_optional_secret("REGRESS_REDIS_PASSWORD"),
            allowed_hosts=hosts,
        ),
        "rabbitmq": RabbitMQResource(
            host=dg.EnvVar("REGRESS_RABBITMQ_HOST"),
            port=dg.EnvVar.int("REGRESS_RABBITMQ_PORT"),
            user=dg.EnvVar("REGRESS_RABBITMQ_USER"),
            password=dg.EnvVar("REGRESS_RABBITMQ_PASSWORD"),
            allowed_hosts=hosts,
        ),
        "warehouse": _warehouse(),
        "patroni": PatroniResource(
            host=dg.EnvVar("REGRESS_PATRONI_HOST"),
            member_names=members,
            rest_ports=_ports("REGRESS_PATRONI_REST_PORTS", 8008, len(members)),
            pg_ports=_ports("REGRESS_PATRONI_PG_PORTS", 5432, len(members)),
            haproxy_rw_port=int(env("REGRESS_PATRONI_HAPROXY_RW_PORT") or 5000),
            haproxy_ro_port=int(env("REGRESS_PATRONI_HAPROXY_RO_PORT") or 5001),
            password=dg.EnvVar("REGRESS_PATRONI_PASSWORD"),
            allowed_hosts=hosts,
        ),
        "alerting": AlertingResource.from_env(),
        "citus": CitusResource(
            host=dg.EnvVar("REGRESS_CITUS_HOST"),
            port=dg.EnvVar.int("REGRESS_CITUS_PORT"),
            user=dg.EnvVar("REGRESS_CITUS_USER"),
            password=dg.EnvVar("REGRESS_CITUS_PASSWORD"),
            dbname=dg.EnvVar("REGRESS_CITUS_DB"),
            superuser_password=_optional_secret("REGRESS_CITUS_SUPERUSER_PASSWORD"),
            allowed_hosts=hosts,
        )
        if citus
        else CitusResource(host=""),  # no Citus configured: the Citus areas are skipped, saying so
        "delta": _delta(os.environ["REGRESS_DELTA_ROOT"], hosts),
    }


# --- shared --------------------------------------------------------------------------------------------------


def _warehouse() -> WarehouseResource:
    path = os.environ.get("REGRESS_WAREHOUSE_PATH")
    return WarehouseResource(path=path) if path else WarehouseResource()


def _delta(root: str, hosts: list[str]) -> DeltaLakeResource:
    env = os.environ.get
    return DeltaLakeResource(
        root=root,
        spark_connect_url=env("REGRESS_SPARK_CONNECT_URL", ""),
        spark_delta_jars=env("REGRESS_SPARK_DELTA_JARS", ""),
        allowed_hosts=hosts,
    )


PROFILES: dict[str, Callable[[], dict[str, Any]]] = {LAB: lab_resources, DEPLOYED: deployed_resources}


def build_resources() -> dict[str, object]:
    """The resources of the profile REGRESS_PROFILE names (default `lab`)."""
    return PROFILES[profile_name()]()
