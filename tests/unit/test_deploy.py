"""Static checks of deploy/ for what cannot run here (no Docker daemon, no Kubernetes):

- every YAML file parses, the Dockerfile is sane (known instructions, FROM first, `uv sync --frozen` from uv.lock,
  non-root, no lab binaries, exec-form CMD serving the code location over gRPC);
- the rule for variables: every REGRESS_* variable the code location reads (outside the local-only
  REGRESS_LAB_* / REGRESS_SERVE_*) is documented in deploy/README.md, and every REGRESS_* named anywhere in
  deploy/ is one the code reads;
- no secret value in any file: secret variables and password fields are empty or references
  ({env: ...}, ${...}, Kubernetes secrets), and the Helm values pass REGRESS_* secrets only through envSecrets.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from regression_pipelines.lab.settings import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
CODE_DIRS = ("regression_pipelines", "resources", "assets")
LOCAL_ONLY = ("REGRESS_LAB_", "REGRESS_SERVE_")
NAME = re.compile(r"REGRESS_[A-Z0-9_]*[A-Z0-9]")
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|_WEBHOOK_URL|_PG_URL)$")
LAB_PACKAGES = ("postgresql", "patroni", "etcd", "haproxy", "redis-server", "rabbitmq-server", "alertmanager")
DOCKERFILE_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER", "WORKDIR",
    "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


def _deploy_files() -> list[Path]:
    """Everything in deploy/ except the lab's own templates (deploy/local: rendered by the lab, not deployed)."""
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and "local" not in p.relative_to(DEPLOY).parts)


def _yaml_files() -> list[Path]:
    return [p for p in _deploy_files() if p.suffix in (".yml", ".yaml")]


def _code_variables() -> set[str]:
    names: set[str] = set()
    for folder in CODE_DIRS:
        for path in (REPO_ROOT / folder).rglob("*.py"):
            names.update(NAME.findall(path.read_text()))
    return {n for n in names if not n.startswith(LOCAL_ONLY)}


def _deploy_variables() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in _deploy_files():
        for name in NAME.findall(path.read_text()):
            found.setdefault(name, []).append(str(path.relative_to(REPO_ROOT)))
    return found


def test_deploy_has_every_piece() -> None:
    for part in ("docker/Dockerfile", "compose/docker-compose.yml", "compose/dagster.yaml", "helm/values.yaml"):
        assert (DEPLOY / part).is_file(), part
    assert "Patroni" in (DEPLOY / "README.md").read_text()


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    assert isinstance(yaml.safe_load(path.read_text()), dict)


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line: comments dropped, continuations joined."""
    logical, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.strip().partition(" ")
        logical.append((word.upper(), rest.strip()))
        pending = ""
    assert not pending, "a continuation line runs off the end of the file"
    return logical


def test_dockerfile_is_sane() -> None:
    steps = _instructions(DEPLOY / "docker" / "Dockerfile")
    assert {word for word, _ in steps} <= DOCKERFILE_INSTRUCTIONS
    first = next(word for word, _ in steps if word != "ARG")
    assert first == "FROM"
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert "uv sync --frozen" in runs and "--no-dev" in runs
    assert any(word == "COPY" and "uv.lock" in args for word, args in steps)
    assert not any(pkg in runs for pkg in LAB_PACKAGES), "the user-code image carries no lab binaries"
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must run as a non-root user"
    last_stage = [word for word, _ in steps][max(i for i, (w, _) in enumerate(steps) if w == "FROM") :]
    assert "USER" in last_stage, "the final stage sets the non-root user"
    (cmd,) = [args for word, args in steps if word == "CMD"]
    assert cmd.startswith("["), "exec form, so the gRPC server gets the container's signals"
    argv = yaml.safe_load(cmd)
    assert argv[:3] == ["dagster", "api", "grpc"] and "regression_pipelines.definitions" in argv


def test_compose_commands_are_the_three_dagster_processes() -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    commands = {name: svc.get("command") for name, svc in compose["services"].items()}
    assert commands["code-server"][:3] == ["dagster", "api", "grpc"]
    assert commands["webserver"][0] == "dagster-webserver"
    assert commands["daemon"][:2] == ["dagster-daemon", "run"]
    workspace = yaml.safe_load((DEPLOY / "compose" / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["grpc_server"]["host"] == "code-server"


def test_helm_values_use_the_image_k8s_run_launcher_and_postgres() -> None:
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "regression_pipelines.definitions"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert values["global"]["postgresqlSecretName"]
    assert values["dagsterDaemon"]["enabled"] is True
    assert values["scheduler"]["type"] == "DagsterDaemonScheduler"
    secrets = {s["name"] for s in deployment["envSecrets"]}
    assert secrets & {s["name"] for s in values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]}


def test_every_variable_the_code_reads_is_documented_for_deployers() -> None:
    readme = (DEPLOY / "README.md").read_text()
    undocumented = sorted(n for n in _code_variables() if n not in readme)
    assert not undocumented, f"document these in deploy/README.md (the variables table): {undocumented}"


def test_every_variable_named_in_deploy_is_read_by_the_code() -> None:
    known = _code_variables()
    local = {n for n in _deploy_variables() if (n + "_").startswith(LOCAL_ONLY)}  # e.g. "REGRESS_LAB_*" in prose
    unknown = {n: where for n, where in _deploy_variables().items() if n not in known | local}
    assert not unknown, f"deploy/ names variables the code never reads: {unknown}"


def test_every_secret_variable_is_created_as_a_kubernetes_secret() -> None:
    """The README's `kubectl create secret ... regress-secrets` names every REGRESS_* secret the run pods need."""
    readme = (DEPLOY / "README.md").read_text()
    command = readme[readme.index("create secret generic regress-secrets") :].split("\nkubectl", 1)[0]
    in_secret = set(re.findall(r"--from-literal=(REGRESS_[A-Z0-9_]+)=", command))
    needed = {n for n in _code_variables() if SECRET_NAME.search(n) and n != "REGRESS_DAGSTER_PG_URL"}
    assert needed <= in_secret, f"add to regress-secrets: {sorted(needed - in_secret)}"


