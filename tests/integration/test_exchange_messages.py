"""Receipts and status messages: the receiver's signed answers, and every way one is refused."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import hashes

from congvan.actions.exchange.envelope import Sealed, iso, seal
from congvan.actions.exchange.receipts import Receipt, make_receipt, verify_receipt
from congvan.actions.exchange.status import make_status, verify_status
from congvan.actions.signing import keywrap
from congvan.actions.signing.cms import sign_manifest
from congvan.states.errors import (
    AgencyMismatch,
    AgencySignatureInvalid,
    ExchangeRefused,
    FormatUnsupported,
    MessageMalformed,
    MessageMismatch,
    Misaddressed,
    VerificationDeferred,
)
from tests.exchange_world import NOW, A, B, C, Person, World, build_world

PACKAGE_SHA = hashlib.sha256(b"the package").hexdigest()
MANIFEST_SHA = hashlib.sha256(b"the manifest").hexdigest()
RECEIVED_AT = NOW - timedelta(minutes=1)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keywrap, "KDF_ITERATIONS", 1_000)
        yield build_world()


def receipt_by(world: World, receiver: str = B, **changes: Any) -> Sealed:
    fields: dict[str, Any] = {
        "message_id": "dispatch-7f3a",
        "package_sha256": PACKAGE_SHA,
        "manifest_sha256": MANIFEST_SHA,
        "sender": A,
        "received_at": RECEIVED_AT,
        "received_document_id": "in-2021-0412",
        **changes,
    }
    return make_receipt(**fields, agency=world.agencies[receiver])


def check_receipt(world: World, sealed: Sealed, **expected: Any) -> Receipt:
    wanted: dict[str, Any] = {
        "expected_message_id": "dispatch-7f3a",
        "expected_package_sha256": PACKAGE_SHA,
        "expected_manifest_sha256": MANIFEST_SHA,
        "expected_receiver": B,
        "expected_sender": A,
        **expected,
    }
    return verify_receipt(sealed.body, sealed.cms, world.trust, now=NOW, **wanted)


def receipt_refusal(world: World, sealed: Sealed, **expected: Any) -> ExchangeRefused:
    with pytest.raises(ExchangeRefused) as caught:
        check_receipt(world, sealed, **expected)
    return caught.value


def signed_by_person(body: bytes, person: Person) -> Sealed:
    cms = sign_manifest(body, key=person.key, cert=person.cert, chain=[], signing_time=NOW)
    return Sealed(body, cms)


# -- receipts ------------------------------------------------------------------------------


def test_a_receipt_made_by_the_receiver_verifies_at_the_sender(world: World) -> None:
    sealed = receipt_by(world)

    receipt = check_receipt(world, sealed)

    assert receipt == Receipt(
        message_id="dispatch-7f3a",
        package_sha256=PACKAGE_SHA,
        manifest_sha256=MANIFEST_SHA,
        sender=A,
        recipient=B,
        status="01",
        received_at=RECEIVED_AT,
        received_document_id="in-2021-0412",
    )
    assert sealed.body == rfc8785.dumps(json.loads(sealed.body))
    assert json.loads(sealed.body)["format"] == "congvan-receipt/1"


def test_a_receipt_changed_after_signing_is_refused(world: World) -> None:
    sealed = receipt_by(world)
    content = json.loads(sealed.body)
    content["received_document_id"] = "in-2021-9999"

    refused = receipt_refusal(world, Sealed(rfc8785.dumps(content), sealed.cms))

    assert (type(refused), refused.http_status) == (AgencySignatureInvalid, 401)
    assert refused.reason == "manifest_mismatch"  # the signed digest is not the body's


def test_a_receipt_signed_with_a_persons_certificate_is_refused(world: World) -> None:
    sealed = signed_by_person(receipt_by(world).body, world.person_of_a)

    refused = receipt_refusal(world, sealed)

    assert (type(refused), refused.reason) == (
        AgencySignatureInvalid,
        "certificate_profile_invalid",
    )


def test_a_receipt_signed_by_another_agency_than_it_names_is_refused(world: World) -> None:
    body = receipt_by(world).body
    forged = Sealed(body, world_sign(world, body, C))

    refused = receipt_refusal(world, forged)

    assert (type(refused), refused.reason, refused.http_status) == (
        AgencyMismatch,
        "certificate",
        403,
    )


def test_a_receipt_from_another_agency_than_the_one_sent_to_is_refused(world: World) -> None:
    refused = receipt_refusal(world, receipt_by(world, receiver=C))

    assert (type(refused), refused.reason) == (AgencyMismatch, "receiver")


@pytest.mark.parametrize(
    ("expected", "reason"),
    [
        ({"expected_message_id": "dispatch-other"}, "message_id"),
        ({"expected_package_sha256": "0" * 64}, "package_digest"),
        ({"expected_manifest_sha256": "0" * 64}, "manifest_digest"),
        ({"expected_sender": C}, "sender"),  # B signed it, about a package from another
    ],
)
def test_a_receipt_for_another_package_is_refused(
    world: World, expected: dict[str, str], reason: str
) -> None:
    refused = receipt_refusal(world, receipt_by(world), **expected)

    assert (type(refused), refused.reason, refused.http_status) == (MessageMismatch, reason, 422)


def test_a_receipt_from_a_root_not_pinned_is_refused(world: World) -> None:
    content = json.loads(receipt_by(world).body)
    content["recipient"] = A
    body = rfc8785.dumps(content)
    unpinned = world.unpinned_a
    sealed = signed_by_person(body, Person(unpinned.key, unpinned.cert))

    refused = receipt_refusal(world, sealed, expected_receiver=A)

    assert (type(refused), refused.reason) == (AgencySignatureInvalid, "chain_untrusted")


def test_a_receipt_with_a_status_other_than_01_is_refused(world: World) -> None:
    content = json.loads(receipt_by(world).body)
    content["status"] = "03"
    body = rfc8785.dumps(content)

    with pytest.raises(MessageMalformed) as caught:
        check_receipt(world, Sealed(body, receipt_by(world).cms))

    assert caught.value.reason == "member"


def test_a_receipt_this_module_would_refuse_is_never_made(world: World) -> None:
    with pytest.raises(ValueError, match="package_sha256"):
        receipt_by(world, package_sha256="not a digest")


# -- status messages -------------------------------------------------------------------------


def status_by(world: World, code: str = "03", sender: str = B, **changes: Any) -> Sealed:
    fields: dict[str, Any] = {
        "message_id": "dispatch-7f3a",
        "document_id": "doc-1",
        "to": A,
        "code": code,
        "description": "Đã vào sổ văn bản đến",
        "at": NOW - timedelta(minutes=1),
        "staff": "Nguyễn Thị Lan",
        **changes,
    }
    return make_status(**fields, agency=world.agencies[sender])


def status_refusal(world: World, sealed: Sealed, **options: Any) -> ExchangeRefused:
    with pytest.raises(ExchangeRefused) as caught:
        options.setdefault("expected_recipient", A)
        verify_status(sealed.body, sealed.cms, world.trust, now=NOW, **options)
    return caught.value


@pytest.mark.parametrize("code", ["02", "03", "04", "05", "06"])
def test_each_status_code_made_by_the_receiver_verifies_at_the_sender(
    world: World, code: str
) -> None:
    reason = "Gửi nhầm nơi nhận" if code == "02" else None
    sealed = status_by(world, code, reason=reason)

    status = verify_status(
        sealed.body,
        sealed.cms,
        world.trust,
        expected_recipient=A,
        now=NOW,
        expected_from=B,
        expected_message_id="dispatch-7f3a",
    )

    assert (status.code, status.from_agency, status.to_agency) == (code, B, A)
    assert (status.reason, status.staff) == (reason, "Nguyễn Thị Lan")
    assert json.loads(sealed.body)["format"] == "congvan-status/1"


def test_a_refusal_without_a_reason_is_never_made(world: World) -> None:
    with pytest.raises(ValueError, match="reason"):
        status_by(world, "02")


@pytest.mark.parametrize(
    ("code", "error", "reason"),
    [
        ("01", MessageMalformed, "status_code"),
        ("07", MessageMalformed, "status_code"),
        ("13", FormatUnsupported, "status_code_reserved"),
    ],
)
def test_a_status_code_outside_02_to_06_is_refused(
    world: World, code: str, error: type[ExchangeRefused], reason: str
) -> None:
    content = json.loads(status_by(world).body)
    content["code"] = code
    body = rfc8785.dumps(content)

    refused = status_refusal(world, Sealed(body, world_sign(world, body, B)))

    assert (type(refused), refused.reason) == (error, reason)


def test_a_status_02_without_a_reason_is_refused(world: World) -> None:
    content = json.loads(status_by(world).body)
    content["code"] = "02"
    body = rfc8785.dumps(content)

    refused = status_refusal(world, Sealed(body, world_sign(world, body, B)))

    assert (type(refused), refused.reason, refused.details["member"]) == (
        MessageMalformed,
        "member",
        "reason",
    )


def test_a_status_changed_after_signing_is_refused(world: World) -> None:
    sealed = status_by(world)
    content = json.loads(sealed.body)
    content["code"] = "06"

    refused = status_refusal(world, Sealed(rfc8785.dumps(content), sealed.cms))

    assert (type(refused), refused.reason) == (AgencySignatureInvalid, "manifest_mismatch")
    # Said of the message it is, not of a document's manifest
    assert "not this message" in refused.message and "manifest" not in refused.message


def test_a_status_signed_with_a_persons_certificate_is_refused(world: World) -> None:
    refused = status_refusal(world, signed_by_person(status_by(world).body, world.person_of_a))

    assert refused.reason == "certificate_profile_invalid"


def test_a_status_whose_from_is_not_the_signing_agency_is_refused(world: World) -> None:
    body = status_by(world).body
    forged = Sealed(body, world_sign(world, body, C))

    refused = status_refusal(world, forged)

    assert (type(refused), refused.reason) == (AgencyMismatch, "certificate")


def test_a_status_for_another_agency_is_refused(world: World) -> None:
    refused = status_refusal(world, status_by(world, to=C))

    assert (type(refused), refused.reason, refused.http_status) == (Misaddressed, "recipient", 403)


def test_a_status_from_another_agency_than_the_one_sent_to_is_refused(world: World) -> None:
    refused = status_refusal(world, status_by(world, sender=C), expected_from=B)

    assert (type(refused), refused.reason) == (AgencyMismatch, "sender")


def test_a_status_about_another_package_is_refused(world: World) -> None:
    refused = status_refusal(world, status_by(world), expected_message_id="dispatch-other")

    assert (type(refused), refused.reason) == (MessageMismatch, "message_id")


def test_a_status_dated_before_the_package_it_answers_was_sent_is_refused(world: World) -> None:
    # Its "at" an hour before the package left, past any clock skew
    sealed = status_by(world, at=NOW - timedelta(hours=1))

    refused = status_refusal(world, sealed, sent_at=NOW - timedelta(minutes=10))

    assert (type(refused), refused.reason) == (MessageMismatch, "moment")
    # dated after it left, it is taken
    status = verify_status(
        sealed.body, sealed.cms, world.trust, expected_recipient=A, now=NOW,
        sent_at=NOW - timedelta(hours=2),
    )  # fmt: skip
    assert status.code == "03"


def world_sign(world: World, body: bytes, agency: str) -> bytes:
    """The agency's signature over a body its own module would not have made."""
    key = world.agencies[agency]
    return sign_manifest(body, key=key.key, cert=key.cert, chain=list(key.chain), signing_time=NOW)


