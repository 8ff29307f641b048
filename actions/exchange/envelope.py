"""A canonical JSON body under an agency's detached CMS: what every exchange message shares.

A package's ``package.json``, a receipt and a status message are each one JSON object in
RFC 8785 canonical form (the same canonicalisation as the manifest), signed by an agency's
organisational key with a detached CMS exactly as a manifest is (``signing.cms``). This
module writes such a body and its signature (``seal``), reads a body back refusing what is
not the canonical form of a known format (``read_canonical``, ``Members``), and judges the
signature against the pinned roots (``verify_body``), turning signature failures into the
refusals a peer can record:

    the certificate names another agency          AgencyMismatch (403), reason ``certificate``
    anything else (untrusted root, revoked,       AgencySignatureInvalid (401), reason = the
    a person's certificate, body changed…)        ``SignatureError`` code underneath

Bodies carry every member of their format, ``null`` when empty, and no other: a member
added is a new format version.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from congvan.actions.signing.agencykeys import AgencyKey
from congvan.actions.signing.certpath import CLOCK_SKEW, ahead_of_clock
from congvan.actions.signing.keystore import TrustMaterial
from congvan.actions.signing.verification import Verdict, verify_manifest_signature
from congvan.states.errors import (
    AgencyMismatch,
    AgencySignatureInvalid,
    FormatUnsupported,
    ManifestMismatch,
    MessageMalformed,
    MessageMismatch,
    RevocationUnknown,
    SignatureError,
    SignerMismatch,
    VerificationDeferred,
)
from congvan.states.policy import EXCHANGE_ID_MAX_LENGTH, is_organ_id
from congvan.states.text import (
    MULTI_LINE_FIELDS,
    has_visible_text,
    in_utc,
    signed_text_problem,
)
from congvan.states.timeliness import FIRST_DAY, LAST_DAY, reckoned
from congvan.storage.canonical import canonical_bytes

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Identifiers (message ids, document ids) are opaque but short and printable: as long as
# the columns keeping a peer's identifiers hold on every database.
ID = re.compile(rf"[\x21-\x7e]{{1,{EXCHANGE_ID_MAX_LENGTH}}}")
MAX_TEXT = 2000
# Members whose text may span lines (an event's reason, a status's description...).
MULTI_LINE_TEXT = MULTI_LINE_FIELDS | {"description"}


@dataclass(frozen=True)
class Sealed:
    """A canonical body and the agency's detached CMS (DER) over its exact bytes."""

    body: bytes
    cms: bytes


def canonical(content: Mapping[str, Any]) -> bytes:
    """The RFC 8785 bytes of ``content``."""
    return canonical_bytes(dict(content))


def sign_body(body: bytes, agency: AgencyKey, at: datetime) -> bytes:
    """The agency's detached CMS over ``body``, claiming ``at`` as its signing time."""
    return agency.sign(body, at)


def seal(content: Mapping[str, Any], agency: AgencyKey, at: datetime) -> Sealed:
    """``content`` as canonical bytes, signed by ``agency``."""
    body = canonical(content)
    return Sealed(body, sign_body(body, agency, at))


def read_canonical(body: bytes, accepted: str) -> dict[str, Any]:
    """The object ``body`` holds, when its ``format`` is ``accepted`` and it is canonical."""
    try:
        content = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MessageMalformed("The message is not UTF-8 JSON.", reason="not_json") from exc
    if not isinstance(content, dict):
        raise MessageMalformed("The message is not a JSON object.", reason="not_json")
    found = content.get("format")
    if found != accepted:
        raise FormatUnsupported(
            f"The message's format is not {accepted}.",
            reason="unknown_format",
            format=None if found is None else str(found)[:60],
            accepted=accepted,
        )
    try:
        again = canonical_bytes(content)
    except (TypeError, ValueError, RecursionError) as exc:
        raise MessageMalformed(
            "The message holds a value JSON cannot carry exactly.", reason="non_canonical"
        ) from exc
    # Duplicate keys, spaces, escapes, key order, number forms: all change the bytes.
    if again != body:
        raise MessageMalformed(
            "The message is not in RFC 8785 canonical form.", reason="non_canonical"
        )
    return content


