"""The shard-move area does nothing without the opt-in, and nothing against a coordinator that is neither
loopback nor allow-listed; decided from configuration alone (no Citus needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from assets.citus_shard_move import AREA
from assets.citus_shard_move.config import ShardMoveConfig
from assets.citus_shard_move.scenario import require_opt_in
from regression_pipelines.errors import UnsafeTargetError
from resources.citus import CitusResource
from tests.areas import materialize_area, step_failure


def test_without_opt_in_the_asset_fails_saying_how_to_opt_in(tmp_path: Path) -> None:
    result = materialize_area(AREA, tmp_path, resources={"citus": CitusResource(port=1)})
    assert not result.success
    assert "set allow_destructive: true in the run config" in step_failure(result)


def test_a_foreign_coordinator_needs_the_allow_list() -> None:
    opted_in = ShardMoveConfig(allow_destructive=True)
    require_opt_in(opted_in, "127.0.0.1")
    with pytest.raises(UnsafeTargetError, match="'10.1.2.3', which is not loopback and not in allow_list"):
        require_opt_in(opted_in, "10.1.2.3")
    require_opt_in(ShardMoveConfig(allow_destructive=True, allow_list=["10.1.2.3"]), "10.1.2.3")
    assert AREA.destructive
