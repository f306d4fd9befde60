"""One of the lab's PostgreSQL 15 servers (standalone, Dagster's storage, each Citus node), run as postgres."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from regression_pipelines.lab.binaries import INITDB, POSTGRES
from regression_pipelines.lab.settings import LAB_HOST


def initdb_once(data: Path, initdb: Path = INITDB.path) -> None:
    """Initialise `data` unless it already holds a cluster (a half-made one is removed first).

    `initdb` may be another install's (a private PostgreSQL tree with Citus in it)."""
    if (data / "PG_VERSION").exists():
        return
    shutil.rmtree(data, ignore_errors=True)
    subprocess.run(
        [
            "setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
            str(initdb), "-D", str(data), "-U", "postgres", "-E", "UTF8", "--no-sync",
            "--auth-local=trust", "--auth-host=scram-sha-256",
        ],
        check=True, capture_output=True,
    )  # fmt: skip


def postgres_argv(data: Path, port: int, socket_dir: Path, *settings: str, postgres: Path = POSTGRES.path) -> list[str]:
    """The server command line: loopback only, scram passwords, small buffers, plus `settings` (name=value)."""
    base = [
        f"listen_addresses={LAB_HOST}", f"unix_socket_directories={socket_dir}",
        "password_encryption=scram-sha-256", "shared_buffers=32MB", *settings,
    ]  # fmt: skip
    return [str(postgres), "-D", str(data), "-p", str(port)] + [a for s in base for a in ("-c", s)]
