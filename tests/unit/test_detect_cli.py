"""`regress detect`: JSON shape, exit codes 0/1/2 and error messages that name the row and column."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from regression_pipelines.detection import cli


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="regress")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["detect", *argv])
    return args.func(args)


def rows(name: str, values: np.ndarray, direction: str | None = None) -> list[dict]:
    out = []
    for i, v in enumerate(values):
        row = {"series": name, "run": i, "value": float(v)}
        if direction:
            row["direction"] = direction
        out.append(row)
    return out


def write_csv(path: Path, records: list[dict], header: str = "series,run,value,direction") -> Path:
    cols = header.split(",")
    lines = [header] + [",".join(str(r.get(c, "")) for c in cols) for r in records]
    path.write_text("\n".join(lines) + "\n")
    return path


def series(n: int = 60, step_at: int | None = None, pct: float = 15.0, seed: int = 0) -> np.ndarray:
    x = 100 * (1 + 0.01 * np.random.default_rng(seed).standard_normal(n))
    if step_at is not None:
        x[step_at:] *= 1 + pct / 100
    return x


def test_regression_in_latest_run_exits_1_with_documented_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_csv(tmp_path / "in.csv", rows("api_p99", series(60, 40)) + rows("flat", series(60, seed=1)))
    assert run(["--input", str(path)]) == 1
    out = json.loads(capsys.readouterr().out)
    first, second = out["series"]
    assert first["series"] == "api_p99"
    [cp] = first["change_points"]
    assert cp["index"] == 40 and cp["run"] == 40
    assert cp["kind"] == "regression"
    assert set(cp) == {"index", "run", "mean_before", "mean_after", "change_pct", "kind", "severity", "p_value"}
    assert cp["change_pct"] == pytest.approx(15.0, abs=2.0)
    assert first["latest"]["status"] == "regression"
    assert set(first["latest"]) == {"status", "severity", "change_pct"}
    assert second["latest"]["status"] == "ok" and second["change_points"] == []


def test_higher_is_better_drop_is_a_regression_rise_an_improvement(tmp_path: Path, capsys) -> None:
    up = rows("tps_up", series(60, 57, 15.0), "higher_is_better")
    path = write_csv(tmp_path / "in.csv", up)
    assert run(["--input", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["series"][0]["latest"]["status"] == "improvement"
    down = rows("tps_down", series(60, 57, -15.0), "higher_is_better")
    assert run(["--input", str(write_csv(tmp_path / "d.csv", down))]) == 1


def test_parquet_and_table_format(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(rows("q", series(40))), path)
    assert run(["--input", str(path), "--format", "table"]) == 0
    out = capsys.readouterr().out
    assert "series" in out.splitlines()[0] and "q" in out


def test_short_series_is_insufficient_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run(["--input", str(write_csv(tmp_path / "s.csv", rows("s", series(4))))]) == 0
    assert json.loads(capsys.readouterr().out)["series"][0]["latest"]["status"] == "insufficient_data"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("series,run\na,1\n", "missing column(s) value"),
        ("series,run,value\na,1,1.0\na,2,fast\n", "row 2 (line 3), column 'value': 'fast' is not a number"),
        ("series,run,value,direction\na,1,1.0,sideways\n", "row 1 (line 2), column 'direction': 'sideways'"),
        ("series,run,value\na,1,nan\n", "column 'value'"),
        ("series,run,value\n,1,1.0\n", "column 'series'"),
        ("series,run,value\n", "no data rows"),
    ],
)
def test_bad_input_exits_2_naming_row_and_column(tmp_path: Path, capsys, content: str, needle: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert run(["--input", str(path)]) == 2
    err = capsys.readouterr().err
    assert needle in err


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run(["--input", str(tmp_path / "nope.csv")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_module_entry_point(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_csv(tmp_path / "in.csv", rows("flat", series(30)))
    assert cli.main(["--input", str(path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["series"][0]["series"] == "flat"
