"""Without a reachable Citus (CI: Debian has no Citus package) the area is recorded as skipped with the
reason: never passed, no check results, and the run still succeeds."""

from __future__ import annotations

from pathlib import Path

from assets.citus_sharding import AREA
from resources.citus import CitusResource
from resources.postgres import PostgresResource
from tests.areas import materialize_area, skip_reasons
from tests.e2e.helpers import free_port


def test_no_citus_reachable_means_skipped_with_the_reason(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    resources = {
        "citus": CitusResource(port=port, password="secret-pw"),
        "postgres": PostgresResource(port=free_port()),
    }
    result = materialize_area(AREA, tmp_path, resources=resources)
    assert result.success
    assert result.get_asset_check_evaluations() == []
    assert result.get_asset_materialization_events() == []  # skipped is not a (green) materialization
    reason = skip_reasons(result).get("citus_sharding")
    assert reason is not None and reason.startswith(f"no Citus reachable at 127.0.0.1:{port} (")
    assert "secret-pw" not in reason
