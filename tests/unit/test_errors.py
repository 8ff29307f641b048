"""The error tree: stable codes, HTTP statuses, and the shape the API renders."""

from __future__ import annotations

import inspect
import json
import re
from http import HTTPStatus

import pytest

from congvan.states import errors
from congvan.states.errors import (
    CongvanError,
    GuardFailed,
    NotFound,
    TransitionNotAllowed,
    VersionConflict,
)

# Codes are a public contract: changing one must break this table on purpose.
FROZEN = {
    "CongvanError": ("error", 500),
    "InvalidInput": ("invalid_input", 422),
    "FieldTooLong": ("field_too_long", 422),
    "TooManyAttachments": ("too_many_attachments", 422),
    "IdempotencyKeyReused": ("idempotency_key_reused", 422),
    "InvalidEncoding": ("invalid_encoding", 422),
    "RepeatedField": ("repeated_field", 422),
    "PayloadTooLarge": ("payload_too_large", 413),
    "AttachmentTooLarge": ("attachment_too_large", 413),
    "Unauthenticated": ("unauthenticated", 401),
    "Forbidden": ("forbidden", 403),
    "NotFound": ("not_found", 404),
    "Conflict": ("conflict", 409),
    "TransitionNotAllowed": ("invalid_transition", 409),
    "GuardFailed": ("guard_failed", 409),
    "VersionConflict": ("version_conflict", 409),
    "AlreadyExists": ("already_exists", 409),
    "NumberingConflict": ("numbering_conflict", 409),
    "StatusContradicted": ("status_contradicted", 409),
    "MessageIdReused": ("message_id_reused", 409),
    "RequestAwaiting": ("request_awaiting", 409),
    "DocumentReceivedBefore": ("duplicate_document", 409),
    "UnknownEvent": ("unknown_event", 422),
    "SignatureError": ("signature_invalid", 422),
    "SignatureMalformed": ("signature_malformed", 422),
    "WeakAlgorithm": ("weak_algorithm", 422),
    "ManifestMismatch": ("manifest_mismatch", 422),
    "PdfModified": ("pdf_modified", 422),
    "RevocationUnknown": ("revocation_unknown", 422),
    "CertificateProfileInvalid": ("certificate_profile_invalid", 422),
    "SigningTimeInvalid": ("signing_time_invalid", 422),
    "TimestampInvalid": ("timestamp_invalid", 422),
    "CertificateExpired": ("certificate_expired", 422),
    "CertificateNotYetValid": ("certificate_not_yet_valid", 422),
    "CertificateRevoked": ("certificate_revoked", 422),
    "ChainUntrusted": ("chain_untrusted", 422),
    "KeyUsageInvalid": ("key_usage_invalid", 422),
    "SignerMismatch": ("signer_mismatch", 422),
    "UnknownPeer": ("unknown_peer", 422),
    "PreconditionFailed": ("precondition_failed", 412),
    "PreconditionRequired": ("precondition_required", 428),
    "VerificationDeferred": ("verification_deferred", 503),
    "ServerBusy": ("server_busy", 503),
    "Unavailable": ("unavailable", 503),
    "ActionUnavailable": ("action_unavailable", 501),
    "DatabaseUnavailable": ("database_unavailable", 503),
    "DatabaseNotReady": ("database_not_migrated", 503),
    "ExchangeRefused": ("exchange_refused", 422),
    "MessageMalformed": ("message_malformed", 422),
    "FormatUnsupported": ("format_unsupported", 422),
    "PackageTampered": ("package_tampered", 422),
    "MessageMismatch": ("message_mismatch", 422),
    "OriginalUnknown": ("original_unknown", 422),
    "PackageTooLarge": ("package_too_large", 413),
    "AgencySignatureInvalid": ("agency_signature_invalid", 401),
    "PeerUnknown": ("peer_unknown", 401),
    "AgencyMismatch": ("agency_mismatch", 403),
    "Misaddressed": ("misaddressed", 403),
    "DocumentSignatureInvalid": ("document_signature_invalid", 422),
}

# Errors whose constructor takes arguments of its own, with an example of them.
SPECIAL_ARGS: dict[str, tuple[object, ...]] = {
    "TransitionNotAllowed": ("sign", "draft", ["submit", "approve"]),
    "UnknownEvent": ("explode", "draft", ["submit"]),
    "GuardFailed": ("send", "signed", ["not_duplicate"], {"not_duplicate": "sent before"}),
    "VersionConflict": (3, 4),
}


def error_classes() -> dict[str, type[CongvanError]]:
    """Every error class declared in the errors module (the tree lives there)."""
    return {
        name: cls
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, CongvanError) and cls.__module__ == errors.__name__
    }


def make(cls: type[CongvanError]) -> CongvanError:
    return cls(*SPECIAL_ARGS.get(cls.__name__, ()))  # type: ignore[arg-type]


