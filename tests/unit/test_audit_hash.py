"""Audit entry hashing: deterministic, sensitive to every field, and timezone-proof."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from congvan.storage.audit import GENESIS, digest, entry_hash, make_entry, timestamp
from congvan.storage.canonical import canonical_bytes, canonical_json

AT = datetime(2026, 1, 5, 8, 30, 15, 123456, tzinfo=UTC)
ICT = timezone(timedelta(hours=7))  # Vietnam's clock

FIELDS: dict[str, Any] = {
    "prev_hash": GENESIS,
    "document_id": "doc-1",
    "version": 2,
    "actor": "clerk@so-noi-vu",
    "event": "submit",
    "from_state": "draft",
    "to_state": "draft",
    "at": AT,
    "payload_digest": digest("{}"),
}

CHANGED: dict[str, Any] = {
    "prev_hash": "f" * 64,
    "document_id": "doc-2",
    "version": 3,
    "actor": "reviewer@so-noi-vu",
    "event": "approve",
    "from_state": "reviewed",
    "to_state": "reviewed",
    "at": AT + timedelta(microseconds=1),
    "payload_digest": digest('{"a":1}'),
}

PAYLOAD = {"reason": "Sai thể thức văn bản", "changed": ["subject"], "n": 1}


def entry(**overrides: Any) -> Any:
    fields = {k: v for k, v in FIELDS.items() if k != "payload_digest"}
    return make_entry(**{**fields, "payload": PAYLOAD, **overrides})


# -- canonical JSON ------------------------------------------------------------------------


def test_canonical_json_sorts_keys_drops_spaces_and_keeps_unicode() -> None:
    assert canonical_json({"b": 1, "a": [1, 2], "c": "Huế"}) == '{"a":[1,2],"b":1,"c":"Huế"}'


def test_canonical_json_ignores_insertion_order() -> None:
    assert canonical_json({"x": {"q": 1, "p": 2}, "a": 0}) == canonical_json(
        {"a": 0, "x": {"p": 2, "q": 1}}
    )


def test_canonical_json_refuses_what_json_cannot_carry() -> None:
    with pytest.raises(TypeError, match="not canonical JSON"):
        canonical_json({"at": AT})
    with pytest.raises(TypeError, match="not canonical JSON"):
        canonical_json({"n": 2**60})  # beyond what every JSON reader keeps exactly


def legacy_canonical_json(value: Any) -> str:
    """How entries were hashed before RFC 8785 was adopted for everything hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# What an entry's hash covers: hashes, ids, names, states, times (text) and a version.
entry_material = st.lists(
    st.text() | st.integers(min_value=0, max_value=2**53 - 1), min_size=9, max_size=9
)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(entry_material)
def test_entries_hashed_before_rfc8785_still_verify(material: list[Any]) -> None:
    # The legacy form and RFC 8785 write text and integers byte for byte alike (control
    # characters, quotes, any Unicode), so a chain written before the switch verifies.
    try:
        legacy = legacy_canonical_json(material).encode("utf-8")
    except UnicodeEncodeError:
        return  # a lone surrogate: neither form could store it
    assert canonical_json(material).encode("utf-8") == legacy


def test_a_known_entry_keeps_its_hash() -> None:
    # Pinned before the switch to RFC 8785: the same fields give the same hash.
    assert entry_hash(**FIELDS) == digest(
        legacy_canonical_json(
            [
                GENESIS,
                "doc-1",
                2,
                "clerk@so-noi-vu",
                "submit",
                "draft",
                "draft",
                "2026-01-05T08:30:15.123456+00:00",
                digest("{}"),
            ]
        )
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=100, derandomize=True, database=None, deadline=None)
@given(json_values)
def test_canonical_json_round_trips_and_is_stable(value: Any) -> None:
    text = canonical_json(value)

    assert json.loads(text) == value
    assert canonical_json(json.loads(text)) == text


# -- entry hashes --------------------------------------------------------------------------


def test_entry_hash_is_deterministic_hex_sha256() -> None:
    first = entry_hash(**FIELDS)

    assert first == entry_hash(**FIELDS)
    assert len(first) == 64
    assert int(first, 16) >= 0
    assert first != GENESIS


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_changing_any_field_changes_the_hash(field: str) -> None:
    assert entry_hash(**{**FIELDS, field: CHANGED[field]}) != entry_hash(**FIELDS)


def test_fields_cannot_be_shifted_into_each_other() -> None:
    # The material is a JSON list, so moving text across a field boundary changes it.
    shifted = {**FIELDS, "actor": "clerk@so-noi-vusubmit", "event": ""}

    assert entry_hash(**shifted) != entry_hash(**FIELDS)


def test_version_number_and_its_text_hash_differently() -> None:
    assert entry_hash(**{**FIELDS, "version": "2"}) != entry_hash(**FIELDS)


