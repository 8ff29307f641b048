"""The one canonical JSON of everything congvan hashes or signs (RFC 8785, JCS): audit
entries, manifests, package headers, receipts, status messages, anchors."""

from __future__ import annotations

import json
from typing import Any

import rfc8785


def canonical_json(value: Any) -> str:
    """RFC 8785 (JCS) JSON, the one canonical form of everything congvan hashes or signs.

    Entries hashed before JCS was adopted used ``json.dumps(sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)``; for what an entry's hash covers (text
    and integers) the two write the same bytes, so old chains verify unchanged
    (tests/unit/test_audit_hash.py proves it), and a payload's digest is taken over its
    stored text, whatever wrote it. A value JSON cannot carry is refused, not stringified.
    """
    if _plain(value):
        # Text, safe integers, booleans, null, lists and objects whose keys sort alike by
        # UTF-16 code units and by code points: here JCS is exactly this, and the C encoder
        # is several times faster than serialising in Python (every transition hashes twice).
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return rfc8785.dumps(value).decode("utf-8")
    except rfc8785.CanonicalizationError as exc:
        raise TypeError(f"not canonical JSON: {exc}") from exc


def canonical_bytes(value: Any) -> bytes:
    """``canonical_json`` as the UTF-8 bytes hashed or signed (a package's header, its
    manifest, a receipt, a status, an anchor); TypeError for a value JSON cannot carry
    exactly, a lone surrogate among them."""
    try:
        return canonical_json(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TypeError(f"not canonical JSON: {exc}") from exc


_SAFE_INTEGER = 2**53
# The largest integer JSON carries exactly (RFC 8785 3.2.2.3; I-JSON): a version beyond
# it is in no chain.
MAX_SAFE_INTEGER = _SAFE_INTEGER - 1


def _plain(value: Any) -> bool:
    """Whether ``json.dumps(sort_keys=True)`` writes ``value`` as RFC 8785 does."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_SAFE_INTEGER < value < _SAFE_INTEGER)
    if kind is list or kind is tuple:
        return all(_plain(item) for item in value)
    if kind is dict:
        return all(
            type(key) is str and (key.isascii() or max(key) <= "\uffff") and _plain(item)
            for key, item in value.items()
        )
    return False  # floats (JCS writes them as ECMAScript does) and anything else
