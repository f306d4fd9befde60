"""How to start each lab service from its installed binary: prepare dirs/config, spawn, record the PID.

Each `start_*` returns the PID it recorded in the state file; waiting for readiness is lifecycle's job.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from regression_pipelines.lab import render
from regression_pipelines.lab.binaries import binary
from regression_pipelines.lab.errors import LabError
from regression_pipelines.lab.procs import spawn
from regression_pipelines.lab.settings import LAB_HOST, LabSettings
from regression_pipelines.lab.state import record_service


def chown_tree(path: Path, user: str) -> None:
    """Hand a directory (and what is in it) to a service user; PostgreSQL and RabbitMQ refuse root."""
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)


def _service_dir(settings: LabSettings, name: str, user: str | None = None) -> Path:
    path = settings.lab_dir / name
    path.mkdir(parents=True, exist_ok=True)
    settings.lab_dir.chmod(0o755)
    if user:
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


def _write(path: Path, text: str, user: str | None = None, mode: int = 0o644) -> None:
    path.write_text(text)
    path.chmod(mode)
    if user:
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)


# --- standalone PostgreSQL -------------------------------------------------------------------------------


def postgres_dir(settings: LabSettings) -> Path:
    return settings.lab_dir / "postgres"


def start_postgres(settings: LabSettings) -> int:
    base = _service_dir(settings, "postgres", "postgres")
    data = base / "data"
    if not (data / "PG_VERSION").exists():
        shutil.rmtree(data, ignore_errors=True)
        subprocess.run(
            [
                "setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
                binary("initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8", "--no-sync",
                "--auth-local=trust", "--auth-host=scram-sha-256",
            ],
            check=True, capture_output=True,
        )  # fmt: skip
    argv = [
        binary("postgres"), "-D", str(data), "-p", str(settings.postgres_port),
        "-c", f"listen_addresses={LAB_HOST}", "-c", f"unix_socket_directories={base}",
        "-c", "password_encryption=scram-sha-256", "-c", "shared_buffers=32MB",
    ]  # fmt: skip
    pid = spawn(argv, base / "postgres.log", user="postgres")
    record_service(settings, "postgres", pid=pid, ports={"pg": settings.postgres_port}, started_by_lab=True)
    return pid


def ensure_regress_role(host: str, port: int, password_of_admin: str | None, settings: LabSettings) -> None:
    """Create (or re-password) the login role and its database; idempotent."""
    import psycopg
    from psycopg import sql

    kwargs: dict[str, object] = {"host": host, "port": port, "user": "postgres", "dbname": "postgres"}
    if password_of_admin is not None:
        kwargs["password"] = password_of_admin
    with psycopg.connect(autocommit=True, connect_timeout=3, **kwargs) as conn:  # type: ignore[arg-type]
        role = sql.Identifier(settings.postgres_user)
        pw = sql.Literal(settings.postgres_password)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (settings.postgres_user,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(role, pw))
        has_db = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (settings.postgres_db,)).fetchone()
        if not has_db:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(settings.postgres_db), role))


# --- etcd + Patroni --------------------------------------------------------------------------------------


def start_etcd(settings: LabSettings) -> int:
    base = _service_dir(settings, "etcd")
    name = settings.lab_name
    client = f"http://{LAB_HOST}:{settings.etcd_client_port}"
    peer = f"http://{LAB_HOST}:{settings.etcd_peer_port}"
    argv = [
        binary("etcd"), "--name", name, "--data-dir", str(base / "data"),
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"{name}={peer}", "--initial-cluster-token", name,
        "--initial-cluster-state", "new", "--enable-v2=true", "--logger", "zap", "--log-outputs", "stderr",
    ]  # fmt: skip
    pid = spawn(argv, base / "etcd.log")
    ports = {"client": settings.etcd_client_port, "peer": settings.etcd_peer_port}
    record_service(settings, "etcd", pid=pid, ports=ports, started_by_lab=True)
    return pid


def patroni_config_path(settings: LabSettings, name: str) -> Path:
    return render.member_dir(settings, name) / "patroni.yml"


def start_patroni_member(settings: LabSettings, index: int) -> int:
    name = settings.patroni_members[index]
    _service_dir(settings, "patroni", "postgres")
    mdir = render.member_dir(settings, name)
    mdir.mkdir(parents=True, exist_ok=True)
    pw = pwd.getpwnam("postgres")
    os.chown(mdir, pw.pw_uid, pw.pw_gid)
    cfg = patroni_config_path(settings, name)
    _write(cfg, render.patroni_yml(settings, index), user="postgres", mode=0o600)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(mdir),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    pid = spawn([binary("patroni"), str(cfg)], mdir / "patroni.log", user="postgres", env=env, cwd=mdir)
    ports = {"pg": settings.patroni_pg_ports[index], "rest": settings.patroni_rest_ports[index]}
    record_service(settings, f"patroni-{name}", pid=pid, ports=ports, started_by_lab=True, member=name)
    return pid


# --- HAProxy, Redis, Alertmanager ------------------------------------------------------------------------


def start_haproxy(settings: LabSettings) -> int:
    base = _service_dir(settings, "haproxy")
    cfg = base / "haproxy.cfg"
    _write(cfg, render.haproxy_cfg(settings))
    pid = spawn([binary("haproxy"), "-db", "-f", str(cfg)], base / "haproxy.log")
    ports = {"rw": settings.haproxy_rw_port, "ro": settings.haproxy_ro_port, "stats": settings.haproxy_stats_port}
    record_service(settings, "haproxy", pid=pid, ports=ports, started_by_lab=True)
    return pid


def start_redis(settings: LabSettings) -> int:
    base = _service_dir(settings, "redis")
    argv = [
        binary("redis-server"), "--bind", LAB_HOST, "--port", str(settings.redis_port),
        "--save", "", "--appendonly", "no", "--dir", str(base), "--daemonize", "no",
        "--protected-mode", "yes", "--logfile", "",
    ]  # fmt: skip
    pid = spawn(argv, base / "redis.log")
    record_service(settings, "redis", pid=pid, ports={"redis": settings.redis_port}, started_by_lab=True)
    return pid


def start_alertmanager(settings: LabSettings) -> int:
    base = _service_dir(settings, "alertmanager")
    cfg = base / "alertmanager.yml"
    _write(cfg, render.alertmanager_yml(settings))
    argv = [
        binary("alertmanager"), f"--config.file={cfg}", f"--storage.path={base / 'data'}",
        f"--web.listen-address={LAB_HOST}:{settings.alertmanager_port}", "--cluster.listen-address=",
    ]  # fmt: skip
    pid = spawn(argv, base / "alertmanager.log")
    record_service(settings, "alertmanager", pid=pid, ports={"http": settings.alertmanager_port}, started_by_lab=True)
    return pid


# --- RabbitMQ (own epmd on its own port, so `down` never touches the machine's epmd) ----------------------


def _rabbit_env(settings: LabSettings) -> dict[str, str]:
    base = settings.lab_dir / "rabbitmq"
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": str(base / "home"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        "ERL_EPMD_ADDRESS": LAB_HOST,
        "ERL_EPMD_PORT": str(settings.rabbitmq_epmd_port),
    }


def start_epmd(settings: LabSettings) -> int:
    base = _service_dir(settings, "rabbitmq", "rabbitmq")
    argv = [binary("epmd"), "-port", str(settings.rabbitmq_epmd_port), "-address", LAB_HOST]
    pid = spawn(argv, base / "epmd.log", user="rabbitmq", env=_rabbit_env(settings))
    record_service(settings, "epmd", pid=pid, ports={"epmd": settings.rabbitmq_epmd_port}, started_by_lab=True)
    return pid


def start_rabbitmq(settings: LabSettings) -> int:
    base = _service_dir(settings, "rabbitmq", "rabbitmq")
    for sub in ("home", "mnesia", "log"):
        (base / sub).mkdir(exist_ok=True)
    _write(base / "rabbitmq-env.conf", render.rabbitmq_env(settings), user="rabbitmq")
    _write(base / "rabbitmq.conf", render.rabbitmq_conf(settings), user="rabbitmq")
    _write(base / "enabled_plugins", "[].\n", user="rabbitmq")
    chown_tree(base, "rabbitmq")
    server = Path(binary("rabbitmq-server"))
    if not server.exists():
        raise LabError(f"{server} missing; apt-get install -y rabbitmq-server")
    pid = spawn([str(server)], base / "rabbitmq.log", user="rabbitmq", env=_rabbit_env(settings), cwd=base)
    ports = {"amqp": settings.rabbitmq_port, "dist": settings.rabbitmq_dist_port}
    record_service(
        settings, "rabbitmq", pid=pid, ports=ports, started_by_lab=True, mode="started",
        nodename=settings.rabbitmq_nodename,
    )  # fmt: skip
    return pid
