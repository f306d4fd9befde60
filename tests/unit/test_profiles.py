"""Deployment profiles: `lab` takes the lab's facts from the lab settings (and never writes the environment),
`deployed` takes everything from the environment and refuses to build with one line naming every gap."""

from __future__ import annotations

import importlib
import os
import sys

import pytest

from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.resources_config import (
    CITUS_REQUIRED,
    REQUIRED,
    ProfileError,
    build_resources,
    deployment_problem,
)

DEPLOYMENT = {
    "REGRESS_PROFILE": "deployed",
    "REGRESS_PG_HOST": "pg.example.internal",
    "REGRESS_PG_PORT": "5432",
    "REGRESS_PG_USER": "regress",
    "REGRESS_PG_PASSWORD": "pg-secret-from-helm",
    "REGRESS_PG_DB": "regress",
    "REGRESS_REDIS_HOST": "redis.example.internal",
    "REGRESS_REDIS_PORT": "6379",
    "REGRESS_RABBITMQ_HOST": "rabbit.example.internal",
    "REGRESS_RABBITMQ_PORT": "5672",
    "REGRESS_RABBITMQ_USER": "regress",
    "REGRESS_RABBITMQ_PASSWORD": "rabbit-secret",
    "REGRESS_PATRONI_HOST": "patroni.example.internal",
    "REGRESS_PATRONI_MEMBERS": "pg-a,pg-b,pg-c",
    "REGRESS_PATRONI_PASSWORD": "patroni-secret",
    "REGRESS_DELTA_ROOT": "/var/lib/regress/delta",
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [n for n in os.environ if n.startswith("REGRESS_") and not n.startswith("REGRESS_LAB_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def _deployed(env: pytest.MonkeyPatch, **changes: str | None) -> None:
    for name, value in {**DEPLOYMENT, **changes}.items():
        if value is None:
            env.delenv(name, raising=False)
        else:
            env.setenv(name, value)


def test_the_deployed_profile_with_one_variable_missing_fails_loading_with_the_one_line_list(
    clean_env: pytest.MonkeyPatch,
) -> None:
    _deployed(clean_env, REGRESS_PG_PASSWORD=None)
    sys.modules.pop("regression_pipelines.definitions", None)
    with pytest.raises(ProfileError) as info:
        importlib.import_module("regression_pipelines.definitions")  # what Dagster does to load the location
    sys.modules.pop("regression_pipelines.definitions", None)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("REGRESS_PROFILE=deployed: missing REGRESS_PG_PASSWORD. Set them in the environment")


def test_every_missing_name_is_listed_once_and_malformed_ports_are_named(clean_env: pytest.MonkeyPatch) -> None:
    _deployed(clean_env, REGRESS_PROFILE=None)
    env = {**DEPLOYMENT, "REGRESS_PG_PORT": "fifty", "REGRESS_PATRONI_REST_PORTS": "8008,x"}
    for name in ("REGRESS_REDIS_HOST", "REGRESS_PATRONI_MEMBERS", "REGRESS_DELTA_ROOT"):
        env.pop(name)
    problem = deployment_problem(env)
    assert "missing REGRESS_REDIS_HOST, REGRESS_PATRONI_MEMBERS, REGRESS_DELTA_ROOT;" in problem
    assert "REGRESS_PG_PORT='fifty' (a port number)" in problem and "REGRESS_PATRONI_REST_PORTS='8008,x'" in problem
    assert "pg-secret-from-helm" not in problem  # a secret's value is never shown
    assert deployment_problem(DEPLOYMENT) == ""
    nothing = deployment_problem({"REGRESS_PROFILE": "deployed"})
    assert all(name in nothing for name in REQUIRED) and not any(name in nothing for name in CITUS_REQUIRED)


def test_citus_is_optional_but_whole_once_named(clean_env: pytest.MonkeyPatch) -> None:
    assert "REGRESS_CITUS_PASSWORD" in deployment_problem({**DEPLOYMENT, "REGRESS_CITUS_HOST": "citus.internal"})
    _deployed(clean_env)
    citus = build_resources()["citus"]
    assert citus.host == ""  # the Citus areas are skipped: "no Citus configured (REGRESS_CITUS_HOST is not set)"


def test_the_deployed_profile_never_uses_a_lab_value(clean_env: pytest.MonkeyPatch) -> None:
    _deployed(clean_env)
    lab = LabSettings()
    resources = build_resources()
    values = {
        name: resource.model_dump() if hasattr(resource, "model_dump") else {} for name, resource in resources.items()
    }
    text = repr(values)
    for lab_fact in (lab.postgres_password, lab.patroni_superuser_password, str(lab.postgres_port),
                     str(lab.redis_port), str(lab.rabbitmq_port), str(lab.haproxy_rw_port)):  # fmt: skip
        assert lab_fact not in text, lab_fact
    patroni = resources["patroni"]
    assert (patroni.member_names, patroni.rest_ports, patroni.haproxy_rw_port) == (
        ["pg-a", "pg-b", "pg-c"],
        [8008, 8008, 8008],
        5000,
    )


def test_the_lab_profile_reads_the_lab_settings_and_never_writes_the_environment(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("REGRESS_LAB_PORT_OFFSET", "100")
    before = dict(os.environ)
    resources = build_resources()
    assert dict(os.environ) == before
    lab = LabSettings.from_env()
    ports = (resources["postgres"].port, resources["redis"].port)
    assert ports == (lab.postgres_port, lab.redis_port) == (15532, 16479)
    assert resources["patroni"].haproxy_rw_port == lab.haproxy_rw_port
    clean_env.setenv("REGRESS_CITUS_PORT", "1")  # a variable that is set still wins, as tests rely on
    assert build_resources()["citus"].port == 1


def test_an_unknown_profile_names_the_choices(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("REGRESS_PROFILE", "prod")
    with pytest.raises(ProfileError, match="REGRESS_PROFILE='prod' is not a profile; use one of lab, deployed"):
        build_resources()