def status_03_by_b(world: World) -> Sealed:
    """B's status 03 about A's package m-1, signed at NOW."""
    return make_status(
        message_id="m-1",
        document_id="doc-1",
        to=A,
        code="03",
        description="Đã vào sổ",
        at=NOW,
        agency=world.agencies[B],
    )


def test_a_status_is_taken_only_under_a_certificate_listed_for_its_agency(world: World) -> None:
    # A status B signed with its organisational key, judged with and without B's listing
    sealed = status_03_by_b(world)
    fingerprint = world.agencies[B].cert.fingerprint(hashes.SHA256()).hex()
    listings: list[dict[str, frozenset[str]]] = [
        {},
        {B: frozenset()},
        {A: frozenset([fingerprint])},
    ]

    for listed in listings:
        trust = dataclasses.replace(world.trust, listed=listed)
        with pytest.raises(VerificationDeferred) as caught:
            verify_status(sealed.body, sealed.cms, trust, expected_recipient=A, now=NOW)
        assert (caught.value.details["reason"], caught.value.details["agency_id"]) == (
            "certificate_not_listed",
            B,
        )

    trust = dataclasses.replace(world.trust, listed={B: frozenset([fingerprint])})
    status = verify_status(sealed.body, sealed.cms, trust, expected_recipient=A, now=NOW)
    assert (status.from_agency, status.code) == (B, "03")


