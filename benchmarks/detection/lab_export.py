"""Export an area's stored history from DAGSTER_HOME to the CSV that `lab_replay` reads.

.venv/bin/python -m benchmarks.detection.lab_export --labels LABELS --out benchmarks/detection/lab_cache_history.csv
    [--area cache_coherence]

LABELS: one "<run_id> <label>" per line, written while the runs were made ("clean", the change injected,
e.g. "cpu_burn", or "after_..." once it is removed); runs not listed are skipped. One CSV row per run and
metric, oldest run first; `baseline` is a short hash of the run's comparable settings (one baseline: one hash).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from regression_pipelines.instance_home import ensure_dagster_home
from regression_pipelines.results import baseline_key_from_metadata, metrics_from_metadata

COLUMNS = ("run", "label", "baseline", "metric", "value", "unit", "direction", "kind", "samples")


def read_labels(path: Path) -> dict[str, str]:
    labels = {}
    for line in path.read_text().splitlines():
        if line.strip():
            run_id, label = line.split(maxsplit=1)
            labels[run_id] = label.strip()
    return labels


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--area", default="cache_coherence")
    args = parser.parse_args(argv)
    labels = read_labels(args.labels)
    ensure_dagster_home()
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(dg.AssetKey(args.area), limit=10_000, ascending=True).records
        rows = []
        run = 0
        for record in records:
            label = labels.get(record.run_id)
            if label is None or record.asset_materialization is None:
                continue
            metadata = record.asset_materialization.metadata
            key = hashlib.sha1(baseline_key_from_metadata(metadata).encode()).hexdigest()[:8]
            for m in metrics_from_metadata(metadata):
                samples = "" if m.samples is None else m.samples
                rows.append((run, label, key, m.name, f"{m.value:.6g}", m.unit, m.direction.value, m.kind, samples))
            run += 1
    with open(args.out, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    print(f"{run} runs, {len(rows)} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
