"""Where the lab's servers live on Debian 12, and which package brings each, for a clear error."""

from __future__ import annotations

import os
from pathlib import Path

from regression_pipelines.lab.errors import MissingBinaryError

PG_BIN = Path("/usr/lib/postgresql/15/bin")

# name -> (path, Debian package)
BINARIES: dict[str, tuple[Path, str]] = {
    "postgres": (PG_BIN / "postgres", "postgresql-15"),
    "initdb": (PG_BIN / "initdb", "postgresql-15"),
    "patroni": (Path("/usr/bin/patroni"), "patroni"),
    "etcd": (Path("/usr/bin/etcd"), "etcd-server"),
    "haproxy": (Path("/usr/sbin/haproxy"), "haproxy"),
    "redis-server": (Path("/usr/bin/redis-server"), "redis-server"),
    "rabbitmq-server": (Path("/usr/lib/rabbitmq/bin/rabbitmq-server"), "rabbitmq-server"),
    "epmd": (Path("/usr/bin/epmd"), "erlang-base (pulled in by rabbitmq-server)"),
    "alertmanager": (Path("/usr/bin/prometheus-alertmanager"), "prometheus-alertmanager"),
    "setpriv": (Path("/usr/bin/setpriv"), "util-linux"),
}

# Which binaries each lab service needs.
NEEDS: dict[str, tuple[str, ...]] = {
    "postgres": ("postgres", "initdb", "setpriv"),
    "patroni": ("patroni", "etcd", "postgres", "initdb", "setpriv"),
    "haproxy": ("haproxy",),
    "redis": ("redis-server",),
    "rabbitmq": ("rabbitmq-server", "epmd", "setpriv"),
    "alertmanager": ("alertmanager",),
}


def binary(name: str) -> str:
    return str(BINARIES[name][0])


def check_binaries(services: tuple[str, ...] | list[str]) -> None:
    """Raise one MissingBinaryError listing every missing binary and its package."""
    missing: dict[str, str] = {}
    for service in services:
        for name in NEEDS.get(service, ()):
            path, package = BINARIES[name]
            if not os.access(path, os.X_OK):
                missing[str(path)] = package
    if missing:
        lines = [f"  {path} (Debian package {pkg})" for path, pkg in sorted(missing.items())]
        pkgs = " ".join(sorted({p.split()[0] for p in missing.values()}))
        raise MissingBinaryError(
            "lab binaries missing:\n" + "\n".join(lines) + f"\ninstall with: apt-get install -y {pkgs}"
        )
