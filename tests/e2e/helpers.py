"""Run the real `regress` and `dagster` commands of this checkout's venv."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
FAST_CACHE = ["--set", "cache_coherence.max_seconds=1", "--set", "cache_coherence.settle_seconds=0.2"]


def regress(
    *args: str, home: Path, timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DAGSTER_HOME": str(home), **(env or {})}
    return subprocess.run(
        [str(BIN / "regress"), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