def _is_reference(value: Any) -> bool:
    if value in (None, ""):
        return True
    if isinstance(value, dict):
        return set(value) <= {"env"} or "secretKeyRef" in value or "valueFrom" in value
    text = str(value)
    return text.startswith("${") or text.startswith("$$")


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        if "name" in node and "value" in node:  # a Kubernetes EnvVar
            pairs.append((str(node["name"]), node["value"]))
        for key, value in node.items():
            pairs.append((str(key), value))
            pairs += _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for item in node:
            pairs += _walk(item, path)
    return pairs


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_no_secret_value_in_yaml(path: Path) -> None:
    for key, value in _walk(yaml.safe_load(path.read_text())):
        if (
            re.search(r"password|secret|token", key, re.I)
            and not isinstance(value, (dict, list))
            or (SECRET_NAME.search(key) and key.startswith(("REGRESS_", "DAGSTER_", "POSTGRES_")))
        ):
            if key in ("postgresqlSecretName", "generatePostgresqlPasswordSecret", "envSecrets"):
                continue
            assert _is_reference(value), f"{path.name}: {key} holds a value; use a reference or a secret"


@pytest.mark.parametrize("path", [p for p in _deploy_files() if ".env" in p.name or p.name.endswith("example")])
def test_example_env_files_leave_secrets_empty(path: Path) -> None:
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            if SECRET_NAME.search(name):
                assert value == "", f"{path.name}: {name} must be empty in a committed example"


def test_no_known_lab_password_or_url_credential_anywhere() -> None:
    from regression_pipelines.lab.settings import LabSettings

    s = LabSettings()
    lab_secrets = {s.postgres_password, s.patroni_superuser_password, s.dagster_storage_password}
    for path in _deploy_files():
        text = path.read_text()
        assert not any(secret in text for secret in lab_secrets), path
        for url in re.findall(r"\b[a-z+]+://[^\s'\"]+", text):
            assert not re.match(r"[a-z+]+://[^/@\s]+:[^/@\s]+@", url), f"{path.name}: credentials in {url}"


def test_the_readme_shell_commands_parse() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        for command in block.replace("\\\n", " ").splitlines():
            shlex.split(command.split("#", 1)[0])


def test_allowed_hosts_reach_every_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    """REGRESS_ALLOWED_HOSTS is how a deployment points the resources at real clusters without a resources block."""
    from regression_pipelines.resources_config import build_resources

    monkeypatch.setenv("REGRESS_ALLOWED_HOSTS", "pg.example.internal, redis.example.internal")
    resources = build_resources()
    for name in ("postgres", "redis", "rabbitmq", "patroni", "delta"):
        assert resources[name].allowed_hosts == ["pg.example.internal", "redis.example.internal"], name
