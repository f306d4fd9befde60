"""Folders and config files of lab services, owned by the user a server runs as (PostgreSQL, Patroni and
RabbitMQ refuse to run as root, so their files must belong to `postgres` / `rabbitmq`)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from regression_pipelines.lab.settings import LabSettings


def chown_tree(path: Path, user: str) -> None:
    """Hand a directory (and what is in it) to a service user."""
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)


def service_dir(settings: LabSettings, name: str, user: str | None = None) -> Path:
    """<lab_dir>/<name>, created and (if `user`) owned by that user; the lab dir stays traversable."""
    path = settings.lab_dir / name
    path.mkdir(parents=True, exist_ok=True)
    settings.lab_dir.chmod(0o755)
    if user:
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


def write_file(path: Path, text: str, user: str | None = None, mode: int = 0o644) -> None:
    path.write_text(text)
    path.chmod(mode)
    if user:
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)
