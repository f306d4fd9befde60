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
    if not config.exists():
        shutil.copyfile(REPO_ROOT / "dagster.yaml", config)
    os.environ["DAGSTER_HOME"] = str(home)
    return home
