"""Where a webhook may go: global addresses, and the private networks an installation lists."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from congvan.actions.messengers import guarded_transport, post_webhook
from congvan.states.networks import address_of, parse_networks, reachable, refused_host
from congvan.workflow.settings import Settings

LOOPBACK = parse_networks(["127.0.0.0/8", "::1"])


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.0.9",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.0.1",
        "169.254.169.254",  # a cloud's metadata service
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fd00::1",
        "::ffff:10.0.0.1",
        "ff02::1",
        "240.0.0.1",  # reserved
        # IPv6 outside global unicast (2000::/3), which Python's is_global takes for global
        "fec0::1",  # site-local, deprecated but still routed on some sites
        "fec0:0:0:ffff::1",  # its well-known resolver
        "feff::1",
        "fe00::1",
        "4000::1",
        "5f00::1",
        "2001:db8::1",  # documentation
        "3fff::1",  # documentation too (RFC 9637)
        # IPv4 blocks not globally reachable that Python 3.11 takes for global
        "192.0.0.8",  # IETF protocol assignments (RFC 6890)
        "192.0.0.100",
        "192.0.0.170",  # NAT64 discovery (RFC 7050)
        "192.88.99.1",  # the deprecated 6to4 relay anycast (RFC 7526)
    ],
)
def test_no_private_address_is_reachable_by_default(address: str) -> None:
    parsed = address_of(address)
    assert parsed is not None
    assert not reachable(parsed, ())


@pytest.mark.parametrize(
    "address",
    [
        "203.113.131.1",
        "8.8.8.8",
        "2001:4860:4860::8888",
        "2606:4700::1111",
        "2a00:1450::1",
        "192.0.0.9",  # the two anycast services of 192.0.0.0/24 are global (RFC 7723, 8155)
        "192.0.0.10",
    ],
)
def test_global_addresses_are_reachable(address: str) -> None:
    parsed = address_of(address)
    assert parsed is not None and reachable(parsed, ())


def test_a_listed_network_is_reachable_and_only_it() -> None:
    assert reachable(ipaddress.ip_address("127.0.0.1"), LOOPBACK)
    assert reachable(ipaddress.ip_address("::1"), LOOPBACK)
    assert not reachable(ipaddress.ip_address("10.0.0.1"), LOOPBACK)


def test_an_ipv4_mapped_address_is_judged_as_the_ipv4_address_it_is() -> None:
    assert ipaddress.ip_address("127.0.0.1") == address_of("::ffff:127.0.0.1")
    assert ipaddress.ip_address("127.0.0.1") == address_of("[::ffff:7f00:1]")
    assert ipaddress.ip_address("fe80::1") == address_of("fe80::1%eth0")


@pytest.mark.parametrize(
    ("host", "refused"),
    [
        ("localhost", "127.0.0.1"),
        ("LOCALHOST.", "127.0.0.1"),
        ("api.localhost", "127.0.0.1"),
        ("[::1]", "::1"),
        ("10.0.0.5", "10.0.0.5"),
        ("hooks.hue.gov.vn", None),  # a name is judged on what it resolves to, at each post
        ("203.113.131.1", None),
    ],
)
def test_a_route_host_is_refused_when_it_names_a_private_address(
    host: str, refused: str | None
) -> None:
    found = refused_host(host, ())
    assert refused == (None if found is None else str(found))


def test_a_listed_network_lets_a_route_name_it() -> None:
    assert refused_host("localhost", LOOPBACK) is None


@pytest.mark.parametrize("bad", ["nope", "10.0.0.0/33", "", "1.2.3.4/8/9"])
def test_a_network_that_is_not_one_is_refused_at_startup(bad: str) -> None:
    with pytest.raises(ValueError, match="notify_private_networks"):
        Settings(notify_private_networks=[bad])


def test_the_setting_reads_networks_and_single_addresses() -> None:
    settings = Settings(notify_private_networks=["10.0.0.0/8", "192.168.1.7", "::1"])
    assert ("10.0.0.0/8", "192.168.1.7/32", "::1/128") == tuple(
        str(n) for n in settings.private_networks()
    )


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("0", "0.0.0.0"),
    ],
)
def test_the_short_ipv4_forms_a_resolver_takes_are_judged_as_their_address(
    host: str, address: str
) -> None:
    # What getaddrinfo would connect to: refused as the address it is
    assert refused_host(host, ()) == ipaddress.ip_address(address)


def test_a_name_is_no_address_of_its_own() -> None:
    for host in ("example.com", "1e100.net", "congvan.gov.vn"):
        assert refused_host(host, ()) is None


# IPv6 addresses a packet may leave as IPv4: to a metadata service, loopback or a
# private network through a NAT64 gateway, a 6to4 or Teredo relay, or a dual stack.
CARRYING_PRIVATE_IPV4 = [
    ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # NAT64, the well-known prefix
    ("[64:ff9b::7f00:1]", "127.0.0.1"),
    ("64:ff9b::10.0.0.5", "10.0.0.5"),
    ("64:ff9b:1::a9fe:a9fe", None),  # local-use NAT64: the IPv4 may sit in several places
    ("64:ff9b:1:a9fe:a9:fe00::", "169.254.169.254"),  # ... here, under a /48 prefix
    ("2002:a9fe:a9fe::1", "169.254.169.254"),  # 6to4
    ("2002:7f00:1::", "127.0.0.1"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),  # Teredo: its client
    ("::7f00:1", "127.0.0.1"),  # IPv4-compatible
    ("::192.168.0.1", "192.168.0.1"),
    ("::ffff:0:7f00:1", "127.0.0.1"),  # IPv4-translated (SIIT)
    ("::ffff:0:a9fe:a9fe", "169.254.169.254"),
    ("169.254.169.254.", "169.254.169.254"),  # an IP literal written as a rooted name
    ("127.0.0.1.", "127.0.0.1"),
    ("[::ffff:127.0.0.1]", "127.0.0.1"),
]


@pytest.mark.parametrize(("host", "carried"), CARRYING_PRIVATE_IPV4)
def test_an_ipv6_address_carrying_a_private_ipv4_is_refused_as_that_address(
    host: str, carried: str | None
) -> None:
    # Given an address whose own form looks global to the ipaddress module
    # When a route names it
    refused = refused_host(host, ())
    # Then it is refused, judged as the IPv4 address a packet to it would reach
    assert refused is not None and refused.version == 4
    if carried is not None:
        assert refused == ipaddress.ip_address(carried)


@pytest.mark.parametrize(
    ("host", "carried"),
    [
        ("64:ff9b::808:808", "8.8.8.8"),
        ("2002:cb71:8301::1", "203.113.131.1"),
        ("::ffff:0:808:808", "8.8.8.8"),
        ("8.8.8.8.", "8.8.8.8"),
    ],
)
def test_an_ipv6_address_carrying_a_global_ipv4_is_reachable_as_that_address(
    host: str, carried: str
) -> None:
    assert address_of(host) == ipaddress.ip_address(carried)
    assert refused_host(host, ()) is None


def test_a_listed_private_network_allows_what_carries_it() -> None:
    assert refused_host("[64:ff9b::7f00:1]", LOOPBACK) is None
    assert refused_host("[::1]", LOOPBACK) is None  # IPv6's own loopback stays itself


@pytest.mark.parametrize("host", ["[64:ff9b::7f00:1]", "[2002:a9fe:a9fe::1]", "[::ffff:0:a00:5]"])
def test_a_post_is_not_connected_to_an_address_carrying_a_private_ipv4(host: str) -> None:
    # Given the transport webhooks are posted through, allowing no private network
    client = httpx.Client(transport=guarded_transport(()))
    # When a post goes to an address carrying a private IPv4
    # Then no connection is made: the address is refused as the IPv4 one it carries
    with client, pytest.raises(httpx.ConnectError, match="private address"):
        client.post(f"http://{host}:9/hook", content=b"{}")


def test_a_refused_name_does_not_tell_the_address_it_resolved_to() -> None:
    # Given the transport webhooks are posted through, allowing no private network
    client = httpx.Client(transport=guarded_transport(()))
    # When a post goes to a name this machine resolves to a private address
    with client, pytest.raises(httpx.ConnectError) as refused:
        client.post("http://localhost:9/hook", content=b"{}")
    # Then it is refused, saying why, and not which address the name stands for here:
    # the error is shown to the agency's supervisor, who is not told our network's names
    said = str(refused.value)
    assert "localhost is at a private address" in said
    assert "127.0.0.1" not in said and "::1" not in said


def test_a_refused_name_is_recorded_by_its_name_through_the_watchdog_that_looks_it_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a webhook post as workers make it (the watchdog looks the name up first, then
    # hands the guard the address), to a name this machine resolves to a private address
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    outcome = post_webhook(
        "http://localhost:9/hook",
        b"{}",
        secret="s" * 32,
        notice_id="n1",
        kind="test",
        timestamp=0,
        timeout=5,
    )
    # Then the attempt's error, which the agency's supervisor reads, names the host only
    assert outcome.outcome == "permanent"
    assert "localhost is at a private address" in (outcome.error or "")
    assert "127.0.0.1" not in (outcome.error or "") and "::1" not in (outcome.error or "")
