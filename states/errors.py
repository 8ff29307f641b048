"""The error tree every layer raises and the API renders as ``{"code", "message", "details"}``.

    CongvanError
     ├── InvalidInput (422)              invalid_input
     │    ├── MessageMalformed (422)      message_malformed           [refusal]
     │    │    └── FormatUnsupported (422) format_unsupported         [refusal]
     │    ├── PackageTampered (422)       package_tampered            [refusal]
     │    ├── MessageMismatch (422)       message_mismatch            [refusal]
     │    ├── OriginalUnknown (422)       original_unknown            [refusal]
     │    ├── FieldTooLong (422)          field_too_long
     │    ├── TooManyAttachments (422)    too_many_attachments
     │    ├── IdempotencyKeyReused (422)  idempotency_key_reused
     │    ├── InvalidEncoding (422)       invalid_encoding
     │    ├── RepeatedField (422)         repeated_field
     │    └── UnknownEvent (422)          unknown_event
     ├── PayloadTooLarge (413)           payload_too_large
     │    ├── AttachmentTooLarge (413)    attachment_too_large
     │    └── PackageTooLarge (413)       package_too_large           [refusal]
     ├── Unauthenticated (401)           unauthenticated
     │    ├── AgencySignatureInvalid (401) agency_signature_invalid  [refusal]
     │    └── PeerUnknown (401)           peer_unknown                [refusal]
     ├── Forbidden (403)                 forbidden
     │    ├── AgencyMismatch (403)        agency_mismatch             [refusal]
     │    └── Misaddressed (403)          misaddressed                [refusal]
     ├── NotFound (404)                  not_found
     ├── PreconditionFailed (412)        precondition_failed
     ├── PreconditionRequired (428)      precondition_required
     ├── Conflict (409)                  conflict
     │    ├── TransitionNotAllowed (409)  invalid_transition
     │    ├── GuardFailed (409)           guard_failed
     │    ├── VersionConflict (409)       version_conflict
     │    ├── AlreadyExists (409)         already_exists
     │    ├── NumberingConflict (409)     numbering_conflict
     │    ├── StatusContradicted (409)    status_contradicted         [refusal]
     │    ├── MessageIdReused (409)       message_id_reused           [refusal]
     │    ├── RequestAwaiting (409)       request_awaiting            [refusal]
     │    └── DocumentReceivedBefore (409) duplicate_document        [refusal]
     ├── SignatureError (422)            signature_invalid
     │    ├── SignatureMalformed (422)    signature_malformed
     │    ├── WeakAlgorithm (422)         weak_algorithm
     │    ├── ManifestMismatch (422)      manifest_mismatch
     │    │    └── PdfModified (422)      pdf_modified
     │    ├── CertificateExpired (422)    certificate_expired
     │    ├── CertificateNotYetValid (422) certificate_not_yet_valid
     │    ├── CertificateRevoked (422)    certificate_revoked
     │    ├── RevocationUnknown (422)     revocation_unknown
     │    ├── ChainUntrusted (422)        chain_untrusted
     │    ├── KeyUsageInvalid (422)       key_usage_invalid
     │    │    └── CertificateProfileInvalid (422) certificate_profile_invalid
     │    ├── SigningTimeInvalid (422)    signing_time_invalid
     │    ├── TimestampInvalid (422)      timestamp_invalid
     │    ├── SignerMismatch (422)        signer_mismatch
     │    └── DocumentSignatureInvalid (422) document_signature_invalid [refusal]
     ├── UnknownPeer (422)               unknown_peer
     ├── ActionUnavailable (501)         action_unavailable
     ├── Unavailable (503)               unavailable
     │    ├── DatabaseUnavailable (503)   database_unavailable
     │    │    └── DatabaseNotReady (503) database_not_migrated
     │    ├── VerificationDeferred (503)  verification_deferred
     │    └── ServerBusy (503)            server_busy
     └── ExchangeRefused (422)           exchange_refused

Codes are part of the public contract: they never change once released. The whole tree
is one module on purpose (over 400 lines): the drawing above and the classes below are
checked against each other, and a client reads every code in one place.

``[refusal]`` marks the errors that refuse a peer's package, receipt or status message
(``actions/exchange``): each is also an ``ExchangeRefused``, so the inbox catches them all
at once, and each carries a ``reason`` (in ``details`` too) that the peer records: a word
of the exchange modules (``part_digest``, ``unsafe_name``…) or, for a signature, the code
of the ``SignatureError`` underneath (``chain_untrusted``, ``certificate_revoked``…).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

MESSAGE_CHARS = 2000  # the most characters of an error's message
DETAIL_CHARS = 300  # of each text in its details


def _bounded(value: Any, most: int) -> Any:
    """``value`` with every text in it cut to ``most`` characters (and an ellipsis)."""
    if isinstance(value, str):
        return value if len(value) <= most else value[: most - 1] + "…"
    if isinstance(value, list | tuple):
        return type(value)(_bounded(v, most) for v in value)
    if isinstance(value, dict):
        return {k: _bounded(v, most) for k, v in value.items()}
    return value


class CongvanError(Exception):
    """Something went wrong in congvan."""

    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str | None = None, **details: Any) -> None:
        message = message or (self.__doc__ or self.code).strip()
        # What a caller sent comes back in messages and details (an id, a name): bounded,
        # so that an answer never grows with its request.
        self.message = _bounded(message, MESSAGE_CHARS)
        self.details: dict[str, Any] = {k: _bounded(v, DETAIL_CHARS) for k, v in details.items()}
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class ExchangeRefused(CongvanError):
    """A peer's package, receipt or status message is refused."""

    code = "exchange_refused"
    http_status = 422

    def __init__(self, message: str | None = None, *, reason: str = "", **details: Any) -> None:
        self.reason = reason or self.code
        super().__init__(message, reason=self.reason, **details)


