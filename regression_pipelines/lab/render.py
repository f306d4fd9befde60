"""Render the lab's config files from the templates in deploy/local/ (pure: settings in, text out)."""

from __future__ import annotations

from pathlib import Path
from string import Template

from regression_pipelines.lab.binaries import PG_BIN
from regression_pipelines.lab.settings import REPO_ROOT, LabSettings

TEMPLATE_DIR = REPO_ROOT / "deploy" / "local"


def _render(template: str, **values: object) -> str:
    text = (TEMPLATE_DIR / template).read_text()
    return Template(text).substitute({k: str(v) for k, v in values.items()})


def member_dir(settings: LabSettings, name: str) -> Path:
    return settings.lab_dir / "patroni" / name


def patroni_yml(settings: LabSettings, index: int) -> str:
    name = settings.patroni_members[index]
    mdir = member_dir(settings, name)
    return _render(
        "patroni.yml.tmpl",
        scope=settings.lab_name,
        name=name,
        rest_port=settings.patroni_rest_ports[index],
        pg_port=settings.patroni_pg_ports[index],
        etcd_client_port=settings.etcd_client_port,
        synchronous_mode="true" if settings.patroni_synchronous_mode else "false",
        data_dir=mdir / "data",
        bin_dir=PG_BIN,
        pgpass=mdir / "pgpass",
        socket_dir=mdir,
        superuser_password=settings.patroni_superuser_password,
        replication_password=settings.patroni_replication_password,
    )


def haproxy_cfg(settings: LabSettings) -> str:
    def servers() -> str:
        return "\n".join(
            f"    server {name} 127.0.0.1:{pg} maxconn 100 check port {rest}"
            for name, pg, rest in zip(
                settings.patroni_members, settings.patroni_pg_ports, settings.patroni_rest_ports, strict=True
            )
        )

    return _render(
        "haproxy.cfg.tmpl",
        stats_port=settings.haproxy_stats_port,
        rw_port=settings.haproxy_rw_port,
        ro_port=settings.haproxy_ro_port,
        primary_servers=servers(),
        replica_servers=servers(),
    )


def alertmanager_yml(settings: LabSettings) -> str:
    return _render("alertmanager.yml.tmpl", webhook_url=settings.alertmanager_webhook_url)


def rabbitmq_conf(settings: LabSettings) -> str:
    return _render("rabbitmq.conf.tmpl", port=settings.rabbitmq_port)


def rabbitmq_env(settings: LabSettings) -> str:
    base = settings.lab_dir / "rabbitmq"
    return _render(
        "rabbitmq-env.conf.tmpl",
        nodename=settings.rabbitmq_nodename,
        port=settings.rabbitmq_port,
        dist_port=settings.rabbitmq_dist_port,
        epmd_port=settings.rabbitmq_epmd_port,
        config_file=base / "rabbitmq.conf",
        plugins_file=base / "enabled_plugins",
        mnesia_base=base / "mnesia",
        log_base=base / "log",
    )
