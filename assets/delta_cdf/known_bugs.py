"""Known bugs of the installed deltalake that the workload can steer around (`avoid_known_bugs`, default on).

Why: a bug that fails every run makes the area red every night and hides the next regression behind it. The
workload leaves out only the inputs that reach a known bug of the installed version, says so in the run's
environment, and `avoid_known_bugs=false` reaches them again (the README's table says which check catches
each). A version outside the range gets the full input space.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass


def parse(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())


@dataclass(frozen=True)
class KnownBug:
    name: str
    first_bad: str  # first deltalake version measured with the bug
    fixed_in: str | None  # first version measured without it again; None: not fixed in any version tried
    what: str
    avoided: str

    def affects(self, version: str) -> bool:
        current = parse(version)
        return current >= parse(self.first_bad) and (self.fixed_in is None or current < parse(self.fixed_in))

    def describe(self) -> str:
        until = f"before {self.fixed_in}" if self.fixed_in else "not fixed yet"
        return f"{self.name} (deltalake {self.first_bad}, {until}): {self.what}; avoided: {self.avoided}"


KNOWN_BUGS = (
    KnownBug(
        name="cdf_partition_path_encoding",
        first_bad="1.6.3",  # 1.6.0, 1.6.1 and 1.6.2 read these feeds (measured)
        fixed_in=None,
        what="load_cdf cannot open data or _change_data files under a partition value that needs URL encoding "
        "(space, quote, unicode, '/', '=', '%'...): 'Object at location ... not found'",
        avoided="partition values that need URL encoding",
    ),
)


def installed() -> str:
    try:
        return importlib.metadata.version("deltalake")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def avoided(enabled: bool, version: str | None = None) -> list[KnownBug]:
    """The known bugs the workload steers around for `version` (the installed deltalake by default)."""
    if not enabled:
        return []
    version = version or installed()
    return [bug for bug in KNOWN_BUGS if bug.affects(version)]