def test_offline_a_status_holds_only_under_the_root_bound_to_its_agency(world: World) -> None:
    # A status B signed under the pinned root, judged with no directory (as an evidence
    # bundle is), by whoever bound roots to agencies
    sealed = status_03_by_b(world)
    root = world.root.certificate.fingerprint(hashes.SHA256()).hex()

    def judged(bound: dict[str, frozenset[str]]) -> Any:
        trust = dataclasses.replace(world.trust, bound=bound)
        return verify_status(sealed.body, sealed.cms, trust, expected_recipient=A, now=NOW)

    # B's root bound to B, or only A's bound: it holds
    assert judged({B: frozenset([root])}).code == "03"
    assert judged({A: frozenset(["another root"])}).code == "03"
    # Another party's root bound to B (the one that may speak for B): it does not
    with pytest.raises(AgencySignatureInvalid) as caught:
        judged({B: frozenset(["another root"])})
    assert caught.value.details["reason"] == "chain_untrusted"


def _resealed(world: World, sealed: Sealed, member: str, moment: datetime | str) -> Sealed:
    """``sealed``'s body with ``member`` set to ``moment`` (as ``iso`` writes it, or the
    text given), signed by B at NOW."""
    content = json.loads(sealed.body)
    content[member] = moment if isinstance(moment, str) else iso(moment)
    return seal(content, world.agencies[B], NOW)


