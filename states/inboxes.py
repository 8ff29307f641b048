"""Inbox URLs: where a delivery to a peer may go, decided from the URL alone.

A package and its receipt travel over https; plain http only to this machine (loopback)
or where the operator says the network is trusted. Peers prove who they are by signature,
so a URL carries no user name or password; a fragment is never sent, so it is refused
rather than silently dropped.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

from .errors import InvalidInput
from .policy import INBOX_URL_MAX_LENGTH


def validate_inbox_url(
    url: str,
    *,
    allow_http: bool = False,
    field: str = "inbox_url",
    path_shown: bool = True,
    path_required: bool = False,
) -> str:
    """The inbox URL, when deliveries may go there: http(s), a host, no user-info or fragment.

    Plain http is refused (a package and its receipt would travel in clear) unless the host
    is loopback or ``allow_http`` says the operator knows the network. A refused URL is
    echoed without what may be a secret (``echoed``; ``path_shown`` False: nor its path).
    """

    def refuse(why: str) -> InvalidInput:
        return InvalidInput(f"{field} {why}", field=field, value=echoed(url, path=path_shown)[:100])

    if not isinstance(url, str) or not url:
        raise InvalidInput(
            f"{field} is a URL, e.g. https://peer.example.vn/v1/inbox/…", field=field
        )
    if len(url) > INBOX_URL_MAX_LENGTH:
        raise refuse(f"is longer than {INBOX_URL_MAX_LENGTH} characters.")
    # urlsplit drops tabs and new lines silently; a host written in Unicode would be sent
    # as something else. Both are refused rather than guessed.
    if not url.isascii() or any(c <= " " or c == "\x7f" for c in url):
        raise refuse(
            "must be ASCII without spaces or control characters (an internationalised "
            "host name in its xn-- form)."
        )
    if "#" in url:
        raise refuse("must not carry a fragment (#…).")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks it
    except ValueError as exc:
        raise refuse(f"is not a valid URL: {exc}.") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise refuse("must be an http or https URL.")
    if "@" in parts.netloc:
        raise refuse(
            "must not carry a user name or password: peers prove who they are by signature."
        )
    host = parts.hostname or ""
    if not host:
        raise refuse("must name a host.")
    if not _host_name(host):
        raise refuse("must name a host: a DNS name (letters, digits, hyphens) or an IP address.")
    if parts.port == 0:
        raise refuse("must name a port from 1 to 65535, or none.")
    if scheme == "http" and not allow_http and not is_loopback(host):
        raise refuse(
            "must use https unless its host is loopback (an operator may allow plain http "
            "on a network it trusts, from the command line).",
        )
    if path_required and parts.path in ("", "/"):
        # A server's bare address: every delivery would be posted to / and answered 404.
        raise refuse(
            "names no path: give the inbox's whole URL, e.g. https://peer.example.vn/v1/inbox "
            "(a congvan inbox is at /v1/inbox)."
        )
    return _normalised(scheme, host, parts.port, parts.path, parts.query)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def echoed(url: str, *, path: bool = True) -> str:
    """``url`` as an error or a listing may show it: never a user name or password, a query
    or a fragment (each may carry a token), and, with ``path`` False, no path either (a
    webhook's often is one): ``https://hooks.example.vn/…``."""
    try:
        parts = urlsplit(url[:INBOX_URL_MAX_LENGTH])
    except ValueError:
        return url.partition("://")[0][:10] + "://…"
    if not parts.netloc:  # no scheme, or none urlsplit knows: shown as typed, no query
        typed = url[:INBOX_URL_MAX_LENGTH].split("#", 1)[0]
        typed = typed.split("?", 1)[0] + ("?…" if "?" in typed else "")
        if "@" in typed:
            typed = "…@" + typed.rpartition("@")[2]
        return typed if path else typed.split("/", 1)[0] + ("/…" if "/" in typed else "")
    netloc = parts.netloc.rpartition("@")[2]
    shown = f"{parts.scheme}://{'…@' if '@' in parts.netloc else ''}{netloc}"
    if path:
        shown += parts.path + ("?…" if parts.query else "") + ("#…" if parts.fragment else "")
    elif parts.path not in ("", "/") or parts.query or parts.fragment:
        shown += "/…"
    return shown


def _normalised(scheme: str, host: str, port: int | None, path: str, query: str) -> str:
    """The URL written one way (RFC 3986 6.2.2-6.2.3): scheme and host in lower case, the
    host without the root's trailing dot, no default port, an empty path as ``/``; so that
    ``HTTPS://Example.com.:443`` and ``https://example.com/`` are one address (one peer,
    one route), not two."""
    host = host.rstrip(".")
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, path or "/", query, ""))


# One label of a DNS host name (RFC 1123): letters, digits and inner hyphens.
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _host_name(host: str) -> bool:
    """Whether ``host`` (as ``urlsplit`` gives it: lower case, brackets gone) is an IP
    address or a host name a resolver looks up: no ``*``, ``_`` or empty label."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return True
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (as ``urlsplit`` gives it, lower case) stays on this machine."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