class InvalidInput(CongvanError):
    """The input is not valid."""

    code = "invalid_input"
    http_status = 422


class MessageMalformed(InvalidInput, ExchangeRefused):
    """The message is not what its format says it must be."""

    code = "message_malformed"


class FormatUnsupported(MessageMalformed):
    """The message has a format, version or kind this system does not accept."""

    code = "format_unsupported"


class PackageTampered(InvalidInput, ExchangeRefused):
    """A part of the package differs from what the agency signature or the manifest names."""

    code = "package_tampered"


class MessageMismatch(InvalidInput, ExchangeRefused):
    """The message answers another message than the one expected."""

    code = "message_mismatch"


class OriginalUnknown(InvalidInput, ExchangeRefused):
    """The document a recall, update or replacement names is not one in force here from
    that sender."""

    code = "original_unknown"


class FieldTooLong(InvalidInput):
    """A text field is longer than allowed."""

    code = "field_too_long"


class TooManyAttachments(InvalidInput):
    """The document has more attachments than allowed."""

    code = "too_many_attachments"


class IdempotencyKeyReused(InvalidInput):
    """This Idempotency-Key was already used for a different request."""

    code = "idempotency_key_reused"


class InvalidEncoding(InvalidInput):
    """The request carries text that is not UTF-8 (or, in a header, not ASCII)."""

    code = "invalid_encoding"


class RepeatedField(InvalidInput):
    """A field that is taken once was given more than once."""

    code = "repeated_field"


class PayloadTooLarge(CongvanError):
    """The request body is larger than allowed."""

    code = "payload_too_large"
    http_status = 413


class AttachmentTooLarge(PayloadTooLarge):
    """An attachment is larger than allowed."""

    code = "attachment_too_large"


class PackageTooLarge(PayloadTooLarge, ExchangeRefused):
    """The package exceeds this receiver's limits on parts or sizes."""

    code = "package_too_large"


class Unauthenticated(CongvanError):
    """A valid API token is required."""

    code = "unauthenticated"
    http_status = 401


