"""`regress matrix`: run areas once per version (or named setting set), interleaved, and print the grid.

    regress matrix --areas delta_cdf --versions deltalake==1.5.0,deltalake==1.6.6 [--rounds 3] [--json FILE|-]
    regress matrix --areas citus_sharding --versions citus==13.2.0,citus==13.2.2
    regress matrix --areas cache_coherence --settings small:cache_coherence.readers=2 \
                                           --settings large:cache_coherence.readers=8

Exit codes: 0 no later variant fails a check the first passes; 1 one does (or errors where the first ran);
2 bad arguments or an environment that cannot be built.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from regression_pipelines.matrix.grid import EXIT_USAGE
from regression_pipelines.matrix.versions import PYTHON, SERVER, SpecError, Variant


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "matrix", help="run areas against several versions or setting sets and compare them side by side"
    )
    parser.add_argument("--areas", required=True, help="comma-separated areas to run for every variant")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--versions", help="PKG==V1,PKG==V2[,...]: deltalake, duckdb, pyarrow, redis, psycopg, pika, "
                      "pyspark (isolated uv environments) or citus (private builds)")  # fmt: skip
    what.add_argument(
        "--settings",
        action="append",
        default=[],
        metavar="NAME:AREA.KEY=VALUE[;...]",
        help="a named setting set (give two or more); `NAME:` alone is the defaults",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="AREA.KEY=VALUE", help="for every variant"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3; >= 2 for intervals)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-round order and the bootstrap")
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write the matrix as JSON (- stdout)")
    parser.add_argument("--timeout-s", type=float, default=900.0, help="bound on one area run (default 900)")
    parser.add_argument("--verbose", action="store_true", help="show Dagster's event log while recording")
    parser.set_defaults(func=matrix_command)


def _variants(args: argparse.Namespace, fields: Mapping[str, list[str]]) -> list[Variant]:
    from regression_pipelines.matrix.versions import parse_settings, parse_versions

    if args.versions:
        return parse_versions(args.versions)
    return parse_settings(args.settings, fields)


def _check_servers(variants: list[Variant]) -> None:
    from regression_pipelines.matrix import citus_install

    missing = [v.version for v in variants if v.kind == SERVER and citus_install.find_install(v.version) is None]
    if missing:
        raise SpecError(
            f"--versions: no private Citus build of {', '.join(missing)}; build each with "
            "`python -m regression_pipelines.matrix.citus_install --version V` (REGRESS_CITUS_SOURCES) or `make citus`"
        )


def switch_citus(version: str | None) -> None:
    """Restart the lab's Citus from `version`'s install (None: the version the environment names, or the pin)."""
    env = dict(os.environ)
    if version is None:
        env.pop("REGRESS_LAB_CITUS_VERSION", None)
        if os.environ.get("REGRESS_LAB_CITUS_VERSION"):
            env["REGRESS_LAB_CITUS_VERSION"] = os.environ["REGRESS_LAB_CITUS_VERSION"]
    else:
        env["REGRESS_LAB_CITUS_VERSION"] = version
    done = subprocess.run(
        [sys.executable, "-m", "regression_pipelines.cli", "lab", "up", "citus"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"`regress lab up citus` for {version or 'the default'} failed: {done.stderr[-600:]}")


def matrix_command(args: argparse.Namespace) -> int:
    from regression_pipelines.kit.discovery import discover_areas
    from regression_pipelines.matrix import envs, grid
    from regression_pipelines.matrix.child import ChildExecutor
    from regression_pipelines.matrix.run import run_matrix
    from regression_pipelines.matrix.versions import merged_overrides
    from regression_pipelines.running.overrides import (
        OverrideError,
        parse_areas,
        parse_overrides,
        validate_overrides,
    )

    all_areas = discover_areas()
    fields = {area.name: list(area.config.model_fields) for area in all_areas}
    models = {area.name: area.config for area in all_areas}
    try:
        areas = parse_areas(args.areas, list(fields))
        common = parse_overrides(args.overrides, fields)
        variants = _variants(args, fields)
        for variant in variants:
            validate_overrides(merged_overrides(common, variant), models)
        _check_servers(variants)
        if args.rounds < 1:
            raise SpecError("--rounds: at least 1 (2 or more for confidence intervals)")
    except (OverrideError, SpecError) as exc:
        print(f"regress matrix: {exc}", file=sys.stderr)
        return EXIT_USAGE

    pythons: dict[str, str] = {}

    def python_for(variant: Variant) -> str:
        if variant.kind != PYTHON:
            return sys.executable
        if variant.label not in pythons:
            print(
                f"environment for {variant.label} (uv; cached after the first build) ...", file=sys.stderr, flush=True
            )
            pythons[variant.label] = str(envs.ensure_env(variant.package, variant.version))
        return pythons[variant.label]

    def configs(variant: Variant, area: str) -> dict[str, Any]:
        return merged_overrides(common, variant).get(area, {})

    from regression_pipelines.instance_home import ensure_dagster_home

    home = ensure_dagster_home()
    executor = ChildExecutor(python_for, home / "matrix" / "work", switch_citus, timeout_s=args.timeout_s)
    try:
        for variant in variants:  # build every environment before the first timed round
            python_for(variant)
        matrix = run_matrix(
            executor,
            areas,
            variants,
            configs,
            rounds=args.rounds,
            seed=args.seed,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except envs.EnvBuildError as exc:
        print(f"regress matrix: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        executor.close()
    summaries, page = record(matrix, all_areas, home, args.verbose)
    runs = {label: summary.to_json() for label, summary in summaries.items()}
    if args.json == "-":
        print(grid.dumps(matrix, runs))
    else:
        if args.json:
            Path(args.json).write_text(grid.dumps(matrix, runs))
        print(grid.render(matrix))
        print("\ndagster runs (tag regress/matrix=" + matrix.matrix_id + "):")
        for label, summary in summaries.items():
            print(f"   {label}: {summary.run_id} ({summary.run_status}, verdict {summary.verdict.value})")
        print(f"page: {page}")
    return grid.exit_code(matrix)


def record(matrix: Any, all_areas: list[Any], home: Path, verbose: bool) -> tuple[dict[str, Any], Path]:
    """The variants' Dagster runs, the warehouse rows and the page."""
    import dagster as dg

    from regression_pipelines.matrix import store
    from regression_pipelines.matrix.dagster_runs import record_runs
    from regression_pipelines.reports.assets import ENV_DAGSTER_URL
    from regression_pipelines.resources_config import _warehouse

    warehouse = _warehouse()  # the scorecard's warehouse (REGRESS_WAREHOUSE_PATH, else $DAGSTER_HOME's)
    folder = home / "reports" / "matrix"
    with warehouse.connect() as conn:  # the index first, so the report the runs write links to it
        store.write_warehouse(conn, matrix, {})
        store.write_index(folder, conn)
    with dg.DagsterInstance.get() as instance:
        summaries = record_runs(instance, all_areas, matrix, str(home), "DEBUG" if verbose else "WARNING")
    run_ids = {label: summary.run_id for label, summary in summaries.items()}
    with warehouse.connect() as conn:
        store.write_warehouse(conn, matrix, run_ids)
        store.write_index(folder, conn)
    url = os.environ.get(ENV_DAGSTER_URL, "http://127.0.0.1:3000")
    return summaries, store.write_page(folder, matrix, run_ids, url)
