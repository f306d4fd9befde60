"""Isolated environments for Python-library versions: this project's lock with one package overridden, built by uv.

`uv export --frozen` gives the locked requirements (no dev group, not the project itself: the child imports the
project from PYTHONPATH, so the code under test is the checkout's); the one package's pin is replaced with the
version asked for; `uv venv` + `uv pip install` build it under the cache folder, keyed by package, version and a
hash of uv.lock, so a changed lock builds afresh and a second matrix reuses the first's environment in
milliseconds. uv's own cache makes a rebuild cheap (wheels are linked, pyspark's built wheel is reused): about
40 s on these machines. Same approach as assets/delta_cdf/isolated.py, but with the whole lock, so every area
(and Dagster's resource classes) imports in the child.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READY = ".regress-ready"
CACHE_ENV = "REGRESS_MATRIX_ENVS"


class EnvBuildError(RuntimeError):
    """uv could not build the environment; the message carries uv's own words."""


def cache_root() -> Path:
    """REGRESS_MATRIX_ENVS, else .lab/matrix-envs in the checkout (ignored by git like the rest of .lab)."""
    return Path(os.environ[CACHE_ENV]) if os.environ.get(CACHE_ENV) else REPO / ".lab" / "matrix-envs"


def uv_binary() -> str | None:
    found = REPO / ".tools" / "bin" / "uv"
    return str(found) if found.exists() else shutil.which("uv")


def lock_hash(lock: Path = REPO / "uv.lock") -> str:
    return hashlib.sha256(lock.read_bytes()).hexdigest()[:12]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def override(requirements: Sequence[str], package: str, version: str) -> list[str]:
    """The locked requirement lines with `package`'s pin replaced by `package==version` (added if absent)."""
    out, wanted = [], _normal(package)
    for line in requirements:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name = re.split(r"[\s=<>!~;\[@]", text, maxsplit=1)[0]
        if _normal(name) == wanted:
            continue
        out.append(text)
    return [*out, f"{package}=={version}"]


def locked_requirements(uv: str) -> list[str]:
    done = subprocess.run(
        [uv, "export", "--frozen", "--no-hashes", "--no-emit-project", "--no-dev", "--no-header", "--no-annotate"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise EnvBuildError(f"uv export failed: {done.stderr.strip()[-500:]}")
    return done.stdout.splitlines()


def ensure_env(package: str, version: str, cache: Path | None = None, timeout_s: float = 900) -> Path:
    """The interpreter of the environment with `package==version` over the lock (built once, then reused)."""
    uv = uv_binary()
    if uv is None:
        raise EnvBuildError("uv is not installed: run `make setup` (it installs uv under .tools)")
    folder = (cache or cache_root()) / f"{package}-{version}-{lock_hash()}"
    python = folder / "bin" / "python"
    if (folder / READY).exists() and python.exists():
        return python
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    requirements = override(locked_requirements(uv), package, version)
    (folder.parent / f"{folder.name}.txt").write_text("\n".join(requirements) + "\n")
    steps = [
        [uv, "venv", "-q", "--python", sys.executable, str(folder)],
        [uv, "pip", "install", "-q", "--python", str(python), "-r", str(folder.parent / f"{folder.name}.txt")],
    ]
    env = {**os.environ, "UV_COMPILE_BYTECODE": "1", "UV_PYTHON_DOWNLOADS": "never"}
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired:
            raise EnvBuildError(f"{' '.join(step[:3])} took over {timeout_s:.0f} s") from None
        if done.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise EnvBuildError(f"uv could not build {package}=={version} over the lock: {done.stderr.strip()[-800:]}")
    (folder / READY).write_text(f"{package}=={version}\n")
    return python