class AgencySignatureInvalid(Unauthenticated, ExchangeRefused):
    """The sending agency's signature does not verify with an agency certificate we trust."""

    code = "agency_signature_invalid"


class PeerUnknown(Unauthenticated, ExchangeRefused):
    """The sending agency is not in this system's directory."""

    code = "peer_unknown"


class Forbidden(CongvanError):
    """Your role does not allow this."""

    code = "forbidden"
    http_status = 403


class AgencyMismatch(Forbidden, ExchangeRefused):
    """The message is signed for, or claims, another agency than the one it must come from."""

    code = "agency_mismatch"


class Misaddressed(Forbidden, ExchangeRefused):
    """The message is addressed to another agency."""

    code = "misaddressed"


class NotFound(CongvanError):
    """No such resource."""

    code = "not_found"
    http_status = 404


class PreconditionFailed(CongvanError):
    """A condition the request set (If-Match, If-None-Match) does not hold: nothing done."""

    code = "precondition_failed"
    http_status = 412


class PreconditionRequired(CongvanError):
    """A change that replaces a whole set came without the If-Match that says which it
    replaces (RFC 6585 3): nothing done."""

    code = "precondition_required"
    http_status = 428


class Conflict(CongvanError):
    """The request conflicts with the current state."""

    code = "conflict"
    http_status = 409


class TransitionNotAllowed(Conflict):
    """This event is not allowed in the current state."""

    code = "invalid_transition"

    def __init__(self, event: str, state: str, allowed: Sequence[str]) -> None:
        super().__init__(
            f"Event {event!r} is not allowed in state {state!r}.",
            event=event,
            state=state,
            allowed=sorted(allowed),
        )


class UnknownEvent(InvalidInput):
    """No machine of this kind has an event of this name (a typo, not a state's refusal)."""

    code = "unknown_event"

    def __init__(self, event: str, state: str, allowed: Sequence[str]) -> None:
        super().__init__(
            f"There is no event {event[:100]!r}; in state {state!r} these are allowed: "
            f"{', '.join(sorted(allowed)) or 'none'}.",
            event=event[:100],
            state=state,
            allowed=sorted(allowed),
        )


class GuardFailed(Conflict):
    """The event is known here, but its conditions are not met."""

    code = "guard_failed"

    def __init__(
        self, event: str, state: str, failed: Sequence[str], reasons: Mapping[str, str]
    ) -> None:
        super().__init__(
            f"Event {event!r} in state {state!r} needs: {', '.join(failed)}.",
            event=event,
            state=state,
            failed=list(failed),
            reasons=dict(reasons),
        )


class VersionConflict(Conflict):
    """Somebody changed the document first; reload it and try again."""

    code = "version_conflict"

    def __init__(
        self, expected: int | tuple[int, ...], current: int, *, subject: str = "document"
    ) -> None:
        if isinstance(expected, int):
            said = f"Expected version {expected}"
        elif expected:
            said = f"If-Match names versions {', '.join(map(str, expected))}"
        else:  # only weak tags, or tags that are none of our ETags
            said = (
                'If-Match names none of our ETags, each a version in quotes ("3"; a weak '
                'tag, W/"3", never matches)'
            )
        super().__init__(
            f"{said} but the {subject} is at version {current}.",
            expected_version=expected if isinstance(expected, int) else list(expected),
            current_version=current,
        )


class AlreadyExists(Conflict):
    """A resource with this identity already exists."""

    code = "already_exists"


class NumberingConflict(Conflict):
    """Numbers already held would repeat in the agency's new number series."""

    code = "numbering_conflict"


class StatusContradicted(Conflict, ExchangeRefused):
    """A recipient's status message contradicts one it sent before (refused, then
    registered; registered, then refused; agreed, then declined)."""

    code = "status_contradicted"


