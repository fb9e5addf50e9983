"""What a session records of the browser that logged in (``jeff.record_ip``,
``jeff.record_user_agent``): as much as a device list needs, as little as a deployer's
privacy rules allow."""

from __future__ import annotations

import ipaddress

RECORD_IP_MODES = ("full", "truncated", "none")
# Truncation keeps the network, not the host: an IPv4 /24 (as Google Analytics'
# anonymisation does) and an IPv6 /48 (a site).
IPV4_PREFIX = 24
IPV6_PREFIX = 48


def recorded_ip(ip: str | None, mode: str) -> str | None:
    """``ip`` as ``jeff.record_ip`` keeps it: whole, its network (``192.0.2.0``,
    ``2001:db8:1::``), or nothing. A value that is not an IP address (a proxy's
    ``remote_addr``) is kept whole only in ``full`` mode."""
    if not ip or mode == "none":
        return None
    if mode == "full":
        return ip
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return str(network.network_address)
