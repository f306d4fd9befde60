"""`regress`: the command line. Each sub-command lives with the code it drives; this only dispatches."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from regression_pipelines.detection import cli as detect_cli
    from regression_pipelines.lab import cli as lab_cli
    from regression_pipelines.matrix import cli as matrix_cli
    from regression_pipelines.reports import cli as report_cli
    from regression_pipelines.running import cli as run_cli
    from regression_pipelines.serve import cli as serve_cli

    parser = argparse.ArgumentParser(prog="regress", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    lab_cli.register(subparsers)
    run_cli.register(subparsers)
    matrix_cli.register(subparsers)
    detect_cli.register(subparsers)
    report_cli.register(subparsers)
    serve_cli.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Each sub-parser sets `func(args) -> int` via set_defaults; its return value is the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `regress ... | head`: the reader left; not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
