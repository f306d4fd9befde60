"""Lab fixtures for integration tests: bring the lab up (idempotent) and hand out its endpoints.

Use from a conftest: `from tests.integration.lab_fixtures import lab_endpoints  # noqa: F401`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from regression_pipelines.lab import lifecycle
from regression_pipelines.lab.ports import claims, port_in_use
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.lab.state import load_endpoints

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def lab_endpoints() -> dict[str, Any]:
    """The lab of this environment (REGRESS_LAB_*), started if needed; left running for the next session."""
    settings = LabSettings.from_env()
    lifecycle.up(settings, out=lambda _line: None)
    return load_endpoints(settings)


def lab_env(lab_dir: Path, offset: int, **extra: str) -> dict[str, str]:
    """Environment for a separate lab: its own dir and port offset, nothing else inherited from REGRESS_LAB_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGRESS_LAB_")}
    env.update(REGRESS_LAB_DIR=str(lab_dir), REGRESS_LAB_PORT_OFFSET=str(offset), **extra)
    return env


def run_lab_cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `regress lab ...` (through the lab's own CLI module) as a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "regression_pipelines.lab.cli", "lab", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def unhealthy_after(rows: Callable[[], list[dict[str, Any]]], seconds: float = 20.0) -> list[dict[str, Any]]:
    """The rows still unhealthy once `seconds` have passed ([] as soon as a snapshot is healthy). HAProxy's
    view is a moving signal: under CI load a Patroni check can time out once and take a replica out of
    rotation for a second or two, so a lab is judged on whether it converges, not on one snapshot."""
    deadline = time.monotonic() + seconds
    while True:
        bad = [r for r in rows() if r["healthy"] is False]  # None: optional and not installed here
        if not bad or time.monotonic() >= deadline:
            return bad
        time.sleep(0.5)


def settings_for(env: dict[str, str]) -> LabSettings:
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return LabSettings.from_env()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def free_offset(first: int) -> int:
    """A REGRESS_LAB_PORT_OFFSET at or above `first` whose lab ports are all free right now: labs of other
    checkouts may run side by side at offsets of their own, and a fixed offset would sooner or later collide.
    The search starts at a per-process point, so two test sessions starting together rarely pick the same."""
    start = first + (os.getpid() % 40) * 7
    for offset in range(start, start + 3000, 7):
        settings = settings_for(lab_env(Path("/nonexistent"), offset))
        if not any(port_in_use(claim.port) for claim in claims(settings)):
            return offset
    raise RuntimeError(f"no lab port offset in {start}..{start + 3000} has all its ports free")


def new_lab_dir() -> Path:
    """A lab dir the postgres and rabbitmq users can traverse (pytest's tmp_path is 0700 under root)."""
    path = Path(tempfile.mkdtemp(prefix="regress-lab-test-"))
    path.chmod(0o755)
    return path


@pytest.fixture
def lab_tmp_dir() -> Iterator[Path]:
    path = new_lab_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)