@pytest.mark.parametrize(
    ("moment", "sent_at"),
    [
        (NOW + timedelta(hours=1), None),  # after it was signed
        (datetime(2100, 12, 31, tzinfo=UTC), None),
        (NOW - timedelta(days=730), NOW - timedelta(minutes=10)),  # before the package left
        (datetime(1901, 1, 1, tzinfo=UTC), NOW - timedelta(minutes=10)),
    ],
)
def test_a_receipt_claiming_an_impossible_moment_is_refused(
    world: World, moment: datetime, sent_at: datetime | None
) -> None:
    sealed = _resealed(world, receipt_by(world), "received_at", moment)

    refused = receipt_refusal(world, sealed, sent_at=sent_at)

    assert (type(refused), refused.reason) == (MessageMismatch, "moment")
    assert refused.details["member"] == "received_at"


def test_a_receipt_received_within_the_clock_skew_of_its_signing_is_taken(world: World) -> None:
    for moment in (NOW + timedelta(minutes=4), NOW - timedelta(minutes=9)):
        sealed = _resealed(world, receipt_by(world), "received_at", moment)
        assert (
            check_receipt(world, sealed, sent_at=NOW - timedelta(minutes=10)).received_at == moment
        )


@pytest.mark.parametrize("moment", [NOW + timedelta(hours=2), datetime(2100, 1, 1, tzinfo=UTC)])
def test_a_status_claiming_a_moment_after_its_signing_is_refused(
    world: World, moment: datetime
) -> None:
    status = status_03_by_b(world)
    sealed = _resealed(world, status, "at", moment)

    with pytest.raises(MessageMismatch) as caught:
        verify_status(sealed.body, sealed.cms, world.trust, expected_recipient=A, now=NOW)

    assert (caught.value.reason, caught.value.details["member"]) == ("moment", "at")