def verify_body(
    body: bytes, cms: bytes, trust: TrustMaterial, *, agency_id: str, at: datetime
) -> Verdict:
    """Check ``cms`` signs ``body`` with ``agency_id``'s organisational certificate at ``at``.

    The certificate must chain to a pinned root, be unrevoked by the CRLs of ``trust``,
    have the agency profile, name ``agency_id`` as its organisational unit, and be one
    listed for it (``trust.listed``: ours, or its directory entry's): any root pinned
    here could issue a certificate naming any agency. An unlisted one is deferred (503),
    as a renewal not yet imported would be; nothing is taken under it.
    """
    try:
        verdict = verify_manifest_signature(
            body,
            cms,
            trust_roots=trust.roots_for(agency_id),
            crls=trust.crls,
            intermediates=trust.intermediates,
            at=at,
            expected_signer={"organizational_unit": agency_id},
            profile="agency",
        )
    except RevocationUnknown as exc:
        raise deferred(exc, agency_id) from exc
    except SignerMismatch as exc:
        raise AgencyMismatch(
            f"The message is signed with a certificate of another agency than {agency_id}.",
            reason="certificate",
            agency_id=agency_id,
            differences=exc.details.get("differences", {}),
        ) from exc
    except SignatureError as exc:
        if ahead_of_clock(exc):
            raise clock_ahead(exc, agency_id) from exc
        # What it signs is a message (a header, a receipt, a status, an index), not the
        # document's manifest: said so, under the same stable reason.
        why = (
            "what it signs is not this message as it came (changed since it was signed)"
            if isinstance(exc, ManifestMismatch)
            else exc.message
        )
        raise AgencySignatureInvalid(
            f"The agency signature of {agency_id} does not verify: {why}",
            reason=exc.code,
            agency_id=agency_id,
        ) from exc
    if trust.listed is not None and verdict.signer.sha256 not in trust.listed.get(agency_id, ()):
        # Nothing is taken; but a certificate the agency renewed is refused so until its
        # directory entry is imported here, so the sender is told to come back (503), not
        # that its message is refused for good: a status 02 no resend could undo.
        raise VerificationDeferred(
            f"The message is signed with a certificate this system does not hold for "
            f"{agency_id} (yet: its operators import the agency's directory entry with its "
            "certificates); send it again later.",
            reason="certificate_not_listed",
            agency_id=agency_id,
            fingerprint=verdict.signer.sha256,
        )
    return verdict


def check_moment(
    name: str,
    moment: datetime,
    *,
    signed_at: datetime | None = None,
    not_before: datetime | None = None,
    since: tuple[str, str] = ("sent_at", "the package it answers was sent"),
    now: datetime | None = None,
) -> None:
    """A moment a signed message claims (a receipt's ``received_at``, a status's ``at``)
    is evidence: it cannot come after the message was signed, nor after ``now`` (when it
    is taken, or judged), nor before the package it answers was sent (each within the
    clock skew verifiers allow, once: a signing time already at the skew's edge leaves
    none for the moment beyond it). ``since`` names what ``not_before`` is: its key in the
    error's details, and what it was."""
    if signed_at is not None and moment > signed_at + CLOCK_SKEW:
        raise MessageMismatch(
            f"{name} is after the message was signed.",
            reason="moment",
            member=name,
            found=iso(moment),
            signed_at=iso(signed_at),
        )
    if now is not None and moment > now + CLOCK_SKEW:
        raise VerificationDeferred(
            f"{name} lies ahead of this system's clock by more than the clock skew allowed: "
            "one of the two clocks is wrong (send it again later; the operators set it "
            "right).",
            reason="clock_ahead",
            member=name,
            found=iso(moment),
            now=iso(now),
        )
    if not_before is not None and moment < not_before - CLOCK_SKEW:
        key, what = since
        raise MessageMismatch(
            f"{name} is before {what}.",
            reason="moment",
            member=name,
            found=iso(moment),
            **{key: iso(not_before)},
        )


