"""Loopback-only guard shared by every service resource: workloads never leave this machine by accident."""

from __future__ import annotations

import ipaddress
import socket

from regression_pipelines.errors import ResourceConfigError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None))
        except OSError:
            return False


def require_allowed_host(resource: str, host: str, allowed_hosts: list[str]) -> None:
    """Refuse a non-loopback target unless the user allow-listed it explicitly."""
    if is_loopback(host) or host in allowed_hosts:
        return
    raise ResourceConfigError(
        resource,
        "host",
        f"{host!r} is not a loopback address and not in allowed_hosts",
        "point it at 127.0.0.1 (the lab) or add the host to allowed_hosts if you own that system",
    )
