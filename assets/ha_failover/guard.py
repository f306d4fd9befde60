"""The destructive opt-in: decided from configuration alone, before any connection or signal."""

from __future__ import annotations

from collections.abc import Sequence

from regression_pipelines.errors import UnsafeTargetError
from resources._network import is_loopback

LAB_TARGET = "lab"


def require_destructive_opt_in(allow_destructive: bool, target: str, allow_list: Sequence[str], host: str) -> None:
    """Refuse unless the run opted in and the target is the loopback lab or an allow-listed host.

    `target` names what the user means to hit; it must match the resource's host (or be "lab" with a
    loopback host), so a resource pointed somewhere else by mistake is never touched.
    """
    if not allow_destructive:
        raise UnsafeTargetError(
            "ha_failover kills, pauses or switches over database members and did nothing: set "
            "allow_destructive: true in the run config to run it (and target: lab, or an allow-listed host)"
        )
    if target == LAB_TARGET:
        if not is_loopback(host):
            raise UnsafeTargetError(
                f"target is 'lab' but the patroni resource points at {host!r}, which is not loopback; did nothing. "
                "Point the resource at the lab, or set target to that host and add it to allow_list"
            )
        return
    if target not in allow_list:
        raise UnsafeTargetError(
            f"target {target!r} is not the lab and not in allow_list {list(allow_list)}; did nothing. "
            "Add it to allow_list only if you own that cluster"
        )
    if target != host:
        raise UnsafeTargetError(
            f"target {target!r} is allow-listed but the patroni resource points at {host!r}; did nothing. "
            "Make the run config's target and the resource's host agree"
        )
