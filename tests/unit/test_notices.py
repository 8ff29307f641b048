"""What a notification says and how a webhook post is signed: pure functions, no I/O."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from congvan.actions.messengers import Smtp, compose
from congvan.actions.notices import (
    ID_HEADER,
    KIND_WORDS,
    REPLAY_WINDOW,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    email_subject,
    email_text,
    render,
    sign,
    verify,
    webhook_body,
)
from congvan.states.errors import InvalidInput
from congvan.states.vocabulary import ESCALATION_KINDS

AT = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
SECRET = "s3cr3t-" + "x" * 32
BASE = "https://congvan.hue.gov.vn/"


def event(**overrides: Any) -> dict[str, Any]:
    return {
        "escalation_id": "0192f000-0000-7000-8000-000000000001",
        "level": 1,
        "severity": "khẩn",
        "document_id": "0192f000-0000-7000-8000-0000000000d0",
        "number_symbol": "1227/UBND-TĐKT",
        "subject": "Về việc   thực hiện\tgửi, nhận văn bản điện tử",
        "recipient_id": "000.00.11.H57",
        "recipient_name": "Sở Nội vụ",
        "what_to_do": "Liên hệ Sở Nội vụ để tiếp nhận văn bản.",
        "link": "/v1/documents/0192f000-0000-7000-8000-0000000000d0",
        **overrides,
    }


# -- signing -------------------------------------------------------------------------------


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"id":"n1"}'

    signature = sign(SECRET, 1_767_605_400, body)

    expected = hmac.new(SECRET.encode(), b'1767605400.{"id":"n1"}', hashlib.sha256).hexdigest()
    assert "sha256=" + expected == signature


def headers_for(body: bytes, at: datetime, secret: str = SECRET) -> dict[str, str]:
    stamp = int(at.timestamp())
    return {TIMESTAMP_HEADER: str(stamp), SIGNATURE_HEADER: sign(secret, stamp, body)}


def test_a_receiver_accepts_what_was_signed_within_the_window() -> None:
    body = b"{}"
    headers = headers_for(body, AT)

    assert verify(SECRET, headers, body, AT + REPLAY_WINDOW).valid
    assert verify(SECRET, headers, body, AT - REPLAY_WINDOW).valid


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"body": b'{"id":"n2"}'}, "the signature does not match"),
        ({"secret": "another-secret-" + "y" * 32}, "the signature does not match"),
        ({"now": AT + REPLAY_WINDOW + timedelta(seconds=1)}, "outside the replay window"),
        ({"now": AT - REPLAY_WINDOW - timedelta(seconds=1)}, "outside the replay window"),
        ({"headers": {TIMESTAMP_HEADER: "soon"}}, "not a whole number"),
        ({"headers": {}}, "missing signature or timestamp"),
    ],
)
def test_a_receiver_refuses_a_changed_body_a_wrong_secret_or_an_old_post(
    change: dict[str, Any], reason: str
) -> None:
    body = b'{"id":"n1"}'
    headers = headers_for(body, AT)
    if "headers" in change:
        headers = {**change["headers"], SIGNATURE_HEADER: headers[SIGNATURE_HEADER]}
        if not change["headers"]:
            headers = {}

    verdict = verify(
        change.get("secret", SECRET),
        headers,
        change.get("body", body),
        change.get("now", AT),
    )

    assert not verdict.valid
    assert reason in verdict.reason


def test_a_timestamp_moved_with_the_old_signature_is_refused() -> None:
    body = b"{}"
    headers = headers_for(body, AT - timedelta(hours=1))
    headers[TIMESTAMP_HEADER] = str(int(AT.timestamp()))  # replayed with a fresh stamp

    assert not verify(SECRET, headers, body, AT).valid


# -- rendering -----------------------------------------------------------------------------


def test_the_content_keeps_what_was_true_when_queued() -> None:
    content = render("not_acknowledged", event(), AT)

    assert {
        "kind": "not_acknowledged",
        "kind_words": "Đơn vị nhận chưa tiếp nhận văn bản",
        "level": 1,
        "severity": "khẩn",
        "escalation_id": "0192f000-0000-7000-8000-000000000001",
        "document_id": "0192f000-0000-7000-8000-0000000000d0",
        "number_symbol": "1227/UBND-TĐKT",
        # runs of white space are one space: a subject is one line in a message
        "subject": "Về việc thực hiện gửi, nhận văn bản điện tử",
        "recipient_id": "000.00.11.H57",
        "recipient_name": "Sở Nội vụ",
        "what_to_do": "Liên hệ Sở Nội vụ để tiếp nhận văn bản.",
        "link": "/v1/documents/0192f000-0000-7000-8000-0000000000d0",
        "at": "2026-01-05T09:30:00+00:00",
    } == content


def test_the_email_names_the_document_the_recipient_the_kind_and_what_to_do() -> None:
    content = render("not_acknowledged", event(), AT)

    text = email_text(content, BASE)

    assert text.startswith("Đơn vị nhận chưa tiếp nhận văn bản (mức 1, khẩn).\n")
    for line in (
        "Số, ký hiệu văn bản: 1227/UBND-TĐKT",
        "Trích yếu: Về việc thực hiện gửi, nhận văn bản điện tử",
        "Đơn vị nhận: Sở Nội vụ (000.00.11.H57)",
        "Việc cần làm: Liên hệ Sở Nội vụ để tiếp nhận văn bản.",
        "Xem chi tiết: https://congvan.hue.gov.vn/v1/documents/0192f000-0000-7000-8000-0000000000d0",
        "Thời điểm: 16:30 ngày 05/01/2026 (giờ Việt Nam)",  # made at 09:30 UTC
    ):
        assert line in text.splitlines()
    assert "[congvan] Đơn vị nhận chưa tiếp nhận văn bản: 1227/UBND-TĐKT" == email_subject(content)


@pytest.mark.parametrize(
    ("severity", "words"),
    [("normal", "bình thường"), ("high", "cao"), ("critical", "nghiêm trọng")],
)
def test_the_email_says_an_escalations_severity_in_vietnamese(severity: str, words: str) -> None:
    text = email_text(render("not_acknowledged", {**event(), "severity": severity}, AT), BASE)

    assert text.startswith(f"Đơn vị nhận chưa tiếp nhận văn bản (mức 1, {words}).\n")


def test_a_kind_without_a_document_says_only_what_it_has() -> None:
    content = render(
        "certificate_expiring",
        {"escalation_id": "e1", "level": 2, "severity": "thường", "what_to_do": "Gia hạn."},
        AT,
    )

    text = email_text(content, BASE)

    assert "Trích yếu" not in text and "Đơn vị nhận" not in text and "Xem chi tiết" not in text
    assert "[congvan] Chứng thư số sắp hết hạn" == email_subject(content)


def test_number_and_symbol_may_come_apart() -> None:
    content = render("not_delivered", event(number_symbol=None, number=15, symbol="SNV-VP"), AT)

    assert "15/SNV-VP" == content["number_symbol"]


@pytest.mark.parametrize(
    ("fields", "written"),
    [
        ({"number": 5, "symbol": "UBND-TĐKT"}, "05/UBND-TĐKT"),
        ({"number": 1227, "symbol": "UBND-TĐKT"}, "1227/UBND-TĐKT"),
        (
            {"number": 5, "symbol": "QĐ-UBND", "legal_normative": True, "issued_on": "2024-03-01"},
            "05/2024/QĐ-UBND",
        ),
        ({"number": None, "symbol": "UBND-TĐKT"}, "UBND-TĐKT"),
    ],
)
def test_number_and_symbol_are_written_as_on_the_document(
    fields: dict[str, Any], written: str
) -> None:
    # Given an event carrying the document's number and symbol apart
    about = event(number_symbol=None, **fields)

    # When its notification is rendered
    content = render("not_delivered", about, AT)

    # Then số, ký hiệu reads as the document writes it: a leading zero below 10, and a
    # legal normative document's year between number and symbol
    assert written == content["number_symbol"]
    assert f"[congvan] Văn bản chưa đến đơn vị nhận: {written}" == email_subject(content)


def test_every_kind_has_its_words() -> None:
    assert set(ESCALATION_KINDS) == set(KIND_WORDS)
    assert all(render(kind, event(), AT)["kind_words"] for kind in ESCALATION_KINDS)


@pytest.mark.parametrize(
    ("kind", "overrides", "field"),
    [
        ("late", {}, "kind"),
        ("not_delivered", {"what_to_do": ""}, "event"),
        ("not_delivered", {"escalation_id": None}, "event"),
        ("not_delivered", {"level": 0}, "level"),
        ("not_delivered", {"level": "1"}, "level"),
        ("not_delivered", {"link": "https://elsewhere.example/x"}, "link"),
    ],
)
def test_a_bad_event_is_refused_with_the_field_named(
    kind: str, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        render(kind, event(**overrides), AT)

    assert field == caught.value.details["field"]


def test_long_texts_are_cut_to_what_the_tables_hold() -> None:
    content = render("not_delivered", event(subject="Về " * 600, recipient_name="S" * 500), AT)

    assert (1000, 300) == (len(content["subject"]), len(content["recipient_name"]))


def test_the_webhook_body_is_the_same_bytes_on_every_attempt() -> None:
    content = render("delivery_failed", event(), AT)

    first = webhook_body("n1", "000.00.00.H57", content, BASE)

    assert first == webhook_body("n1", "000.00.00.H57", content, BASE)
    body = json.loads(first)
    assert ("n1", "delivery_failed", "Gửi văn bản không thành công") == (
        body["id"],
        body["kind"],
        body["kind_words"],
    )
    assert body["url"].startswith("https://congvan.hue.gov.vn/v1/documents/")
    assert "1227/UBND-TĐKT" == body["event"]["number_symbol"]


def test_the_email_headers_travel_encoded_and_the_text_in_utf8() -> None:
    content = render("refused_by_recipient", event(), AT)
    smtp = Smtp(host="127.0.0.1", port=25, sender="congvan@ubnd.hue.gov.vn", timeout=5)

    message = compose(
        smtp,
        "van.thu@snv.hue.gov.vn",
        email_subject(content),
        email_text(content, BASE),
        notice_id="n1",
    )

    raw = message.as_bytes(policy=email.policy.SMTP)
    assert raw.isascii()  # seven bits on the wire: RFC 2047 headers, quoted-printable text
    assert b"Subject: [congvan] =?utf-8?" in raw
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert email_subject(content) == parsed["Subject"]
    assert ("<n1@ubnd.hue.gov.vn>", "n1") == (parsed["Message-ID"], parsed[ID_HEADER])
    text = parsed.get_content()  # type: ignore[attr-defined]
    assert email_text(content, BASE) == text.replace("\r\n", "\n")


@pytest.mark.parametrize("field", ["symbol", "subject"])
def test_an_encoded_word_typed_into_a_document_writes_no_header(field: str) -> None:
    # Given a symbol (or a trích yếu) holding an RFC 2047 encoded word with CR LF in it
    typed = "=?utf-8?q?UBND=0D=0ABcc:_a@evil.example=0D=0AReply-To:_a@evil.example?="
    given = (
        {"number_symbol": f"99/{typed}"}
        if field == "symbol"
        else {"number_symbol": None, "subject": typed}
    )
    content = render("not_delivered", event(**given), AT)
    smtp = Smtp(host="127.0.0.1", port=25, sender="congvan@ubnd.hue.gov.vn", timeout=5)

    message = compose(smtp, "van.thu@snv.hue.gov.vn", email_subject(content), "x", notice_id="n1")

    # Then the e-mail has the headers congvan wrote and no other: the text stays text
    raw = message.as_bytes(policy=email.policy.SMTP)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    written = {"From", "To", "Subject", "Date", "Message-ID", ID_HEADER, "MIME-Version"}
    assert set(parsed.keys()) == written | {"Content-Type", "Content-Transfer-Encoding"}
    assert "\n" not in parsed["Subject"] and "= ?utf-8?q?UBND=0D=0ABcc:" in parsed["Subject"]


def test_the_smtp_password_is_never_in_its_repr() -> None:
    smtp = Smtp("mail", 587, "a@b.vn", 5, starttls=True, username="u", password="pw-secret")

    assert "pw-secret" not in repr(smtp)


@pytest.mark.parametrize("signature", ["sha256=é", "sha256=\udcff", "ü" * 64])
def test_a_forged_signature_of_any_characters_is_refused_not_raised(signature: str) -> None:
    body = b"{}"
    headers = {**headers_for(body, AT), SIGNATURE_HEADER: signature}
    verdict = verify(SECRET, headers, body, AT)
    assert not verdict.valid and "does not match" in verdict.reason


@pytest.mark.parametrize(
    "stamp",
    [
        "+1796123581",
        "1_796_123_581",
        "١٧٩٦١٢٣٥٨١",
        " 1796123581",
        # more digits than int() converts (anyone may send them, no secret needed)
        "9" * 5000,
        "1" * 13,
    ],
)
def test_a_timestamp_is_ascii_digits_only(stamp: str) -> None:
    body = b"{}"
    headers = {**headers_for(body, AT), TIMESTAMP_HEADER: stamp}
    assert "not a whole number" in verify(SECRET, headers, body, AT).reason


def test_a_timestamp_is_the_text_that_was_signed_not_another_writing_of_it() -> None:
    # A leading zero writes the same number; the receiver's check is of the text signed
    body = b"{}"
    signed = headers_for(body, AT)
    headers = {**signed, TIMESTAMP_HEADER: "0" + signed[TIMESTAMP_HEADER]}
    assert "not a whole number" in verify(SECRET, headers, body, AT).reason
    assert verify(SECRET, signed, body, AT).valid
