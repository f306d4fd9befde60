"""The area kit: declarations, config validation, discovery, and what the factory makes of an area."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pydantic
import pytest

from regression_pipelines.kit import Area, AreaConfig, AreaSkipped, describe_validation_error
from regression_pipelines.kit.discovery import AreaDiscoveryError, discover_areas
from regression_pipelines.kit.factory import check_results
from regression_pipelines.kit.supervisor import NO_LEFTOVERS, RUN_COMPLETED
from regression_pipelines.measure import NO_OPERATION_ERRORS
from regression_pipelines.results import Invariant, Metric, ScenarioResult
from tests.areas import ToyConfig, materialize_area, skip_reasons, toy_area


def _result(*invariants: Invariant) -> ScenarioResult:
    return ScenarioResult("toy_area", [Metric("p99_ms", 1.0, "ms")], list(invariants))


def test_one_check_result_per_declared_invariant_and_a_missing_one_fails() -> None:
    area = toy_area(_result, invariants=("no_loss", "isolated"))
    result = _result(Invariant("no_loss", True, "0 lost"), Invariant(NO_OPERATION_ERRORS, True, "0 errors"))
    outcome = {c.check_name: c.passed for c in check_results(area, result, set(area.checks))}
    assert outcome == {
        "no_loss": True,
        "isolated": False,
        NO_OPERATION_ERRORS: True,
        RUN_COMPLETED: False,  # only the supervisor adds these; a result without them did not pass them
        NO_LEFTOVERS: False,
    }
    missing = [c for c in check_results(area, result, {"isolated"})]
    assert missing[0].metadata["detail"].value == "the scenario did not evaluate this invariant"


def test_undeclared_invariant_is_a_programming_error() -> None:
    area = toy_area(_result, invariants=("no_loss",))
    with pytest.raises(ValueError, match="not declared"):
        check_results(area, _result(Invariant("surprise", True, "")), set(area.checks))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "bad-name"}, "must be a Python identifier"),
        ({"kinds": ("a", "b", "c", "d")}, "at most 3 kinds"),
        ({"invariants": ("x", "x")}, "must be unique"),
        ({"invariants": (NO_OPERATION_ERRORS,)}, "must be unique"),
        ({"config": dict}, "must subclass"),
    ],
)
def test_bad_declarations_are_refused(changes: dict, message: str) -> None:
    fields = {"name": "toy", "description": "", "config": ToyConfig, "run": lambda c, x: None, "invariants": ()}
    with pytest.raises((ValueError, TypeError), match=message):
        Area(**{**fields, **changes})


def test_validation_errors_name_every_field_in_one_line() -> None:
    class Settings(AreaConfig):
        rate: float = pydantic.Field(default=1.0, gt=0, le=10)

    with pytest.raises(pydantic.ValidationError) as info:
        Settings(rate=0, rats=3)
    assert describe_validation_error(info.value) == "rate: 0 must be above 0.0; rats: is not a setting of this area"


def test_skipped_area_records_its_reason_and_no_check_results(tmp_path: Path) -> None:
    def produce() -> ScenarioResult:
        raise AreaSkipped("no Citus reachable at 127.0.0.1:9700 (connection refused)")

    result = materialize_area(toy_area(produce, invariants=("placement_ok",)), tmp_path)
    assert result.success
    assert result.get_asset_materialization_events() == []  # Dagster's way not to materialize
    assert skip_reasons(result) == {"toy_area": "no Citus reachable at 127.0.0.1:9700 (connection refused)"}
    (observation,) = result.get_asset_observation_events()
    assert observation.asset_observation_data.asset_observation.description.startswith("skipped: no Citus")
    assert result.get_asset_check_evaluations() == []  # neither passed nor failed: not executed


def test_performance_check_runs_alone_on_the_stored_history(tmp_path: Path) -> None:
    """With can_subset, the performance check can be executed from the UI without re-running the workload."""
    area = toy_area(_result)
    with dg.instance_for_test() as instance:
        materialize_area(area, tmp_path, instance=instance)
        from regression_pipelines.kit.factory import area_asset

        only_check = dg.materialize(
            [area_asset(area)],
            instance=instance,
            selection=dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey("toy_area"), "performance_regression")),
        )
    assert only_check.get_asset_materialization_events() == []
    assert [(e.check_name, e.passed) for e in only_check.get_asset_check_evaluations()] == [
        ("performance_regression", True)
    ]


# --- discovery -----------------------------------------------------------------------------------------------


@pytest.fixture
def area_package(tmp_path: Path) -> Iterator[Path]:
    """A throwaway importable package for area folders; removed from sys.modules afterwards."""
    root = tmp_path / "extra_areas"
    root.mkdir()
    (root / "__init__.py").write_text("")
    sys.path.insert(0, str(tmp_path))
    yield root
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m == "extra_areas" or m.startswith("extra_areas.")]:
        del sys.modules[name]


def test_the_real_package_declares_the_known_areas() -> None:
    names = [area.name for area in discover_areas(["assets"])]
    assert {"cache_coherence", "ha_health", "ha_failover"} <= set(names)


def test_folder_without_area_is_named(area_package: Path) -> None:
    (area_package / "half_done").mkdir()
    (area_package / "half_done" / "__init__.py").write_text("")
    with pytest.raises(AreaDiscoveryError, match="extra_areas/half_done/__init__.py defines no AREA"):
        discover_areas(["extra_areas"])


def test_area_named_unlike_its_folder_is_refused(area_package: Path) -> None:
    folder = area_package / "queue_depth"
    folder.mkdir()
    (folder / "__init__.py").write_text(
        textwrap.dedent(
            """
            from regression_pipelines.kit import Area, AreaConfig
            class C(AreaConfig):
                pass
            AREA = Area(name="queues", description="", config=C, run=lambda c, x: None, invariants=())
            """
        )
    )
    with pytest.raises(AreaDiscoveryError, match="an area's name is its folder's name"):
        discover_areas(["extra_areas"])
