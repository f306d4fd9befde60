"""A run `regress matrix` recorded for one version is an experiment: the scorecard's newest run of an area is
the newest regular run (after a downgrade matrix the area would otherwise read failed on a version it left)."""

from __future__ import annotations

import dagster as dg

from regression_pipelines.matrix.run import MATRIX_TAG
from regression_pipelines.reports.history import newest_materialization


@dg.asset(name="some_area")
def some_area() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"n": 1})


def test_the_newest_regular_run_wins_over_a_newer_matrix_run() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        key = dg.AssetKey("some_area")
        assert newest_materialization(instance, key) is None
        regular = dg.materialize([some_area], instance=instance)
        dg.materialize([some_area], instance=instance, tags={MATRIX_TAG: "m1", "regress/version": "x==1"})
        record = newest_materialization(instance, key)
        assert record is not None and record.run_id == regular.run_id
        later = dg.materialize([some_area], instance=instance)
        record = newest_materialization(instance, key)
        assert record is not None and record.run_id == later.run_id
