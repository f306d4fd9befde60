"""Which check catches which upstream bug: the area run against deltalake releases in isolated environments.

`python -m benchmarks.delta_cdf.versions` builds (once, cached in .lab/envs) an environment per release with
uv, runs the area there with the settings of each case, and prints the failed checks per release. The cases are
the README's table: each bug's release before and after the fix, at the settings that reach it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from assets.delta_cdf.isolated import ensure_env, run_isolated

ENVS = Path(__file__).resolve().parents[2] / ".lab" / "envs"
QUICK = {"shrink_replays": 0}
CASES = {
    # DELETE reports num_deleted_rows=0 with CDF on; count(*) through DataFusion sees one partition.
    "delete_metrics_and_count": (("1.5.0", "1.5.1"), {**QUICK, "partition_values": "plain"}),
    # MERGE with more than 8,192 matched target rows in one file fails ("multiple source rows matched").
    "merge_over_8192": (
        ("1.6.0", "1.6.3"),
        {
            **QUICK,
            "initial_rows": 12_000,
            "partitions": 2,
            "merge_matched_rows": 9_000,
            "serial_commits": 8,
            "concurrent_commits": 0,
            "partition_values": "plain",
        },
    ),
    # The change feed cannot be read under partition values that need URL encoding.
    "cdf_partition_encoding": (
        ("1.6.0", "1.6.1", "1.6.2", "1.6.3", "1.6.6"),
        {**QUICK, "avoid_known_bugs": False, "serial_commits": 8, "concurrent_commits": 0},
    ),
    # Reading the feed after VACUUM panics (a BaseException): measured, named, figures kept.
    "panic_after_vacuum": (("0.24.0", "1.5.1"), {**QUICK, "serial_commits": 8, "concurrent_commits": 0}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", default=list(CASES))
    args = parser.parse_args()
    for name in args.cases:
        versions, settings = CASES[name]
        for version in versions:
            python = ensure_env(version, ENVS)
            with tempfile.TemporaryDirectory() as folder:
                started = time.perf_counter()
                result = run_isolated(python, settings, Path(folder) / "t", Path(folder) / "o")
                failed = {c["name"]: c["detail"] for c in result["invariants"] if not c["passed"]}
                print(
                    f"{name} deltalake {version} ({time.perf_counter() - started:.0f} s): "
                    + ("; ".join(f"{n}: {d[:260]}" for n, d in failed.items()) or "every check passed"),
                    flush=True,
                )


if __name__ == "__main__":
    main()
