"""The settings a run is compared against: a profile's filled-in values are defaults, not settings that set a
run apart (else every quick cache run plotted as `[keys=100, readers=4, ...]`, apart from nothing)."""

from __future__ import annotations

from regression_pipelines.kit.discovery import discover_areas
from regression_pipelines.kit.factory import default_settings
from regression_pipelines.results import settings_label

AREAS = {area.name: area for area in discover_areas()}


def test_a_profile_filled_setting_is_a_default() -> None:
    cache = AREAS["cache_coherence"]
    defaults = default_settings(cache)
    assert defaults["profile"] == "quick" and defaults["keys"] is not None
    run = cache.config(max_seconds=0.5)
    comparable = {name: getattr(run, name) for name in defaults}
    assert settings_label(comparable, defaults) == "max_seconds=0.5"


def test_the_deep_profile_sets_a_run_apart() -> None:
    cache = AREAS["cache_coherence"]
    deep = cache.config(profile="deep", readers=2)
    defaults = default_settings(cache, deep.profile)
    assert settings_label({name: getattr(deep, name) for name in defaults}, defaults) == "profile=deep, readers=2"
