"""The shard-move area does nothing without the opt-in, and nothing against a coordinator that is neither
loopback nor allow-listed; decided from configuration alone (no Citus needed)."""

from __future__ import annotations

from pathlib import Path

from assets.citus_shard_move import AREA
from resources.citus import CitusResource
from tests.areas import materialize_area, skip_reasons, step_failure


def test_without_opt_in_the_asset_is_skipped_saying_how_to_opt_in(tmp_path: Path) -> None:
    result = materialize_area(AREA, tmp_path, resources={"citus": CitusResource(port=1)})
    assert result.success and result.get_asset_check_evaluations() == []
    assert result.get_asset_materialization_events() == []  # skipped is not a (green) materialization
    assert "set allow_destructive: true in its run config" in skip_reasons(result)["citus_shard_move"]


def test_a_foreign_coordinator_needs_the_allow_list(tmp_path: Path) -> None:
    """The kit's one guard (run_area) refuses before any connection: nothing listens at these ports."""
    opted_in = {"allow_destructive": True}
    far = CitusResource(host="10.1.2.3", port=1)
    result = materialize_area(AREA, tmp_path / "a", resources={"citus": far}, config=opted_in)
    assert not result.success
    assert "'10.1.2.3', which is not loopback and not in allow_list" in step_failure(result)
    listed = materialize_area(
        AREA, tmp_path / "b", resources={"citus": far}, config={**opted_in, "allow_list": ["10.1.2.3"]}
    )
    assert "allow_list" not in step_failure(listed)  # past the guard: it fails reaching the cluster instead
    assert AREA.destructive
