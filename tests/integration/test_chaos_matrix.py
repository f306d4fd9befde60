"""The chaos matrix, a bounded sample of it: every non-destructive area x every nemesis touching a service it
uses; the sample runs each nemesis once and each area at least once, through the Dagster asset, on the lab
(this is the test that every nemesis ends in a verdict and its service recovers).

Every cell must end in a verdict: every check present (all passed, or failed with the nemesis named on
them; a crash the supervisor turned into checks counts, naming the nemesis), figures, nothing left behind,
the service answering a fresh client afterwards, and never a step failure. A nemesis fires only inside a
phase named "workload": a cell of an area that has none yet ends "not started" (reported, never passed); an
area that has one must let it fire. `benchmarks/chaos/matrix.py` runs every cell and writes the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from regression_pipelines.kit import chaos
from regression_pipelines.lab import lifecycle
from regression_pipelines.lab.services import get as lab_service
from regression_pipelines.lab.settings import LabSettings
from tests.chaos import MATRIX_SETTINGS, SAMPLE_PREFER, lab_services_for, matrix_areas, run_cell, service_healthy
from tests.chaos_areas import lab_resources

AREAS = matrix_areas()
CELLS = chaos.cells(AREAS.values())
SAMPLE = chaos.sample(CELLS, SAMPLE_PREFER)


def test_the_sample_covers_every_nemesis_and_every_area() -> None:
    assert {c.nemesis for c in SAMPLE} == {c.nemesis for c in CELLS}
    assert {c.area for c in SAMPLE} == {c.area for c in CELLS} >= {"cache_coherence", "etl_pipeline", "delta_cdf"}
    assert len(SAMPLE) <= len({c.nemesis for c in CELLS}) + len(AREAS)


@pytest.fixture(scope="module")
def chaos_lab() -> LabSettings:
    return LabSettings.from_env()


@pytest.mark.parametrize("cell", SAMPLE, ids=lambda c: f"{c.area}-{c.nemesis}")
def test_a_cell_ends_in_a_verdict(cell: chaos.Cell, chaos_lab: LabSettings, tmp_path: Path) -> None:
    area = AREAS[cell.area]
    services = lab_services_for(area)
    if "citus" in services and not (available := lab_service("citus").available())[0]:
        pytest.skip(f"citus: {available[1]}")
    lifecycle.up(chaos_lab, services, out=lambda _line: None)
    resources = {key: value for key, value in lab_resources(chaos_lab).items() if key in area.resources}
    outcome = run_cell(area, cell.nemesis, resources, tmp_path, MATRIX_SETTINGS.get(cell.area))
    assert outcome.good, outcome.row()
    if outcome.adopted:
        assert outcome.outcome != chaos.NOT_STARTED, outcome.row()
    if outcome.outcome not in (chaos.NOT_ACTED, chaos.SKIPPED, chaos.NOT_STARTED):
        assert outcome.recovered_after_s is not None, outcome.row()  # the service was usable again after the heal
    assert service_healthy(area, cell.nemesis, resources) == ""
