"""The one destructive opt-in: decided from configuration alone, before any connection or signal.

An area that is destructive by nature (a failover, a shard move) and a destructive nemesis (a restart, a
pause, a limit on a shared service) both pass through here: nothing happens without `allow_destructive`, and
never on a host that is neither loopback (the lab) nor in the run's `allow_list`. An area may also name its
`target` ("lab", or the one allow-listed host it means): the resources must then point exactly there, so a
resource pointed somewhere else by mistake is never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from regression_pipelines.errors import UnsafeTargetError
from resources._network import is_loopback

LAB_TARGET = "lab"


def require_destructive_opt_in(
    what: str,
    allow_destructive: bool,
    hosts: Iterable[str],
    allow_list: Sequence[str] = (),
    target: str | None = None,
) -> None:
    """Refuse unless opted in and every host `what` would act on is loopback or allow-listed.

    `what` says what would happen, e.g. "ha_failover kills, pauses or switches over database members".
    `target` (optional): "lab" requires loopback hosts; any other value must be allow-listed and be every host.
    """
    hosts = list(hosts)
    if not allow_destructive:
        raise UnsafeTargetError(
            f"{what} and did nothing: set allow_destructive: true in the run config to run it "
            "(only against the lab, or hosts in allow_list)"
        )
    if target is not None:
        _require_target(what, target, hosts, allow_list)
    outside = sorted({h for h in hosts if not is_loopback(h) and h not in allow_list})
    if outside:
        raise UnsafeTargetError(
            f"{what} refused: {', '.join(repr(h) for h in outside)}, which is not loopback and not in allow_list "
            f"{list(allow_list)}; did nothing. Add a host to allow_list only if you own that system"
        )


def _require_target(what: str, target: str, hosts: list[str], allow_list: Sequence[str]) -> None:
    if target == LAB_TARGET:
        if away := sorted({h for h in hosts if not is_loopback(h)}):
            raise UnsafeTargetError(
                f"{what}: target is 'lab' but the resource points at {', '.join(repr(h) for h in away)}, which is "
                "not loopback; did nothing. Point the resource at the lab, or set target to that host and add it "
                "to allow_list"
            )
        return
    if target not in allow_list:
        raise UnsafeTargetError(
            f"{what}: target {target!r} is not the lab and not in allow_list {list(allow_list)}; did nothing. "
            "Add it to allow_list only if you own that system"
        )
    if other := sorted({h for h in hosts if h != target}):
        raise UnsafeTargetError(
            f"{what}: target {target!r} is allow-listed but the resource points at "
            f"{', '.join(repr(h) for h in other)}; did nothing. Make the run config's target and the resource's "
            "host agree"
        )