# -- timestamps ----------------------------------------------------------------------------


def test_timestamps_are_normalised_to_utc_with_microseconds() -> None:
    assert timestamp(AT) == "2026-01-05T08:30:15.123456+00:00"
    assert timestamp(AT.astimezone(ICT)) == timestamp(AT)
    assert timestamp(datetime(2026, 1, 5, 8, 0)) == "2026-01-05T08:00:00.000000+00:00"


def test_the_same_instant_in_any_zone_hashes_the_same() -> None:
    assert entry_hash(**{**FIELDS, "at": AT.astimezone(ICT)}) == entry_hash(**FIELDS)


def test_a_naive_timestamp_is_read_as_utc() -> None:
    naive = AT.replace(tzinfo=None)

    assert entry_hash(**{**FIELDS, "at": naive}) == entry_hash(**FIELDS)
    # The same wall-clock time in Vietnam is a different instant.
    assert entry_hash(**{**FIELDS, "at": naive.replace(tzinfo=ICT)}) != entry_hash(**FIELDS)


# -- make_entry ----------------------------------------------------------------------------


def test_make_entry_is_deterministic() -> None:
    assert entry() == entry()


def test_make_entry_stores_the_canonical_payload_and_its_digest() -> None:
    made = entry()

    assert made.payload == canonical_json(PAYLOAD)
    assert json.loads(made.payload) == PAYLOAD
    assert made.payload_digest == digest(made.payload)
    assert made.prev_hash == GENESIS


def test_make_entry_hash_covers_the_payload_digest() -> None:
    made = entry()
    fields = {k: getattr(made, k) for k in FIELDS}

    assert made.hash == entry_hash(**fields)


def test_the_payload_digest_covers_the_payload() -> None:
    base = entry()
    changed = entry(payload={**PAYLOAD, "reason": "Sai thể thức văn bản."})

    assert changed.payload_digest != base.payload_digest
    assert changed.hash != base.hash


def test_payload_key_order_does_not_matter() -> None:
    reordered = dict(reversed(list(PAYLOAD.items())))

    assert entry(payload=reordered).hash == entry().hash


@pytest.mark.parametrize("field", sorted(k for k in FIELDS if k != "payload_digest"))
def test_make_entry_hash_changes_with_every_field(field: str) -> None:
    assert entry(**{field: CHANGED[field]}).hash != entry().hash


def test_entries_chain_by_previous_hash() -> None:
    first = entry(version=1, event="create", from_state="", prev_hash=GENESIS)
    second = entry(version=2, prev_hash=first.hash)
    third = entry(version=3, prev_hash=second.hash, event="approve", to_state="reviewed")
    chain = [first, second, third]

    prev = GENESIS
    for e in chain:
        fields = {k: getattr(e, k) for k in FIELDS}
        assert e.prev_hash == prev
        assert e.hash == entry_hash(**fields)
        prev = e.hash
    # Re-linking the third entry straight after the first is detectable.
    relinked = {**{k: getattr(third, k) for k in FIELDS}, "prev_hash": first.hash}
    assert entry_hash(**relinked) != third.hash


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=12,
    )
)
def test_canonical_json_is_rfc8785_whichever_encoder_writes_it(value: Any) -> None:
    # The C encoder's fast path and the RFC 8785 library must agree byte for byte
    # (keys beyond the BMP, floats, large integers go the library's way).
    try:
        expected = rfc8785.dumps(value).decode("utf-8")
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        with pytest.raises((TypeError, UnicodeEncodeError)):
            canonical_json(value).encode("utf-8")
        return
    assert canonical_json(value) == expected


# Keys and text across the planes: ASCII, the BMP (U+E000–U+FFFF sorts after the surrogates
# by code point, before them by UTF-16 code unit) and beyond it; lone surrogates too.
jcs_text = st.text(
    st.sampled_from(["a", "B", "~", "\x00", "\x1f", '"', "\\", "é", "\ue000", "\uffff"])
    | st.characters(min_codepoint=0x10000, max_codepoint=0x1F6FF)
    | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
    | st.characters(),
    max_size=6,
)
jcs_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | jcs_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(jcs_text, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=500, derandomize=True, database=None, deadline=None)
@given(jcs_values)
def test_canonical_bytes_are_rfc8785s_own(value: Any) -> None:
    # What is signed (headers, manifests, receipts, statuses, anchors) is JCS exactly:
    # the fast path writes the library's bytes, or refuses what the library refuses.
    try:
        expected = rfc8785.dumps(value)
    except ValueError:  # CanonicalizationError; UnicodeEncodeError for a lone surrogate key
        with pytest.raises(TypeError, match="not canonical JSON"):
            canonical_bytes(value)
        return
    assert canonical_bytes(value) == expected
