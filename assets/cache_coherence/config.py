"""Settings of one cache-coherence run, validated up front so a typo fails before any workload starts."""

from __future__ import annotations

from dataclasses import dataclass, fields

MODES = ("cache_aside", "write_through")
FAULTS = ("none", "skip_invalidation", "delay_invalidation", "no_ttl")


class CacheConfigError(ValueError):
    """Names the setting that is wrong and what would be right."""


@dataclass(frozen=True)
class CacheConfig:
    modes: tuple[str, ...] = MODES
    keys: int = 100
    readers: int = 4
    writers: int = 2
    writes_per_second: float = 200.0  # total across writers; reads are unpaced
    max_ops: int = 20_000  # per mode, reads + writes
    max_seconds: float = 4.0  # per mode
    ttl_seconds: float = 30.0
    settle_seconds: float = 0.5
    max_stale_read_rate: float = 0.01
    fault: str = "none"
    delay_invalidation_ms: int = 0
    seed: int = 7

    def __post_init__(self) -> None:
        object.__setattr__(self, "modes", tuple(self.modes))
        problems = []
        for mode in self.modes:
            if mode not in MODES:
                problems.append(f"modes: {mode!r} is unknown; use any of {', '.join(MODES)}")
        if not self.modes:
            problems.append(f"modes: empty; use any of {', '.join(MODES)}")
        if self.fault not in FAULTS:
            problems.append(f"fault: {self.fault!r} is unknown; use one of {', '.join(FAULTS)}")
        if self.fault == "delay_invalidation" and self.delay_invalidation_ms <= 0:
            problems.append("delay_invalidation_ms: must be > 0 with fault=delay_invalidation, e.g. 50")
        limits = {
            "keys": (1, 100_000),
            "readers": (1, 64),
            "writers": (1, 64),
            "max_ops": (1, 2_000_000),
            "max_seconds": (0.1, 600),
            "writes_per_second": (1, 50_000),
            "ttl_seconds": (1, 86_400),
            "settle_seconds": (0, 60),
            "max_stale_read_rate": (0, 1),
            "delay_invalidation_ms": (0, 10_000),
        }
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not low <= value <= high:
                problems.append(f"{name}: {value} is outside [{low}, {high}]")
        if problems:
            raise CacheConfigError("invalid cache_coherence config: " + "; ".join(problems))

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