class MessageIdReused(Conflict, ExchangeRefused):
    """A package comes with the message id of one received before, but is not the same
    package: a message id names one package for the life of its dispatch."""

    code = "message_id_reused"


class RequestAwaiting(Conflict, ExchangeRefused):
    """A recall or update comes while an earlier one of the document still awaits our
    clerk's answer: one request at a time, each answered (15 or 16)."""

    code = "request_awaiting"


class DocumentReceivedBefore(Conflict, ExchangeRefused):
    """A package brings, under a message id of its own, a document its sender sent here
    before: the same document id, or the same number, symbol and date (domain.md §8)."""

    code = "duplicate_document"


class SignatureError(CongvanError):
    """The digital signature does not verify."""

    code = "signature_invalid"
    http_status = 422


class SignatureMalformed(SignatureError):
    """The signature is not strict, standard DER CMS as this system accepts it."""

    code = "signature_malformed"


class WeakAlgorithm(SignatureError):
    """The signature uses an algorithm that is not accepted (only SHA-256/384/512)."""

    code = "weak_algorithm"


class ManifestMismatch(SignatureError):
    """The signed manifest no longer matches the document and its attachments."""

    code = "manifest_mismatch"


class PdfModified(ManifestMismatch):
    """The signed PDF changes what the reviewed PDF shows; only a signature may be added."""

    code = "pdf_modified"


class CertificateExpired(SignatureError):
    """The signer's certificate had expired at signing time."""

    code = "certificate_expired"


class CertificateNotYetValid(SignatureError):
    """The signer's certificate was not yet valid at signing time."""

    code = "certificate_not_yet_valid"


class CertificateRevoked(SignatureError):
    """The signer's certificate is revoked."""

    code = "certificate_revoked"


class RevocationUnknown(SignatureError):
    """The revocation status of a certificate cannot be determined (no current CRL)."""

    code = "revocation_unknown"


class ChainUntrusted(SignatureError):
    """The certificate does not chain to a trusted root."""

    code = "chain_untrusted"


class KeyUsageInvalid(SignatureError):
    """The certificate may not be used for signing documents."""

    code = "key_usage_invalid"


class CertificateProfileInvalid(KeyUsageInvalid):
    """The certificate's profile does not allow this use (signer versus agency)."""

    code = "certificate_profile_invalid"


class SigningTimeInvalid(SignatureError):
    """The signing time lies in the future or outside the certificate's validity."""

    code = "signing_time_invalid"


class TimestampInvalid(SignatureError):
    """The signature's timestamp token does not verify."""

    code = "timestamp_invalid"


class SignerMismatch(SignatureError):
    """The certificate does not belong to the document's signer."""

    code = "signer_mismatch"


class DocumentSignatureInvalid(SignatureError, ExchangeRefused):
    """The signer's signature over the package's manifest, or in its signed PDF, does not
    verify."""

    code = "document_signature_invalid"


class UnknownPeer(CongvanError):
    """The agency has no entry in the directory of peers: nobody knows where to deliver."""

    code = "unknown_peer"
    http_status = 422


class ActionUnavailable(CongvanError):
    """This transition needs a capability this installation does not provide yet."""

    code = "action_unavailable"
    http_status = 501


class Unavailable(CongvanError):
    """Not now: something this system needs is missing for a while. Try again later."""

    code = "unavailable"
    http_status = 503


class VerificationDeferred(Unavailable):
    """A peer's message cannot be checked just now: no current revocation list covers its
    certificate here. Not a refusal: the sender tries again later (``reason`` says why)."""

    code = "verification_deferred"


class ServerBusy(Unavailable):
    """As many packages as the inbox reads at once are coming in: send again shortly."""

    code = "server_busy"
    http_status = 503


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached just now; nothing was changed. Try again later."""

    code = "database_unavailable"
    http_status = 503


class DatabaseNotReady(DatabaseUnavailable):
    """The database schema is missing or old: run `congvan migrate`."""

    code = "database_not_migrated"
    http_status = 503