def test_the_frozen_table_lists_every_error_class() -> None:
    assert set(error_classes()) == set(FROZEN)


def test_codes_and_statuses_match_the_frozen_table() -> None:
    actual = {name: (cls.code, cls.http_status) for name, cls in error_classes().items()}

    assert actual == FROZEN


def test_codes_are_unique() -> None:
    codes = [cls.code for cls in error_classes().values()]

    assert len(codes) == len(set(codes))


@pytest.mark.parametrize("name", sorted(FROZEN))
def test_each_error_has_a_real_http_error_status_and_a_docstring(name: str) -> None:
    cls = error_classes()[name]

    assert 400 <= HTTPStatus(cls.http_status) < 600
    assert re.fullmatch(r"[a-z][a-z_]*", cls.code)
    assert cls.__doc__ and cls.__doc__.strip()


def test_a_subclass_keeps_its_parents_status() -> None:
    for name, cls in error_classes().items():
        parent = cls.__mro__[1]
        if parent is not CongvanError and issubclass(parent, CongvanError):
            assert cls.http_status == parent.http_status, name


def test_the_drawing_in_the_module_docstring_matches_the_classes() -> None:
    drawn = {
        name: (code, int(status))
        for name, status, code in re.findall(r"(\w+) \((\d{3})\)\s+(\w+)", errors.__doc__ or "")
    }

    assert drawn == {name: row for name, row in FROZEN.items() if name != "CongvanError"}


@pytest.mark.parametrize("name", sorted(FROZEN))
def test_to_dict_has_the_shape_the_api_renders(name: str) -> None:
    error = make(error_classes()[name])

    rendered = error.to_dict()

    assert list(rendered) == ["code", "message", "details"]
    assert rendered["code"] == FROZEN[name][0]
    assert isinstance(rendered["message"], str) and rendered["message"]
    assert isinstance(rendered["details"], dict)
    assert str(error) == rendered["message"]
    assert json.loads(json.dumps(rendered)) == rendered


def test_the_default_message_is_the_docstring() -> None:
    error = NotFound(document_id="d-1")

    assert error.to_dict() == {
        "code": "not_found",
        "message": "No such resource.",
        "details": {"document_id": "d-1"},
    }


def test_a_given_message_replaces_the_docstring() -> None:
    assert NotFound("No such document.").message == "No such document."


def test_transition_not_allowed_carries_the_allowed_events_sorted() -> None:
    error = TransitionNotAllowed("sign", "draft", ["submit", "approve"])

    assert error.details == {"event": "sign", "state": "draft", "allowed": ["approve", "submit"]}
    assert "'sign'" in error.message and "'draft'" in error.message


def test_guard_failed_carries_the_failed_guards_and_reasons() -> None:
    error = GuardFailed("send", "signed", ["signature_valid"], {"signature_valid": "bad"})

    assert error.details == {
        "event": "send",
        "state": "signed",
        "failed": ["signature_valid"],
        "reasons": {"signature_valid": "bad"},
    }
    assert "signature_valid" in error.message


def test_version_conflict_carries_both_versions() -> None:
    error = VersionConflict(3, 4)

    assert error.details == {"expected_version": 3, "current_version": 4}


def test_every_refusal_of_a_peer_carries_a_reason_it_can_record() -> None:
    refusals = {
        name: cls
        for name, cls in error_classes().items()
        if issubclass(cls, errors.ExchangeRefused)
    }

    assert len(refusals) == 16  # the base and its fifteen refusals
    for name, cls in refusals.items():
        default, given = make(cls), cls("Refused.", reason="part_digest", part="files/a.pdf")
        assert (default.reason, default.details["reason"]) == (cls.code, cls.code), name
        assert given.reason == "part_digest"
        assert given.to_dict()["details"] == {"reason": "part_digest", "part": "files/a.pdf"}
        assert given.http_status == FROZEN[name][1]


def test_what_a_caller_sent_comes_back_bounded_in_message_and_details() -> None:
    # An id or a name of any length is echoed in an answer: never longer than a bound
    sent = "y" * 20_000
    error = errors.NotFound(
        f"No such document {sent}.", document_id=sent, names=[sent, "ok"], nested={"a": sent}
    )

    assert len(error.message) == errors.MESSAGE_CHARS and error.message.endswith("…")
    assert error.details["document_id"] == sent[: errors.DETAIL_CHARS - 1] + "…"
    assert [len(n) for n in error.details["names"]] == [errors.DETAIL_CHARS, 2]
    assert len(error.details["nested"]["a"]) == errors.DETAIL_CHARS
    # What is short stays as it came, of whatever kind
    short = errors.InvalidInput("Bad.", field="x", count=3, flags=(True, None))
    assert short.to_dict() == {
        "code": "invalid_input",
        "message": "Bad.",
        "details": {"field": "x", "count": 3, "flags": (True, None)},
    }
