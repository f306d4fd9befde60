"""Calibration probes: the field's own instrument, run against the same server right before a workload.

A harness figure alone cannot tell a slow server from a slow harness or a busy machine. A short, bounded run of
`redis-benchmark` or `pgbench` at the harness's concurrency, recorded next to the harness's figures, can: the
instrument's p50 is what the server costs, and `harness p50 / instrument p50` is what the harness adds.

Pure Python (no Dagster). A missing instrument, or one that cannot run here, gives an unavailable calibration
with its reason, never a failure. Passwords go to the instrument through its environment (PGPASSWORD) and never
into a command line, a log or a figure; redis-benchmark 7.0 takes a password only on its command line (visible
in `ps`), so against a password-protected Redis the probe reports itself unavailable instead.
"""

from __future__ import annotations

import csv
import io
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from regression_pipelines.errors import mask_secrets
from regression_pipelines.measure import percentile
from regression_pipelines.results import Direction, Metric, MetricKind

PREFIX = "calibration"
REDIS_BENCHMARK = "redis-benchmark"
PGBENCH_PATHS = ("/usr/lib/postgresql/15/bin/pgbench", "pgbench")
SLACK_S = 10.0  # beyond its own bound, how long an instrument may take before it is stopped


@dataclass(frozen=True)
class Calibration:
    """One instrument's reading: p50/p99 latency in ms at a concurrency, or the reason it is unavailable."""

    instrument: str  # metric stem, e.g. "redis_get" or "pgbench_select"
    concurrency: int
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    ops: int = 0
    reason: str = ""

    @property
    def available(self) -> bool:
        return not self.reason and self.ops > 0 and self.p50_ms > 0

    def metrics(self, harness_p50_ms: dict[str, float] | None = None) -> list[Metric]:
        """`calibration.<instrument>_p50_ms` (judged: the server's own latency with the least harness noise), its
        p99 (info: too few samples in a 1 s probe to judge), and per harness figure the ratio
        `harness p50 / instrument p50` (info: what the harness adds; it moves when the harness changes)."""
        stem = f"{PREFIX}.{self.instrument}"
        up = Direction.HIGHER_IS_BETTER
        available = Metric(f"{stem}_available", int(self.available), "bool", up, MetricKind.INFO)
        if not self.available:
            return [available]
        figures = [
            available,
            Metric(f"{stem}_p50_ms", self.p50_ms, "ms", samples=self.ops),
            Metric(f"{stem}_p99_ms", self.p99_ms, "ms", kind=MetricKind.INFO, samples=self.ops),
            Metric(f"{stem}_concurrency", self.concurrency, "clients", Direction.HIGHER_IS_BETTER, MetricKind.INFO),
        ]
        for name, value in (harness_p50_ms or {}).items():
            if value > 0 and math.isfinite(value):
                figures.append(Metric(f"{PREFIX}.{name}_ratio", value / self.p50_ms, "x", kind=MetricKind.INFO))
        return figures

    def describe(self) -> str:
        """One line for logs and environment metadata (never carries a password)."""
        if not self.available:
            return f"{self.instrument}: unavailable ({self.reason})"
        return (
            f"{self.instrument}: p50 {self.p50_ms:.3f} ms, p99 {self.p99_ms:.3f} ms, "
            f"{self.ops} ops at {self.concurrency} clients"
        )


def _unavailable(instrument: str, concurrency: int, reason: str) -> Calibration:
    return Calibration(instrument, concurrency, reason=reason)


def _run(argv: Sequence[str], timeout_s: float, env: dict[str, str] | None = None, cwd: str | None = None) -> str:
    """The instrument's stdout; raises RuntimeError with its first stderr line when it fails."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s, env=env, cwd=cwd, check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        telling = [line for line in lines if "FATAL" in line or "failed" in line] or lines[-1:]
        raise RuntimeError(telling[0] if telling else f"exit status {done.returncode}")
    return done.stdout


def redis_get(
    host: str,
    port: int,
    key: str,
    concurrency: int,
    requests: int = 10_000,
    password: str = "",
    binary: str = REDIS_BENCHMARK,
) -> Calibration:
    """`redis-benchmark GET <key>` with `concurrency` clients and `requests` requests (p50 from its CSV)."""
    instrument = "redis_get"
    found = shutil.which(binary)
    if found is None:
        return _unavailable(instrument, concurrency, f"{binary} not found (Debian package redis-tools)")
    if password:
        return _unavailable(
            instrument, concurrency, "redis-benchmark takes a password only on its command line (visible in ps)"
        )
    argv = [found, "-h", host, "-p", str(port), "-c", str(concurrency), "-n", str(requests), "--csv", "GET", key]
    try:
        out = _run(argv, timeout_s=SLACK_S + requests / 1000)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        return _unavailable(instrument, concurrency, _short(exc))
    rows = list(csv.DictReader(io.StringIO(out)))
    if not rows or "p50_latency_ms" not in rows[-1]:
        return _unavailable(instrument, concurrency, f"unexpected redis-benchmark output: {out.strip()[:120]!r}")
    row = rows[-1]
    p50, p99 = float(row["p50_latency_ms"]), float(row["p99_latency_ms"])
    return Calibration(instrument, concurrency, p50, p99, ops=requests)


def pgbench(
    host: str,
    port: int,
    user: str,
    dbname: str,
    script: str,
    concurrency: int,
    seconds: float = 1.0,
    password: str = "",
    instrument: str = "pgbench_select",
    binary: str | None = None,
) -> Calibration:
    """`pgbench` running `script` (a custom script, e.g. a point SELECT on the area's own table) for `seconds`
    with `concurrency` clients, prepared statements like psycopg's; p50/p99 from its per-transaction log."""
    found = _which_pgbench(binary)
    if found is None:
        return _unavailable(instrument, concurrency, "pgbench not found (postgresql-15's bin directory)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSWORD"] = password
    env["PGCONNECT_TIMEOUT"] = "5"
    with tempfile.TemporaryDirectory(prefix="calibration-") as work:
        (Path(work) / "script.sql").write_text(script)
        argv = [
            found, "-h", host, "-p", str(port), "-U", user, "-n", "-M", "prepared",
            "-c", str(concurrency), "-j", "1", "-T", str(max(1, math.ceil(seconds))),
            "-f", "script.sql", "-l", "--log-prefix", "tx", dbname,
        ]  # fmt: skip
        try:
            _run(argv, timeout_s=seconds + SLACK_S, env=env, cwd=work)
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
            return _unavailable(instrument, concurrency, mask_secrets(_short(exc), password))
        fields = [line.split() for log in Path(work).glob("tx*") for line in log.read_text().splitlines()]
        latencies_ms = [int(f[2]) / 1000.0 for f in fields if len(f) > 2 and f[2].isdigit()]
    if not latencies_ms:
        return _unavailable(instrument, concurrency, "pgbench ran no transaction")
    return Calibration(
        instrument, concurrency, percentile(latencies_ms, 50), percentile(latencies_ms, 99), ops=len(latencies_ms)
    )


def _which_pgbench(binary: str | None) -> str | None:
    for candidate in (binary,) if binary else PGBENCH_PATHS:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def _short(exc: BaseException) -> str:
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"did not finish within {exc.timeout:.0f} s"
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