def deferred(exc: RevocationUnknown, agency_id: str) -> VerificationDeferred:
    """Whether a certificate is revoked cannot be told here yet (this system's CRL is out
    of date): a wait on our side, never held against the sender."""
    return VerificationDeferred(
        f"A certificate of {agency_id}'s message cannot be checked for revocation just now "
        f"({exc.message}); send it again later.",
        reason=exc.code,
        agency_id=agency_id,
    )


def clock_ahead(exc: SignatureError, agency_id: str) -> VerificationDeferred:
    """A signature made ahead of our clock, or under a certificate not valid yet by it:
    the two clocks disagree, which a wait (or an operator) settles; never held against
    the sender as a refusal of what it sent."""
    return VerificationDeferred(
        f"A signature of {agency_id}'s message lies ahead of this system's clock "
        f"({exc.message}): one of the two clocks is wrong; send it again later.",
        reason="clock_ahead",
        agency_id=agency_id,
        **{k: v for k, v in exc.details.items() if k in ("signing_time", "checked_at")},
    )


def iso(moment: datetime) -> str:
    """A moment as the formats write it: ISO 8601 in UTC, to the second."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("moments in exchange messages must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


class Members:
    """Reads the members of a parsed body, refusing a missing, extra or mistyped one."""

    def __init__(self, content: Mapping[str, Any], names: Collection[str]) -> None:
        missing = sorted(set(names) - set(content))
        extra = sorted(set(content) - set(names))
        if missing or extra:
            raise MessageMalformed(
                "The message's members are not those of its format.",
                reason="members",
                missing=missing,
                extra=extra[:20],
            )
        self.content = content

    def _bad(self, name: str, what: str) -> MessageMalformed:
        return MessageMalformed(f"{name} must be {what}.", reason="member", member=name)

    def identifier(self, name: str) -> str:
        value = self.content[name]
        if not isinstance(value, str) or not ID.fullmatch(value):
            raise self._bad(
                name, f"up to {EXCHANGE_ID_MAX_LENGTH} printable ASCII characters without spaces"
            )
        return value

    def organ_id(self, name: str) -> str:
        value = self.content[name]
        if not isinstance(value, str) or not is_organ_id(value):
            raise self._bad(name, "an agency identifier")
        return value

    def sha256(self, name: str) -> str:
        value = self.content[name]
        if not isinstance(value, str) or not SHA256_HEX.fullmatch(value):
            raise self._bad(name, "64 lowercase hex digits")
        return value

    def moment(self, name: str) -> datetime:
        value = self.content[name]
        try:
            moment = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            moment = None
        # One moment, one way to write it, as ``iso`` does (a signed message is canonical):
        # not a week date, the compact form, another offset, a fraction or a ``Z``.
        if moment is None or in_utc(moment) is None or not reckoned(moment) or value != iso(moment):
            raise self._bad(
                name,
                "a moment in UTC to the second, as 2026-01-05T08:06:00+00:00, "
                f"in years {FIRST_DAY.year} to {LAST_DAY.year}",
            )
        return moment

    def text(self, name: str, *, required: bool = True) -> str | None:
        value = self.content[name]
        if value is None and not required:
            return None
        if not isinstance(value, str) or not has_visible_text(value) or len(value) > MAX_TEXT:
            raise self._bad(name, f"text of 1 to {MAX_TEXT} characters")
        # Stored as it came (it is signed): text both databases keep, line breaks only
        # where people write paragraphs.
        problem = signed_text_problem(value, multi_line=name in MULTI_LINE_TEXT)
        if problem is not None:
            raise MessageMalformed(
                f"{name} {problem}.", reason="member", member=name, problem="text"
            )
        return value

    def choice(self, name: str, allowed: Collection[str]) -> str:
        value = self.content[name]
        # A string first: a list or an object is in no set of names, and cannot be hashed
        if not isinstance(value, str) or value not in allowed:
            raise self._bad(name, f"one of {', '.join(sorted(allowed))}")
        return value
