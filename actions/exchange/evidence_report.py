"""The verdict on an evidence bundle: one check per item, and the roots it rested on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509

from congvan.actions.signing.issuers import root_of
from congvan.actions.signing.truststore import fingerprint
from congvan.states.errors import (
    AgencySignatureInvalid,
    CongvanError,
    MessageMismatch,
    RevocationUnknown,
    VerificationDeferred,
)

from .evidence import FORMAT


@dataclass(frozen=True)
class Check:
    """One item of the verdict."""

    item: str
    ok: bool
    detail: str
    code: str = ""  # why it failed; stable
    member: str | None = None  # the member it is about
    # What holds but whoever relies on it should know (a key revoked after it signed).
    warning: str = ""


@dataclass
class Report:
    """Every check of a bundle, and which roots it rested on."""

    sha256: str = ""
    document_id: str = ""
    trust_source: str = "bundle"  # "pinned": roots the caller gave; "bundle": its own
    roots: list[str] = field(default_factory=list)
    anchored_by: set[str] = field(default_factory=set)  # roots that anchored a signature
    checks: list[Check] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def holds(self, item: str, detail: str, warning: str = "") -> None:
        self.checks.append(Check(item, True, detail, warning=warning))

    def fail(self, item: str, code: str, detail: str, member: str | None = None) -> None:
        self.checks.append(Check(item, False, detail, code, member))

    def refused(self, item: str, exc: CongvanError, member: str | None = None) -> None:
        """``item`` failed as ``exc`` says, under the code of :func:`signature_code`; a
        verification the wire would defer ("send it again later") says what it lacks, as
        a wait means nothing offline."""
        self.fail(item, signature_code(exc), offline(exc), member)

    def anchored(self, cms: bytes, roots: Sequence[x509.Certificate]) -> str:
        """Note which of ``roots`` a verified CMS chains to; a few words saying it."""
        root = anchoring_root(cms, roots)
        if root is None:
            return ""
        self.anchored_by.add(root)
        return f"; root {root[:16]}…"

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "sha256": self.sha256,
            "document_id": self.document_id,
            "verified": self.verified,
            "trust": {
                "source": self.trust_source,
                "roots": self.roots,
                "anchored_by": sorted(self.anchored_by),
            },
            "checks": [c.__dict__ for c in self.checks],
        }


def offline(exc: CongvanError) -> str:
    """What ``exc`` says, as said offline: a verification the wire would defer ("send it
    again later") says what it lacks instead, as a wait means nothing to a bundle: the
    issuer's CRL of the time, or, for a signature made after the moment it is judged at
    (``clock_ahead``), that one of the two clocks was wrong."""
    cause = exc.__cause__
    if not isinstance(exc, VerificationDeferred) or not isinstance(cause, CongvanError):
        return str(exc.message)
    if isinstance(cause, RevocationUnknown):
        return (
            f"{cause.message} Offline, nothing comes later: the bundle needs the "
            "issuer's CRL in force when it was signed."
        )
    return (
        f"{cause.message} Offline, nothing comes later: the signature claims to have been "
        "made after the moment it is judged at (its signer's clock, or the clock that "
        "recorded its acceptance, was wrong)."
    )


def signature_code(exc: CongvanError) -> str:
    """The stable code a verdict gives a refused signed message: the signature's own
    (``chain_untrusted``, ``revocation_unknown``, ``certificate_revoked``, …) whatever it
    signs. The exchange wraps them for the wire, as an agency signature refused or a
    verification deferred (a wait for a fresher CRL, which means nothing offline), with
    the signature's code as the reason: unwrapped here."""
    if isinstance(exc, (AgencySignatureInvalid, VerificationDeferred)):
        return str(exc.details.get("reason") or exc.code)
    if isinstance(exc, MessageMismatch) and exc.details.get("reason") == "moment":
        return "moment"  # an anchor signed at another moment than its `at`, as the index
    return exc.code


def revoked_later(later: Mapping[str, str | None] | None) -> str:
    """What to say beside a signature that stands when a certificate of its path was
    revoked after it was made (a key compromise, say); nothing when none was."""
    if later is None:
        return ""
    return (
        f"{later['subject']} was revoked after that, at {later['revoked_at']} (reason: "
        f"{later['reason'] or 'unspecified'}): the signature was made before and stands, "
        "but the key may since be in other hands"
    )


def anchoring_root(cms: bytes, roots: Sequence[x509.Certificate]) -> str | None:
    """The fingerprint of the root the CMS's signer chains to, through the certificates the
    CMS carries: the root of the signer's path, not of whatever else came with it."""
    try:
        signed_data = asn1_cms.ContentInfo.load(cms)["content"]
        carried = [c.chosen for c in signed_data["certificates"] if c.name == "certificate"]
        sid = signed_data["signer_infos"][0]["sid"]
        signer = next(c for c in carried if _identifies(sid, c))
        as_x509 = [x509.load_der_x509_certificate(c.dump()) for c in carried]
        leaf = x509.load_der_x509_certificate(signer.dump())
    except (ValueError, TypeError, KeyError, IndexError, StopIteration):
        return None
    root = root_of(leaf, roots, as_x509)
    return None if root is None else fingerprint(root)


def _identifies(sid: asn1_cms.SignerIdentifier, cert: asn1_x509.Certificate) -> bool:
    """Whether the SignerInfo's ``sid`` names ``cert`` (RFC 5652 §5.3)."""
    if sid.name == "issuer_and_serial_number":
        named = sid.chosen
        return bool(
            cert.serial_number == named["serial_number"].native and cert.issuer == named["issuer"]
        )
    return bool(cert.key_identifier == sid.chosen.native)