@pytest.mark.parametrize("member", ["received_at", "at"])
def test_a_moment_ahead_of_the_clock_takes_the_clock_skew_once(world: World, member: str) -> None:
    # Given a receipt and a status signed 4 minutes ahead of the verifier's clock (within
    # the skew), each claiming a moment 5 minutes after that
    made = receipt_by(world) if member == "received_at" else status_03_by_b(world)
    content = json.loads(made.body)
    content[member] = iso(NOW + timedelta(minutes=9))
    sealed = seal(content, world.agencies[B], NOW + timedelta(minutes=4))

    # Then each is put off, not refused: its moment lies past the skew of the clock it is
    # taken by (one of the two clocks is wrong; its sender tries again)
    with pytest.raises(VerificationDeferred) as caught:
        if member == "received_at":
            check_receipt(world, sealed)
        else:
            verify_status(sealed.body, sealed.cms, world.trust, expected_recipient=A, now=NOW)
    assert (caught.value.http_status, caught.value.details["reason"]) == (503, "clock_ahead")
    assert (caught.value.details["member"], caught.value.details["now"]) == (member, iso(NOW))

    # and at 4 minutes ahead of the clock, within its skew, it is taken
    content[member] = iso(NOW + timedelta(minutes=4))
    sealed = seal(content, world.agencies[B], NOW + timedelta(minutes=4))
    if member == "received_at":
        assert check_receipt(world, sealed).received_at == NOW + timedelta(minutes=4)
    else:
        assert verify_status(sealed.body, sealed.cms, world.trust, expected_recipient=A, now=NOW)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(9999, 12, 31, tzinfo=UTC),
        datetime(2101, 1, 1, tzinfo=UTC),
        datetime(1900, 12, 31, 16, 59, tzinfo=UTC),  # 1900-12-31 23:59 in Vietnam
        datetime(1, 1, 2, tzinfo=UTC),
    ],
)
def test_a_moment_outside_the_years_reckoned_with_is_malformed_wherever_it_is(
    world: World, moment: datetime
) -> None:
    # Given a receipt and a status signed by B, each claiming a moment outside 1901-2100
    receipt = _resealed(world, receipt_by(world), "received_at", moment)
    status = _resealed(world, status_03_by_b(world), "at", moment)

    # Then each is refused as malformed, naming the member, before any moment is compared
    refused = receipt_refusal(world, receipt, sent_at=NOW - timedelta(minutes=10))
    assert (type(refused), refused.details["member"]) == (MessageMalformed, "received_at")
    with pytest.raises(MessageMalformed) as caught:
        verify_status(status.body, status.cms, world.trust, expected_recipient=A, now=NOW)
    assert caught.value.details["member"] == "at"


_AT = NOW - timedelta(minutes=1)


@pytest.mark.parametrize(
    "written",
    [
        _AT.astimezone(timezone(timedelta(hours=7))).isoformat(),  # the same moment in Vietnam
        iso(_AT).replace("+00:00", "Z"),
        iso(_AT).replace("T", " "),
        _AT.strftime("%Y%m%dT%H%M%SZ"),  # the compact form
        _AT.strftime("%G-W%V-%uT%H:%M:%S+00:00"),  # a week date
        iso(_AT).replace("+00:00", ".000+00:00"),
        iso(_AT).replace("+00:00", ",5+00:00"),
        iso(_AT).replace("+00:00", "+00"),
    ],
    # Named by their form, not their text: the moment is the run's (every test process
    # collects the same ids)
    ids=["offset", "z", "space", "compact", "week_date", "fraction", "comma", "short_offset"],
)
def test_a_moment_written_otherwise_than_the_formats_write_it_is_malformed(
    world: World, written: str
) -> None:
    # Given a receipt and a status signed by B, each with its moment written another way
    # that a reader of ISO 8601 takes for the same moment (the bytes signed are canonical:
    # one moment is written one way)
    assert datetime.fromisoformat(written) == _AT.replace(microsecond=written.count(",5") * 500_000)
    receipt = _resealed(world, receipt_by(world), "received_at", written)
    status = _resealed(world, status_03_by_b(world), "at", written)

    # Then each is refused as malformed, naming the member
    refused = receipt_refusal(world, receipt, sent_at=NOW - timedelta(minutes=10))
    assert (type(refused), refused.details["member"]) == (MessageMalformed, "received_at")
    with pytest.raises(MessageMalformed) as caught:
        verify_status(status.body, status.cms, world.trust, expected_recipient=A, now=NOW)
    assert caught.value.details["member"] == "at"
    assert "a moment in UTC to the second" in caught.value.message
