"""Binaries several lab services share, and one check that names every missing one with its Debian package."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from regression_pipelines.lab.errors import MissingBinaryError
from regression_pipelines.lab.service import Binary, LabService

PG_BIN = Path("/usr/lib/postgresql/15/bin")
POSTGRES = Binary(PG_BIN / "postgres", "postgresql-15")
INITDB = Binary(PG_BIN / "initdb", "postgresql-15")
SETPRIV = Binary(Path("/usr/bin/setpriv"), "util-linux")  # runs servers that refuse root as their own user


def check_binaries(services: Iterable[LabService]) -> None:
    """Raise one MissingBinaryError listing every missing binary of these services and its package."""
    missing = {b.path: b.package for svc in services for b in svc.binaries if not b.installed()}
    if missing:
        lines = [f"  {path} (Debian package {pkg})" for path, pkg in sorted(missing.items())]
        pkgs = " ".join(sorted({p.split()[0] for p in missing.values()}))
        raise MissingBinaryError(
            "lab binaries missing:\n" + "\n".join(lines) + f"\ninstall with: apt-get install -y {pkgs}"
        )
