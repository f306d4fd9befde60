"""Shrink a failing check to the fewest operations that still show it, replaying on fresh tables.

The kit's ddmin keeps the operation at the version the check blames first and reduces the ones before it
(version 0, the table's creation, is always kept). Each candidate is committed by one writer on a new table
beside the run's, read back by delta-rs and DuckDB and judged by the same oracle; it shows the failure when the
same check fails. The result is written next to the run as `delta_cdf_shrunk_<check>.json`, a case that
replays with `python -m assets.delta_cdf.shrink <case.json>` (exit 1 while the check still fails).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assets.delta_cdf import known_bugs, oracle
from assets.delta_cdf.config import DeltaCdfConfig
from assets.delta_cdf.model import Change, VersionedModel
from assets.delta_cdf.ops import Op
from assets.delta_cdf.tablelog import Commit, read_log
from assets.delta_cdf.workload import Outcome, WorkloadLog, Writer
from regression_pipelines.kit.generate import ddmin
from regression_pipelines.results import Invariant

if TYPE_CHECKING:
    from assets.delta_cdf.engines import DuckDbEngine

CASE_PREFIX = "delta_cdf_shrunk_"


def ops_by_version(outcomes: Sequence[Outcome], commits: Mapping[int, Commit], latest: int) -> list[Op]:
    """The workload's ops in the order the log committed them (version 0 first)."""
    by_tag = {o.tag: o.op for o in outcomes if o.error is None}
    return [by_tag[commits[v].tag] for v in range(latest + 1) if v in commits and commits[v].tag in by_tag]


def replay_ops(
    ops: Sequence[Op], config: DeltaCdfConfig, root: Path, duckdb: DuckDbEngine | None = None
) -> dict[str, Invariant]:
    """Commit `ops` one by one on a fresh table under `root`, read it back and judge it; the table is removed.
    `duckdb`: the DuckDB reader to use (its child process is shared by the replays; else one for this replay)."""
    from assets.delta_cdf.engines import DeltaRsEngine, DuckDbEngine
    from assets.delta_cdf.scenario import judge, read_table

    own = duckdb is None
    reader = DuckDbEngine(config.read_timeout_s) if duckdb is None else duckdb

    folder = Path(tempfile.mkdtemp(prefix="cdf_replay_", dir=root))
    uri = str(folder / "table")
    try:
        workload = WorkloadLog()
        writer = Writer(uri, 0, workload, config.max_conflict_retries)
        for op in ops:
            writer.run(op)
        commits = read_log(uri)
        ours = workload.by_tag()
        changes = {v: ours[c.tag].op.change() if c.tag in ours else Change("unknown") for v, c in commits.items()}
        model = VersionedModel(changes)
        infos = {v: oracle.CommitInfo(v, c.operation, c.metrics) for v, c in commits.items()}
        readings = read_table(uri, model, infos, config, [DeltaRsEngine(config.read_timeout_s), reader])
        checks = judge(readings, {})
        checks[oracle.COMPACTION_TIME_TRAVEL] = oracle.check_compaction_and_time_travel(readings)
        return checks
    finally:
        if own:
            reader.close()
        shutil.rmtree(folder, ignore_errors=True)


def shrink_failures(
    failing: Sequence[Invariant], ops: list[Op], config: DeltaCdfConfig, uri: str, output_dir: Path | None, log: Any
) -> list[str]:
    """Shrink each failing check (within the run's replay and time budget); one summary line per check."""
    from assets.delta_cdf.engines import DuckDbEngine

    duckdb = DuckDbEngine(config.read_timeout_s)
    try:
        return _shrink_each(failing, ops, config, uri, output_dir, log, duckdb)
    finally:
        duckdb.close()


def _shrink_each(
    failing: Sequence[Invariant],
    ops: list[Op],
    config: DeltaCdfConfig,
    uri: str,
    output_dir: Path | None,
    log: Any,
    duckdb: DuckDbEngine,
) -> list[str]:
    deadline = time.monotonic() + config.shrink_seconds
    budget = config.shrink_replays
    root = Path(uri).parent
    summaries = []
    for check in failing:
        first = int(check.facts.get("first_version", len(ops) - 1))
        if budget <= 0 or time.monotonic() >= deadline or not 0 < first < len(ops):
            summaries.append(f"{check.name}: not shrunk (budget spent or nothing before v{first} to reduce)")
            continue
        base, prefix, target = ops[0], ops[1:first], ops[first]

        def shows(candidate: list[Op], name: str = check.name, first_op: Op = base) -> bool | None:
            if time.monotonic() >= deadline:
                return None
            verdict = replay_ops([first_op, *candidate], config, root, duckdb).get(name)
            return verdict is not None and not verdict.passed

        found = ddmin(prefix, target, shows, budget)
        budget -= found.tests
        steps = [base, *found.steps]
        path = _write_case(output_dir, check, steps, config, found.reproduced, found.complete, found.tests)
        where = f"written to {path}" if path else "not written (no output folder)"
        summary = (
            f"{check.name}: {len(prefix) + 2} ops shrunk to {len(steps)} ({' '.join(o.kind for o in steps)})"
            if found.reproduced
            else f"{check.name}: did not come back on a fresh table in a serial replay"
        )
        summaries.append(f"{summary} in {found.tests} replays{'' if found.complete else ' (budget ran out)'}, {where}")
        log.info(f"delta_cdf shrink: {summaries[-1]}")
    return summaries


def _write_case(
    output_dir: Path | None,
    check: Invariant,
    ops: list[Op],
    config: DeltaCdfConfig,
    reproduced: bool,
    complete: bool,
    tests: int,
) -> Path | None:
    if output_dir is None:
        return None
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"{CASE_PREFIX}{check.name}.json"
    case = {
        "area": "delta_cdf",
        "check": check.name,
        "detail": check.detail,
        "deltalake": known_bugs.installed(),
        "reproduced": reproduced,
        "one_minimal": complete,
        "replays": tests,
        "config": config.model_dump(),
        "ops": [op.to_json() for op in ops],
        "replay": f"python -m assets.delta_cdf.shrink {path}",
    }
    path.write_text(json.dumps(case, indent=1, default=str))
    return path


def replay_case(path: Path, root: Path | None = None) -> tuple[str, dict[str, Invariant]]:
    case = json.loads(path.read_text())
    config = DeltaCdfConfig(**{k: v for k, v in case["config"].items() if k in DeltaCdfConfig.model_fields})
    ops = [Op.from_json(o) for o in case["ops"]]
    with tempfile.TemporaryDirectory() as folder:
        return case["check"], replay_ops(ops, config, root or Path(folder))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Replay a shrunk delta_cdf case on a fresh table")
    parser.add_argument("case", type=Path)
    args = parser.parse_args(argv)
    name, checks = replay_case(args.case)
    for check in checks.values():
        print(f"{'PASS' if check.passed else 'FAIL'} {check.name}: {check.detail}")
    still = not checks[name].passed
    print(f"{name} {'still fails' if still else 'passes now'} (deltalake {known_bugs.installed()})")
    return 1 if still else 0


if __name__ == "__main__":
    sys.exit(main())
