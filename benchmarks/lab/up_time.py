"""Lab start-up time from nothing: median of N `regress lab up` runs, each after `down --purge`.

Run: .venv/bin/python -m benchmarks.lab.up_time [--runs 3] [--offset 600]
Uses its own lab folder and port offset so the main lab is untouched; removes it at the end. The lab starts
its own RabbitMQ, as by default; export REGRESS_LAB_RABBITMQ_REUSE=host:port to time it with an outside broker.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--offset", type=int, default=600)
    args = parser.parse_args()
    lab_dir = Path(tempfile.mkdtemp(prefix="rp-lab-bench-"))
    env = {**os.environ, "REGRESS_LAB_DIR": str(lab_dir), "REGRESS_LAB_PORT_OFFSET": str(args.offset)}
    regress = str(Path(sys.executable).parent / "regress")
    times = []
    try:
        for _ in range(args.runs):
            subprocess.run([regress, "lab", "down", "--purge"], env=env, capture_output=True, check=False)
            lab_dir.mkdir(exist_ok=True)
            started = time.monotonic()
            subprocess.run([regress, "lab", "up"], env=env, capture_output=True, check=True)
            times.append(time.monotonic() - started)
            print(f"lab up from nothing: {times[-1]:.2f} s")
    finally:
        subprocess.run([regress, "lab", "down", "--purge"], env=env, capture_output=True, check=False)
        shutil.rmtree(lab_dir, ignore_errors=True)
    print(f"median of {len(times)}: {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f})")


if __name__ == "__main__":
    main()
