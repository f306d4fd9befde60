"""Run this area's scenario against another deltalake release, in an isolated environment built by uv.

Why: upstream's correctness bugs live in particular releases (a MERGE that fails past 8,192 matched rows in
1.6.0, a change feed that panics after VACUUM in 0.24); the only way to know which check catches each is to run
the area on the release before and after the fix. The environment holds deltalake at that version plus the few
packages the scenario imports, pinned to this project's versions (no Dagster: the scenario and the kit do not
import it), and is kept under a cache folder for the next run. The scenario runs there as a subprocess under the
kit's supervisor (a crash still gives a verdict) and prints its result as JSON.

`python -m assets.delta_cdf.isolated run --settings '{...}' --root DIR --output DIR` is the subprocess side.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PINNED_WITH = ("pyarrow", "duckdb", "numpy", "pydantic")  # what the scenario imports besides deltalake
READY = ".regress-ready"


def uv_binary() -> str:
    found = REPO / ".tools" / "bin" / "uv"
    return str(found) if found.exists() else shutil.which("uv") or "uv"


def ensure_env(deltalake_version: str, cache: Path, timeout_s: float = 600) -> Path:
    """The interpreter of an environment with `deltalake==<version>` (built once, then reused)."""
    folder = cache / f"deltalake-{deltalake_version}"
    python = folder / "bin" / "python"
    if (folder / READY).exists():
        return python
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    uv = uv_binary()
    subprocess.run(
        [uv, "venv", "-q", "--python", sys.executable, str(folder)], check=True, timeout=timeout_s, capture_output=True
    )
    packages = [f"deltalake=={deltalake_version}"] + [f"{p}=={importlib.metadata.version(p)}" for p in PINNED_WITH]
    done = subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(python), *packages],
        timeout=timeout_s,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"uv could not install {packages}: {done.stderr.strip()[-500:]}")
    (folder / READY).write_text(" ".join(packages))
    return python


def run_isolated(
    python: Path, settings: dict[str, Any], root: Path, output: Path, timeout_s: float = 900
) -> dict[str, Any]:
    """Run the scenario with `python` (another environment); its result as plain data."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [
        str(python),
        "-m",
        "assets.delta_cdf.isolated",
        "run",
        "--settings",
        json.dumps(settings),
        "--root",
        str(root),
        "--output",
        str(output),
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"the isolated run printed no result (exit {done.returncode}): {done.stderr[-1500:]}")
    return json.loads(lines[-1])


# --- the subprocess side ------------------------------------------------------------------------------------


def _run(settings: dict[str, Any], root: Path, output: Path) -> dict[str, Any]:
    import uuid

    from assets.delta_cdf import scenario
    from assets.delta_cdf.config import DeltaCdfConfig
    from regression_pipelines.kit.supervisor import Supervisor
    from regression_pipelines.removal import remove_tree

    config = DeltaCdfConfig(**{"spark": "off", **settings})
    root.mkdir(parents=True, exist_ok=True)
    uri = str(root / f"cdf_{uuid.uuid4().hex[:12]}")
    log = logging.getLogger("delta_cdf.isolated")
    sup = Supervisor(area=scenario.AREA, checks=(*scenario.INVARIANTS, "no_operation_errors"), log=log)
    sup.created("delta_table", uri, remove=lambda: remove_tree(uri), exists=lambda: Path(uri).exists())
    result = sup.run(lambda: scenario.run(config, sup, uri, None, "isolated run", log, output))
    return {
        "invariants": [{"name": i.name, "passed": i.passed, "detail": i.detail} for i in result.invariants],
        "metrics": {m.name: m.value for m in result.metrics},
        "environment": {k: v for k, v in result.environment.items() if isinstance(v, str | int | float | bool)},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--settings", default="{}")
    run.add_argument("--root", type=Path, default=None)
    run.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.root or Path(scratch) / "tables"
        output = args.output or Path(scratch) / "out"
        print(json.dumps(_run(json.loads(args.settings), root, output), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
