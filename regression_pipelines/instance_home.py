"""Where Dagster keeps runs and events: DAGSTER_HOME, defaulting to .dagster_home in the repo."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from regression_pipelines.lab.settings import REPO_ROOT


def ensure_dagster_home() -> Path:
    """Create DAGSTER_HOME (with the repo's dagster.yaml) if needed, so CLI runs land where the UI looks."""
    home = Path(os.environ.get("DAGSTER_HOME") or REPO_ROOT / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    os.environ["DAGSTER_HOME"] = str(home)
    if not config.exists():
        shutil.copyfile(REPO_ROOT / "dagster.yaml", config)
        _create_storage()
    return home


def _create_storage() -> None:
    """Create the storage schema once, up front: a `dagster dev` and a `regress run` starting together on a
    brand-new SQLite home otherwise race to create the same tables ("table jobs already exists")."""
    import dagster as dg

    with dg.DagsterInstance.get():
        pass
