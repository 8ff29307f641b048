"""Which addresses a webhook may reach: the public Internet, and the networks an installation names.

A notification route is made by an agency's operator, not by whoever runs the
installation, and its post leaves from the server: a route to ``http://127.0.0.1:6379``
or to ``https://10.0.0.5`` would make the server knock on its own services or its private
network, and each attempt's recorded outcome would tell the operator what answered. So a
webhook goes only to global addresses, unless the installation lists a private network in
``CONGVAN_NOTIFY_PRIVATE_NETWORKS`` (e.g. ``["127.0.0.0/8"]`` for a receiver on the same
machine). The rule is checked on the address each connection is made to, after name
resolution, so a name that resolves (or later re-resolves) to a private address is refused
as well. Pure rules: the resolving is the caller's.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

SETTING = "CONGVAN_NOTIFY_PRIVATE_NETWORKS"


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """The networks ``values`` name (``10.0.0.0/8``, ``::1/128``, ``127.0.0.1``).

    Raises ValueError naming the one that is not a network.
    """
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{str(value)[:60]!r} is not a network such as 10.0.0.0/8") from exc
    return tuple(networks)


def address_of(host: str) -> Address | None:
    """The address ``host`` is written as (an IP literal, brackets and zone dropped), or None."""
    text = host.strip("[]").split("%", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        # The forms a resolver also takes as an IPv4 address (inet_aton): 127.1,
        # 2130706433, 0x7f.1, 0177.0.0.1 are each 127.0.0.1.
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except (OSError, ValueError):
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address


def reachable(address: Address, allowed: Iterable[Network]) -> bool:
    """Whether a webhook may connect to ``address``: a global unicast address, or one in
    a network the installation allows."""
    if any(address.version == net.version and address in net for net in allowed):
        return True
    return address.is_global and not address.is_multicast


def refused_host(host: str, allowed: Iterable[Network]) -> Address | None:
    """The address a route's host names when a webhook may never reach it, else None.

    Only what the host says by itself is judged here (an IP literal, ``localhost``); a name
    is judged on what it resolves to, at each connection.
    """
    lowered = host.lower().rstrip(".")
    if lowered == "localhost" or lowered.endswith(".localhost"):
        address: Address | None = ipaddress.ip_address("127.0.0.1")
    else:
        address = address_of(host)
    if address is None or reachable(address, allowed):
        return None
    return address
