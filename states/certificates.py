"""A certificate described: the one shape every layer shows, stores and compares.

A signature's verdict carries it (the signer), the ``certificates`` table stores it as
JSON beside the certificate, the API answers with it and ``congvan verify`` prints it.
``actions.signing.description`` makes one from an X.509 certificate; here it is data.

The agency id (mã định danh, e.g. ``000.00.00.H57``) is the subject's OU in both kinds of
signing certificate (Decree 68/2024/NĐ-CP), so it is ``organizational_unit`` here. Text
the certificate does not carry is ``""``.

Rows stored before this shape used other names for some fields (``agency_id``,
``serial``, ``sha256_fingerprint``, ``issuer_common_name``) and ``null`` for missing
text; ``from_dict`` reads those too. Such a row names only the issuer's common name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from .text import one_tone_placement

# Older names of fields, as rows stored before this shape spell them.
FORMER_NAMES = {
    "agency_id": "organizational_unit",
    "serial": "serial_number",
    "sha256_fingerprint": "sha256",
    "issuer_common_name": "issuer",
}


@dataclass(frozen=True)
class CertificateDescription:
    """Who a certificate names, who issued it, when it is valid and what it may do."""

    common_name: str
    title: str  # a person's position; "" in an agency's certificate
    organization: str  # the agency's name
    organizational_unit: str  # the agency id
    user_id: str  # UID, e.g. CCCD:027090001234; "" in an agency's certificate
    serial_number: str  # hex, lower case
    issuer: str  # the issuer's name, e.g. "Common Name: …, Organization: …, Country: VN"
    sha256: str  # the SHA-256 fingerprint of the DER, hex
    not_before: datetime
    not_after: datetime
    profile: str | None = None  # "signer" | "agency"; None: it may not sign documents
    key_usage: tuple[str, ...] = ()  # RFC 5280 names, e.g. digital_signature
    is_ca: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON: datetimes in ISO 8601 with their offset, key usages as a list."""
        return {
            **{f.name: getattr(self, f.name) for f in fields(self)},
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "key_usage": list(self.key_usage),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CertificateDescription:
        """Read ``as_dict``'s shape, or the one rows stored before it have; raises
        ValueError when a fingerprint, serial or validity is missing."""
        values = {FORMER_NAMES.get(key, key): value for key, value in data.items()}
        missing = {"sha256", "serial_number", "not_before", "not_after"} - set(values)
        if missing:
            raise ValueError(f"not a certificate description: no {', '.join(sorted(missing))}")

        def text(name: str) -> str:
            value = values.get(name)
            return "" if value is None else str(value)

        return cls(
            common_name=text("common_name"),
            title=text("title"),
            organization=text("organization"),
            organizational_unit=text("organizational_unit"),
            user_id=text("user_id"),
            serial_number=text("serial_number"),
            issuer=text("issuer"),
            sha256=text("sha256"),
            not_before=_moment(values["not_before"]),
            not_after=_moment(values["not_after"]),
            profile=values.get("profile") or None,
            key_usage=tuple(values.get("key_usage") or ()),
            is_ca=bool(values.get("is_ca", False)),
        )


def _moment(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def comparable(value: str) -> str:
    """A name as certificates and documents are compared: NFC, case, spacing and the
    vowel a tone is written over (``Hoà``, ``Hòa``) aside."""
    return " ".join(one_tone_placement(value).casefold().split())
