"""A failed conservation or quality check shrunk to the fewest jobs that still show it (kit.generate.ddmin).

Replay is the whole pipeline again on fresh queues, tables and role, publishing only a subset of the run's
seeded jobs (`only_jobs`: indexes into the same seed's generation), so a candidate is exactly the jobs the run
published, byte for byte. The witness job (a valid job the producer published that has no row, else the last
job) is always kept. The whole run's jobs are replayed first: a failure that does not come back on fresh state
was not caused by the jobs (a nemesis, a timing) and is reported as such. Replay is possible only when the
failure can come from the jobs: no nemesis, and no fault of the run config that acts on timing (a killed loader,
a restarted broker, a burst before the consumers start). The shrunk case is written next to the run as JSON:
the settings that replay it with `regress run --set etl_pipeline.KEY=VALUE`, and the jobs in words.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from assets.etl_pipeline import oracle
from assets.etl_pipeline.config import EtlConfig
from regression_pipelines.kit.generate import ddmin
from regression_pipelines.results import ScenarioResult

CHECKS = (oracle.CONSERVATION, oracle.DATA_QUALITY)
TIMING_FAULTS = ("worker_sigkill", "non_idempotent_load", "ack_before_commit", "broker_restart", "burst")
REPLAY_SECONDS = 40.0  # one replay's own time budget (max_seconds of the replayed run)


@dataclass(frozen=True)
class Shrunk:
    check: str
    jobs: list[int]
    reproduced: bool
    complete: bool
    replays: int
    path: Path | None

    def describe(self) -> str:
        if not self.reproduced:
            return (
                f"not shrunk: replaying the run's {len(self.jobs)} jobs on fresh queues and tables did not fail "
                f"{self.check} again ({self.replays} replays): not caused by the jobs alone"
            )
        state = "" if self.complete else " (budget spent before 1-minimal)"
        where = f"; case: {self.path}" if self.path else ""
        return f"shrunk to {len(self.jobs)} jobs in {self.replays} replays{state}: indexes {self.jobs[:10]}{where}"


def replayable(config: EtlConfig) -> str | None:
    """Why a run's failure cannot be shrunk by replay, or None when it can."""
    if not config.shrink_seconds:
        return "shrink_seconds is 0"
    if config.nemesis != "none":
        return f"nemesis={config.nemesis} acts on timing"
    if config.fault in TIMING_FAULTS:
        return f"fault={config.fault} acts on timing"
    return None


def witness(source: Path, loaded: Path) -> int | None:
    """Index of the first valid job with no loaded row (the failure's witness), from the run's own files."""
    jobs = pq.read_table(source, columns=["job_id", "tenant", "valid"]).to_pylist()
    rows = pq.read_table(loaded, columns=["job_id", "tenant_id"]).to_pylist()
    have = {(r["tenant_id"], r["job_id"]) for r in rows}
    for index, job in enumerate(jobs):
        if job["valid"] and (job["tenant"], job["job_id"]) not in have:
            return index
    return None


def shrink(
    result: ScenarioResult,
    config: EtlConfig,
    replay: Callable[[EtlConfig], ScenarioResult],
    output_dir: Path,
    log: Any = None,
) -> dict[str, str]:
    """Shrink the first failed check of CHECKS; returns {check: what became of it} (empty: nothing failed)."""
    failed = [c for c in CHECKS if any(i.name == c and not i.passed for i in result.invariants)]
    if not failed or config.only_jobs is not None:
        return {}
    check = failed[0]
    why_not = replayable(config)
    if why_not is not None:
        return {check: f"not shrunk: {why_not}"}
    source, loaded = output_dir / "source_batch.parquet", output_dir / "loaded_jobs.parquet"
    if not source.exists() or not loaded.exists():
        return {check: "not shrunk: the run's source or loaded file is missing"}
    total = pq.read_metadata(source).num_rows
    target = witness(source, loaded)
    if target is None:
        target = total - 1
    deadline = time.monotonic() + float(config.shrink_seconds or 0)
    base = replace_config(config)

    def shows(candidate: list[int]) -> bool | None:
        if time.monotonic() >= deadline:
            return None
        replayed = replay(base.model_copy(update={"only_jobs": sorted(candidate)}))
        try:
            return not replayed.invariant(check).passed
        except KeyError:
            return None

    prefix = [i for i in range(total) if i != target]
    found = ddmin(prefix, target, shows, budget=64)
    jobs = sorted(found.steps)
    path = None
    if found.reproduced:
        path = write_case(output_dir, check, base, jobs, found.complete, found.tests, result)
    text = Shrunk(check, jobs, found.reproduced, found.complete, found.tests, path).describe()
    if log is not None:
        log.info(f"etl_pipeline: {check}: {text}")
    return {check: text}


def replace_config(config: EtlConfig) -> EtlConfig:
    """The replay's settings: the run's own (seed included), no shrinking inside a replay, a bounded time."""
    return config.model_copy(
        update={"shrink_seconds": 0.0, "max_seconds": min(float(config.max_seconds or REPLAY_SECONDS), REPLAY_SECONDS)}
    )


def write_case(
    output_dir: Path,
    check: str,
    config: EtlConfig,
    jobs: list[int],
    complete: bool,
    replays: int,
    result: ScenarioResult,
) -> Path:
    """The shrunk case next to the run: how to replay it and what the jobs are."""
    from assets.etl_pipeline.generator import for_config

    settings = config.model_dump(exclude_defaults=False)
    settings.update(only_jobs=jobs, shrink_seconds=0.0)
    described = [
        {
            "index": i,
            "job_id": j.job_id,
            "tenant": j.tenant,
            "shape": j.shape,
            "valid": j.valid,
            "body": j.body[:300].decode("utf-8", "replace"),
            "body_bytes": len(j.body),
        }  # fmt: skip
        for i, j in zip(jobs, for_config(replace_settings(config, jobs)), strict=False)
    ]
    detail = next((i.detail for i in result.invariants if i.name == check), "")
    case = {
        "area": "etl_pipeline",
        "check": check,
        "failure": detail,
        "complete": complete,
        "replays": replays,
        "replay": " ".join(f"--set etl_pipeline.{k}={json.dumps(v)}" for k, v in sorted(settings.items())
                           if v is not None and k in ("seed", "profile", "jobs", "tenants", "only_jobs", "fault")),
        "settings": settings,
        "jobs": described,
    }  # fmt: skip
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"etl_pipeline_{check}_shrunk.json"
    path.write_text(json.dumps(case, indent=2, default=str, ensure_ascii=False))
    return path


def replace_settings(config: EtlConfig, jobs: list[int]) -> EtlConfig:
    return config.model_copy(update={"only_jobs": jobs})
