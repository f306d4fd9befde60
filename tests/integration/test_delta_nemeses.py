"""The Delta nemeses on real tables: each acts as it says or says clearly that it could not; an outside writer's
commit fits the table's schema as it is when it writes; a commit the workload made is never blamed on outside."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from deltalake import DeltaTable, write_deltalake

from assets.delta_cdf import AREA
from assets.delta_cdf.config import DeltaCdfConfig
from assets.delta_cdf.ops import arrow_rows
from regression_pipelines.kit import RunContext, Supervisor, run_area
from regression_pipelines.kit.nemeses import by_name
from regression_pipelines.kit.nemeses.base import Endpoint, NemesisError, Target
from regression_pipelines.kit.nemeses.delta import append_existing_rows
from resources.delta import DeltaLakeResource
from tests.chaos import CELL_NEMESIS, MATRIX_SETTINGS

ROWS = tuple((i, f"p{i % 2}", i, 2**63 - 1, Decimal("1.5"), 0, None) for i in range(10))


def _table(root: Path, checkpoint_interval: int = 100) -> tuple[str, Target]:
    uri = str(root / "t")
    settings = {"delta.enableChangeDataFeed": "true", "delta.checkpointInterval": str(checkpoint_interval)}
    write_deltalake(uri, arrow_rows(ROWS, False), partition_by=["part"], configuration=settings)
    sup = Supervisor("nemesis-test")
    sup.created("delta_table", uri, remove=lambda: None)
    return uri, Target("nemesis-test", {"delta": Endpoint("delta", extra={"root": str(root)})}, sup)


def test_remove_checkpoint_without_a_checkpoint_says_it_could_not_act(tmp_path: Path) -> None:
    _, target = _table(tmp_path)
    with pytest.raises(NemesisError, match=r"could not act: no checkpoint in t within 3 s \(the table writes one"):
        by_name("delta_remove_checkpoint").start(target)


def test_remove_checkpoint_removes_the_one_there_at_once(tmp_path: Path) -> None:
    uri, target = _table(tmp_path, checkpoint_interval=2)
    write_deltalake(uri, arrow_rows(ROWS, False), mode="append")
    nemesis = by_name("delta_remove_checkpoint")
    try:
        assert nemesis.start(target).startswith("removed 1 checkpoint from t")
    finally:
        nemesis.stop(target)
    assert not list((Path(uri) / "_delta_log").glob("*.checkpoint*.parquet"))


def test_an_outside_append_fits_the_schema_the_table_has_when_it_writes(tmp_path: Path) -> None:
    """The rows are read before a schema change and written after it (the race that gave SchemaMismatchError)."""
    uri, _ = _table(tmp_path)
    write_deltalake(uri, arrow_rows(ROWS, True), mode="append", schema_mode="merge")  # adds the `note` column
    assert append_existing_rows(Path(uri)) == "appended 5 rows to t"
    table = DeltaTable(uri)
    assert table.version() == 2 and table.to_pyarrow_table().num_rows == 25
    assert "note" in table.to_pyarrow_table().column_names


def test_a_commit_of_the_workload_is_never_blamed_on_outside_under_delta_remove_checkpoint(tmp_path: Path) -> None:
    """Writes that commit and then fail on the missing checkpoint are the workload's: the ledger and the causes
    may name them as landed despite an error, never as 'not made by this workload'."""
    delta = DeltaLakeResource(root=str(tmp_path / "delta"))
    for seed in (8, 9):
        settings = {**CELL_NEMESIS, **MATRIX_SETTINGS["delta_cdf"], "nemesis": "delta_remove_checkpoint", "seed": seed}
        result = run_area(AREA, DeltaCdfConfig(**settings), RunContext("nem", {"delta": delta}, tmp_path / "out"))
        assert result.environment["nemesis_outcome"] == "acted", result.environment["nemesis_did"]
        for check in result.invariants:
            assert "not made by this workload" not in check.detail, check.detail
            assert "its commit file is gone" not in check.detail, check.detail
