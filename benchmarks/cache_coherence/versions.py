"""The cache area against other versions of its client libraries (redis-py, hiredis, psycopg), each in a uv-built
isolated environment, on the lab's servers: which checks pass with which version, per profile and seed.

Run: .venv/bin/python -m benchmarks.cache_coherence.versions [--sets NAME,...] [--seeds 1,2,3]
     [--set KEY=VALUE ...] [--out FILE.jsonl]
Environments are cached under ~/.cache/regression_pipelines/cache_versions/ (one per version set). The child runs
the scenario under the kit's supervisor with plain clients (no Dagster in the environment), with this tree on
PYTHONPATH, and prints one JSON line: versions, failed checks, reads checked.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CACHE = Path.home() / ".cache" / "regression_pipelines" / "cache_versions"
UV = REPO / ".tools" / "bin" / "uv"
BASE = ("pydantic==2.14.3", "numpy==2.4.6", "pyyaml==6.0.3")
# name -> the client libraries of that set (the project's own pins are "current").
VERSION_SETS: dict[str, tuple[str, ...]] = {
    "current": ("redis==8.1.0", "hiredis==3.5.0", "psycopg[binary]==3.3.9"),
    "redis-8.0.1": ("redis==8.0.1", "hiredis==3.5.0", "psycopg[binary]==3.3.9"),
    "redis-7.1.1": ("redis==7.1.1", "hiredis==3.5.0", "psycopg[binary]==3.3.9"),
    "redis-6.4.0": ("redis==6.4.0", "hiredis==3.2.1", "psycopg[binary]==3.3.9"),
    "redis-5.2.1": ("redis==5.2.1", "hiredis==3.1.0", "psycopg[binary]==3.3.9"),
    "redis-5.0.8": ("redis==5.0.8", "hiredis==2.3.2", "psycopg[binary]==3.3.9"),
    "psycopg-3.2.10": ("redis==8.1.0", "hiredis==3.5.0", "psycopg[binary]==3.2.10"),
    "psycopg-3.1.20": ("redis==8.1.0", "hiredis==3.5.0", "psycopg[binary]==3.1.20"),
}


def environment(name: str) -> Path:
    """The set's environment, built once with uv (its python is the one running this script)."""
    packages = (*BASE, *VERSION_SETS[name])
    tag = hashlib.sha256(" ".join(packages).encode()).hexdigest()[:10]
    venv = CACHE / f"{name}-{tag}"
    python = venv / "bin" / "python"
    if not python.exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
        subprocess.run([str(UV), "pip", "install", "--quiet", "--python", str(python), *packages], check=True)
    return python


def run_in(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    python = environment(name)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [str(python), "-m", "benchmarks.cache_coherence.versions", "--child", json.dumps(settings)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"set": name, "error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return {"set": name, **json.loads(lines[-1])}


class PlainPostgres:
    """The lab's PostgreSQL as the area's run uses its resource, without Dagster (not in the environment)."""

    def __init__(self, lab: Any) -> None:
        self.host, self.port, self.user = "127.0.0.1", lab.postgres_port, lab.postgres_user
        self.password, self.dbname = lab.postgres_password, lab.postgres_db

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=self.dbname,
            autocommit=True,
        )  # fmt: skip

    def describe(self) -> str:
        return f"postgres {self.host}:{self.port}/{self.dbname}"

    def nemesis_endpoint(self) -> dict[str, Any]:
        return {"service": "postgres", "host": self.host, "port": self.port, "dbname": self.dbname, "user": self.user}


class PlainRedis:
    def __init__(self, lab: Any) -> None:
        self.host, self.port, self.password = "127.0.0.1", lab.redis_port, ""

    def client(self, pool_size: int = 32) -> Any:
        import redis

        pool = redis.BlockingConnectionPool(
            host=self.host, port=self.port, socket_timeout=5.0, socket_connect_timeout=5.0,
            max_connections=pool_size, decode_responses=True,
        )  # fmt: skip
        client = redis.Redis(connection_pool=pool)
        client.ping()
        return client

    def nemesis_endpoint(self) -> dict[str, Any]:
        return {"service": "redis", "host": self.host, "port": self.port, "db": 0}


def child(settings: dict[str, Any]) -> None:
    """Inside the isolated environment: one run through the kit (nemesis included) with plain clients."""
    from assets.cache_coherence import AREA
    from regression_pipelines.kit import RunContext, run_area
    from regression_pipelines.lab.settings import LabSettings

    lab = LabSettings.from_env()
    config = AREA.config.model_validate({"calibrate": False, **settings})
    resources = {"postgres": PlainPostgres(lab), "redis": PlainRedis(lab)}
    out = Path(tempfile.mkdtemp(prefix="cache-versions-"))
    result = run_area(AREA, config, RunContext("versions", resources, out))
    metrics = {m.name: m.value for m in result.metrics}
    print(
        json.dumps(
            {
                "versions": {k: str(result.environment.get(f"{k}_version", "?")) for k in ("redis_py", "psycopg")},
                "hiredis": _hiredis_version(),
                "seed": result.environment.get("seed"),
                "nemesis": config.nemesis,
                "failed": {inv.name: inv.detail[:400] for inv in result.invariants if not inv.passed},
                "reads_checked": sum(v for k, v in metrics.items() if k.endswith(".reads_checked")),
                "error_rate": metrics.get("error_rate"),
            }
        )
    )


def _hiredis_version() -> str:
    try:
        import hiredis

        return str(hiredis.__version__)
    except ImportError:
        return "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sets", default=",".join(VERSION_SETS))
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.child is not None:
        child(json.loads(args.child))
        return
    base = dict(item.split("=", 1) for item in args.settings)
    for name in args.sets.split(","):
        for seed in args.seeds.split(","):
            line = run_in(name, {**base, "seed": int(seed)})
            print(json.dumps(line), flush=True)
            if args.out:
                with args.out.open("a") as out:
                    out.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
