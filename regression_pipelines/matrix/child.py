"""One area run in a child process (the variant's environment), and the parent's side that starts it.

The child imports the project from PYTHONPATH and its libraries from the interpreter it was started with (an
isolated environment for a Python-library version, the project's own for setting sets and server versions), so
the area's engine calls use exactly that library version. It runs the area the way every caller does,
`kit.run_area` (guard, supervisor, nemesis, cleanup), with the profile's resources opened by Dagster's
`build_resources` (Dagster as a library: no run, no instance), and prints one marked JSON line: the result, or
why there is none. The parent keeps Dagster: it records the results as runs (`dagster_runs`).

`python -m regression_pipelines.matrix.child --area AREA --config JSON --output DIR` is the child's side.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from regression_pipelines.matrix.run import Outcome
from regression_pipelines.matrix.versions import PYTHON, SERVER, Variant
from regression_pipelines.results import Invariant, Metric, ScenarioResult

REPO = Path(__file__).resolve().parents[2]
MARK = "REGRESS-MATRIX-RESULT "
CLEANUP_GRACE_S = 120.0  # the kit's cleanup is bounded by 90 s (supervisor.CLEANUP_TOTAL_S)
COMPONENTS = ("deltalake", "duckdb", "pyarrow", "redis", "psycopg", "pika", "pyspark")


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def result_to_json(result: ScenarioResult) -> dict[str, Any]:
    return {
        "area": result.area,
        "metrics": [
            {
                "name": m.name,
                "value": _plain(m.value),
                "unit": m.unit,
                "direction": m.direction.value,
                "kind": m.kind.value,
                "samples": m.samples,
            }
            for m in result.metrics
        ],
        "invariants": [
            {"name": i.name, "passed": i.passed, "detail": i.detail, "facts": _plain(dict(i.facts))}
            for i in result.invariants
        ],
        "environment": _plain(result.environment),
        "comparable_on": _plain(result.comparable_on),
        "stages": _plain(result.stages),
    }


def result_from_json(data: Mapping[str, Any]) -> ScenarioResult:
    return ScenarioResult(
        area=data["area"],
        metrics=[
            Metric(
                m["name"],
                math.nan if m["value"] is None else m["value"],
                m["unit"],
                m["direction"],
                m["kind"],
                m.get("samples"),
            )
            for m in data.get("metrics", [])
        ],
        invariants=[Invariant(i["name"], i["passed"], i["detail"], i.get("facts") or {}) for i in data["invariants"]],
        environment=dict(data.get("environment") or {}),
        comparable_on=dict(data.get("comparable_on") or {}),
        stages={k: dict(v) for k, v in (data.get("stages") or {}).items()},
    )


def parse_output(stdout: str, stderr: str, returncode: int) -> Outcome:
    """The child's marked line as an Outcome; no line is an error naming the exit code and stderr's tail."""
    lines = [line for line in stdout.splitlines() if line.startswith(MARK)]
    if not lines:
        tail = " | ".join(stderr.strip().splitlines()[-6:])[-800:]
        return Outcome(error=f"the child printed no result (exit {returncode}): {tail or 'no output'}")
    data = json.loads(lines[-1][len(MARK) :])
    if data.get("result") is None:
        return Outcome(skipped=data.get("skipped", ""), error=data.get("error", ""))
    result = result_from_json(data["result"])
    result.environment.update({f"component.{k}": v for k, v in (data.get("components") or {}).items()})
    return Outcome(result=result)


# --- the parent's side -------------------------------------------------------------------------------------


class ChildExecutor:
    """Runs each area in a child process with the variant's interpreter; switches the lab's Citus per version.

    `python_for(variant)` gives the interpreter (built on first use: `envs.ensure_env`); `switch_citus(version)`
    restarts the lab's Citus service from that version's private install (and is called again with None at the
    end, to put the lab back on the version it was started with).
    """

    def __init__(
        self,
        python_for: Callable[[Variant], str],
        output_root: Path,
        switch_citus: Callable[[str | None], None] | None = None,
        timeout_s: float = 900.0,
    ) -> None:
        self.python_for = python_for
        self.output_root = output_root
        self.switch_citus = switch_citus
        self.timeout_s = timeout_s
        self.citus: str | None = None

    def activate(self, variant: Variant) -> None:
        if variant.kind == SERVER and variant.package == "citus" and self.citus != variant.version:
            if self.switch_citus is None:
                raise RuntimeError("this executor cannot switch the lab's Citus")
            self.switch_citus(variant.version)
            self.citus = variant.version
        elif variant.kind == PYTHON:
            self.python_for(variant)  # build the environment now, not inside a timed round

    def close(self) -> None:
        if self.citus is not None and self.switch_citus is not None:
            self.switch_citus(None)
            self.citus = None

    def run(self, variant: Variant, area: str, config: Mapping[str, Any]) -> Outcome:
        output = self.output_root / variant.label.replace("=", "_") / uuid.uuid4().hex[:8]
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
        if self.citus is not None:
            env["REGRESS_LAB_CITUS_VERSION"] = self.citus
        command = [
            self.python_for(variant),
            "-m",
            "regression_pipelines.matrix.child",
            "--area",
            area,
            "--config",
            json.dumps(dict(config)),
            "--output",
            str(output),
        ]
        try:
            child = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        except OSError as exc:  # the interpreter is gone (a cache folder removed under a running matrix...)
            return Outcome(error=f"could not start the child ({command[0]}): {exc}")
        try:
            stdout, stderr = child.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            return Outcome(error=self._stop(child))
        return parse_output(stdout, stderr, child.returncode)

    def _stop(self, child: subprocess.Popen[str]) -> str:
        """SIGTERM first (the child's supervisor then removes what the run created), SIGKILL after the grace."""
        child.terminate()
        try:
            child.communicate(timeout=CLEANUP_GRACE_S)
            how = "stopped by SIGTERM, which the child turns into the kit's cleanup"
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            how = f"killed after {CLEANUP_GRACE_S:.0f} s of SIGTERM grace: what it created may be left behind"
        return f"the child did not finish within {self.timeout_s:.0f} s ({how})"


# --- the child's side --------------------------------------------------------------------------------------


def component_versions() -> dict[str, str]:
    import importlib.metadata

    found = {}
    for name in COMPONENTS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def run_child(area_name: str, settings: Mapping[str, Any], output: Path) -> dict[str, Any]:
    import dagster as dg

    from regression_pipelines.kit import RunContext, run_area
    from regression_pipelines.kit.declaration import AreaSkipped
    from regression_pipelines.kit.discovery import discover_areas
    from regression_pipelines.kit.supervisor import UNUSABLE_ENVIRONMENT
    from regression_pipelines.resources_config import build_resources

    areas = {area.name: area for area in discover_areas()}
    area = areas[area_name]
    config = area.config.model_validate(dict(settings))
    profile = build_resources()
    wanted = {key: profile[key] for key in area.resources}
    output.mkdir(parents=True, exist_ok=True)
    try:
        with dg.build_resources(wanted) as opened:
            resources = {key: getattr(opened, key) for key in wanted}
            ctx = RunContext(run_id=f"matrix-{uuid.uuid4().hex[:12]}", resources=resources, output_dir=output)
            result = run_area(area, config, ctx)
    except AreaSkipped as skip:
        return {"result": None, "skipped": skip.reason}
    except UNUSABLE_ENVIRONMENT as exc:
        return {"result": None, "error": str(exc)}
    return {"result": result_to_json(result), "components": component_versions()}


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum} from regress matrix (timeout)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run one area once and print its result (regress matrix's child)")
    parser.add_argument("--area", required=True)
    parser.add_argument("--config", default="{}")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)  # a stop from the parent: clean up like Ctrl-C, then exit
    data = run_child(args.area, json.loads(args.config), args.output)
    sys.stdout.flush()
    print(MARK + json.dumps(data, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
