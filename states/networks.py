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
    """The address ``host`` is written as (an IP literal, brackets, zone and a final dot
    dropped), or None; an IPv6 address carrying an IPv4 one is that IPv4 address.

    A packet to ``64:ff9b::a9fe:a9fe`` reaches 169.254.169.254 through a NAT64 gateway, one
    to ``2002:a9fe:a9fe::1`` through a 6to4 relay: the IPv6 form says nothing of where it
    lands, so it is judged by the IPv4 address it carries (``embedded_ipv4``).
    """
    text = host.strip("[]").split("%", 1)[0]
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1]  # "169.254.169.254." is the address, written as a rooted name
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        # The forms a resolver also takes as an IPv4 address (inet_aton): 127.1,
        # 2130706433, 0x7f.1, 0177.0.0.1 are each 127.0.0.1.
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except (OSError, ValueError):
            return None
    if isinstance(address, ipaddress.IPv6Address):
        return embedded_ipv4(address) or address
    return address


# IPv6 prefixes whose addresses carry an IPv4 address in their last 32 bits.
_LAST_32_BITS = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::ffff:0:0/96",  # IPv4-mapped (RFC 4291)
        "::ffff:0:0:0/96",  # IPv4-translated, SIIT (RFC 2765)
        "64:ff9b::/96",  # NAT64, the well-known prefix (RFC 6052)
        "::/96",  # IPv4-compatible, deprecated (RFC 4291); not :: and ::1, below
    )
)
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # local-use NAT64 (RFC 8215)
_OWN_IPV6 = (ipaddress.IPv6Address("::"), ipaddress.IPv6Address("::1"))


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a packet to ``address`` may be translated or tunnelled to, if any:
    mapped, translated, compatible, NAT64, 6to4 (RFC 3056) or Teredo (RFC 4380, the
    client's) addresses."""
    if address in _OWN_IPV6:
        return None  # the unspecified and loopback addresses, IPv6's own
    if any(address in net for net in _LAST_32_BITS):
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    if address in _NAT64_LOCAL:
        return _most_private(_rfc6052_candidates(address))
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _rfc6052_candidates(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Where RFC 6052 puts the IPv4 address under a local-use NAT64 prefix: the network
    picks its prefix length (/48 to /96) and no address says which, so every place."""
    octets = address.packed
    # prefix length: the octets holding the IPv4 address (octet 8, bits 64-71, is skipped)
    places = {48: (6, 7, 9, 10), 56: (7, 9, 10, 11), 64: (9, 10, 11, 12), 96: (12, 13, 14, 15)}
    return [ipaddress.IPv4Address(bytes(octets[i] for i in at)) for at in places.values()]


def _most_private(candidates: list[ipaddress.IPv4Address]) -> ipaddress.IPv4Address:
    """The first of ``candidates`` that is not global, else the last."""
    return next((c for c in candidates if not c.is_global), candidates[-1])


# The IPv6 addresses assigned as global unicast (RFC 4291, IANA): the rest is reserved
# by the IETF (site-local fec0::/10, fe00::/9, 4000::/3...), which Python's is_global
# takes for global, or special (link-local, unique local, multicast).
_GLOBAL_UNICAST_IPV6 = ipaddress.IPv6Network("2000::/3")
# Blocks in it set aside since Python 3.11's tables were made: documentation (RFC 9637).
_SET_ASIDE_IPV6 = (ipaddress.IPv6Network("3fff::/20"),)
# IPv4 blocks IANA's special-purpose registry (RFC 6890, 8190) has not globally reachable
# that Python 3.11 counts as global: IETF protocol assignments (but for the two anycast
# services in it, RFC 7723 and 8155) and the deprecated 6to4 relay anycast (RFC 7526).
_SET_ASIDE_IPV4 = (ipaddress.IPv4Network("192.0.0.0/24"), ipaddress.IPv4Network("192.88.99.0/24"))
_GLOBAL_IN_SET_ASIDE_IPV4 = frozenset(
    {ipaddress.IPv4Address("192.0.0.9"), ipaddress.IPv4Address("192.0.0.10")}
)


def reachable(address: Address, allowed: Iterable[Network]) -> bool:
    """Whether a webhook may connect to ``address``: a global unicast address, or one in
    a network the installation allows."""
    if any(address.version == net.version and address in net for net in allowed):
        return True
    if isinstance(address, ipaddress.IPv6Address) and (
        address not in _GLOBAL_UNICAST_IPV6 or any(address in net for net in _SET_ASIDE_IPV6)
    ):
        return False
    if (
        isinstance(address, ipaddress.IPv4Address)
        and any(address in net for net in _SET_ASIDE_IPV4)
        and address not in _GLOBAL_IN_SET_ASIDE_IPV4
    ):
        return False
    return address.is_global and not address.is_multicast and not address.is_reserved


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
