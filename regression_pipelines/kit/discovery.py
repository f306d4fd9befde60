"""Find every area by scanning packages (default: `assets`): adding an area touches nothing outside its folder.

Each sub-package of an area package must expose `AREA` (an `Area` whose name is the folder's name). Extra
packages (a team's own areas) are listed in REGRESS_AREA_PACKAGES, comma-separated; `assets` is always scanned.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Iterable

from regression_pipelines.kit.declaration import Area

DEFAULT_PACKAGE = "assets"
ENV_PACKAGES = "REGRESS_AREA_PACKAGES"


class AreaDiscoveryError(RuntimeError):
    """An area folder is not shaped as the kit expects; the message names the folder and the fix."""


def area_packages() -> list[str]:
    extra = [p.strip() for p in os.environ.get(ENV_PACKAGES, "").split(",") if p.strip()]
    return list(dict.fromkeys([DEFAULT_PACKAGE, *extra]))


def discover_areas(packages: list[str] | None = None) -> list[Area]:
    """Every declared area, sorted by name; duplicate names or folders without `AREA` are errors."""
    found: dict[str, Area] = {}
    for package_name in packages or area_packages():
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.ispkg or info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{package_name}.{info.name}")
            area = getattr(module, "AREA", None)
            if not isinstance(area, Area):
                raise AreaDiscoveryError(
                    f"{package_name}/{info.name}/__init__.py defines no AREA; declare `AREA = Area(...)` "
                    "(regression_pipelines.kit) or rename the folder to start with '_'"
                )
            if area.name != info.name:
                raise AreaDiscoveryError(
                    f"{package_name}/{info.name}: AREA.name is {area.name!r}; an area's name is its folder's name"
                )
            if area.name in found:
                raise AreaDiscoveryError(f"area {area.name!r} is declared twice (in {package_name} and earlier)")
            found[area.name] = area
    check_asset_names(found.values())
    return [found[name] for name in sorted(found)]


def check_asset_names(areas: Iterable[Area]) -> None:
    """A stage's asset `<area>_<stage>` must not take another area's (or stage's) name."""
    owner: dict[str, str] = {}
    for area in areas:
        for name in area.asset_names:
            if name in owner:
                raise AreaDiscoveryError(
                    f"asset {name!r} of area {area.name!r} is also an asset of area {owner[name]!r}; rename the stage"
                )
            owner[name] = area.name
