"""Signing authorities over HTTP: who reads, grants and revokes them, and what they are worth.

An authority lets a user with the signer role sign some document types for their own
agency, from one date to another (both inclusive), until it is revoked. The
``authority.signer`` review check counts only the authorities valid on the document's own
date (issued_on), never one of another agency, never a revoked one.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest

from congvan.workflow import directory
from tests.api.conftest import A, Api, B, assert_error
from tests.api.test_review_flow_api import (
    SIGNER_NAME,
    SIGNER_USER,
    printing,
    run_jobs,
    submit,
    today,
)

ALL_ROLES = ["clerk", "reviewer", "signer", "supervisor", "operator"]
MANAGERS = ["supervisor", "operator"]
NOT_MANAGERS = ["clerk", "reviewer", "signer"]
VIEW_KEYS = {"id", "signer", "doc_types", "competence", "valid_from", "valid_until", "revoked"}


def add_signer_user(api: Api, agency: str = A, username: str = SIGNER_USER) -> None:
    """A user with the signer role in ``agency``, holding no authority yet."""
    with api.runtime.uow() as uow:
        directory.ensure_user(
            uow,
            agency,
            username,
            ["signer"],
            api.clock(),
            full_name=SIGNER_NAME,
            position="PHÓ CHỦ TỊCH",
        )
        uow.commit()


def grant(api: Api, role: str = "supervisor", agency: str = A, **body: Any) -> Any:
    """POST an authority for SIGNER_USER, valid from 2020 for every type unless told."""
    body = {"signer": SIGNER_USER, "competence": "KT. CHỦ TỊCH", "valid_from": "2020-01-01", **body}
    return api.client.post("/v1/authorities", headers=api.auth(role, agency), json=body)


def granted(api: Api, **body: Any) -> dict[str, Any]:
    response = grant(api, **body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def listed(api: Api, role: str = "supervisor", agency: str = A) -> list[dict[str, Any]]:
    response = api.get("/v1/authorities", role=role, agency=agency)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"items", "next_cursor"}
    return list(response.json()["items"])


def revoke(api: Api, authority_id: str, role: str = "supervisor", agency: str = A) -> Any:
    return api.client.delete(f"/v1/authorities/{authority_id}", headers=api.auth(role, agency))


def letter(api: Api, issued_on: date | None = None, **overrides: Any) -> str:
    """A draft letter of A signed by SIGNER_USER; returns its id."""
    metadata = {
        "number": 1227,
        "symbol": "UBND-TĐKT",
        "doc_type": "CV",
        "subject": "V/v tăng cường gửi, nhận văn bản điện tử",
        "place": "Thừa Thiên Huế",
        "issued_on": (issued_on or today(api)).isoformat(),
        "signer_name": SIGNER_NAME,
        "signer_position": "PHÓ CHỦ TỊCH",
        "signer_competence": "KT. CHỦ TỊCH",
        "signer_user": SIGNER_USER,
        "urgency": 0,
        "recipients": [{"organ_id": B, "name": "Sở Nội vụ tỉnh Thừa Thiên Huế"}],
        **overrides,
    }
    files = [("main", ("1227.pdf", printing(metadata), "application/pdf"))]
    return str(api.draft(metadata=metadata, files=files)["id"])


def authority_check(api: Api, doc_id: str) -> dict[str, Any]:
    """Submit the draft, run the checks and return the authority.signer result."""
    run_jobs(api, submit(api, doc_id))
    response = api.get(f"/v1/documents/{doc_id}/checks", role="reviewer")
    assert response.status_code == 200, response.text
    (result,) = [r for r in response.json()["results"] if r["code"] == "authority.signer"]
    return dict(result)


# -- reading -----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ALL_ROLES)
def test_every_role_of_the_agency_reads_its_authorities(api: Api, role: str) -> None:
    add_signer_user(api)
    authority = granted(api)

    assert listed(api, role=role) == [authority]


def test_an_agency_sees_only_its_own_authorities(api: Api) -> None:
    add_signer_user(api)
    ours = granted(api)
    theirs = granted(api, agency=B, signer="signer")

    assert listed(api, agency=A) == [ours]
    assert listed(api, agency=B) == [theirs]
    for role in ALL_ROLES:
        assert [a["id"] for a in listed(api, role=role, agency=B)] == [theirs["id"]]


def test_reading_authorities_needs_a_token(api: Api) -> None:
    assert_error(api.client.get("/v1/authorities"), 401, "unauthenticated")
    assert_error(api.client.get("/v1/authorities/x"), 401, "unauthenticated")


def test_a_granted_authority_is_read_where_its_location_says(api_any_db: Api) -> None:
    # Given an authority granted, and then revoked
    api = api_any_db
    add_signer_user(api)
    response = grant(api)
    assert response.status_code == 201, response.text
    location = response.headers["Location"]
    assert location == f"/v1/authorities/{response.json()['id']}"

    # Then every role of the agency reads it there, revoked or not
    for role in ALL_ROLES:
        read = api.get(location, role=role)
        assert read.status_code == 200, read.text
        assert read.json() == response.json()
    assert revoke(api, response.json()["id"]).status_code == 200
    assert api.get(location, role="clerk").json() == {**response.json(), "revoked": True}


@pytest.mark.parametrize("made_up", ["0", "x" * 300, "a%00b"])
def test_another_agencys_authority_reads_as_a_made_up_one(api_any_db: Api, made_up: str) -> None:
    # Given an authority of A's
    api = api_any_db
    add_signer_user(api)
    authority = granted(api)

    # When B's supervisor reads it, and a made-up id
    theirs = api.get(f"/v1/authorities/{authority['id']}", role="supervisor", agency=B)
    unknown = api.get(f"/v1/authorities/{made_up}", role="supervisor", agency=B)

    # Then both are not found alike
    assert assert_error(theirs, 404, "not_found") == {"authority_id": authority["id"]}
    assert assert_error(unknown, 404, "not_found") == {
        "authority_id": made_up.replace("%00", "\x00")[:36]
    }


# -- granting ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", MANAGERS)
def test_a_supervisor_or_an_operator_grants_an_authority(api_any_db: Api, role: str) -> None:
    api = api_any_db
    add_signer_user(api)

    response = grant(
        api,
        role=role,
        doc_types=["QĐ", "CV"],
        competence="KT. CHỦ TỊCH",
        valid_from="2025-01-01",
        valid_until="2026-12-31",
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == VIEW_KEYS
    assert {k: v for k, v in body.items() if k != "id"} == {
        "signer": SIGNER_USER,
        "doc_types": ["CV", "QĐ"],
        "competence": "KT. CHỦ TỊCH",
        "valid_from": "2025-01-01",
        "valid_until": "2026-12-31",
        "revoked": False,
    }
    assert listed(api) == [body]


def test_an_authority_without_doc_types_or_end_covers_every_type_indefinitely(api: Api) -> None:
    add_signer_user(api)

    body = granted(api, competence="", valid_from="2025-06-01")

    assert (body["doc_types"], body["competence"], body["valid_until"]) == (["*"], "", None)
    assert listed(api) == [body]


def test_doc_types_are_stored_as_a_set(api: Api) -> None:
    add_signer_user(api)

    body = granted(api, doc_types=["TB", " CV ", "TB"])

    assert body["doc_types"] == ["CV", "TB"]
    assert listed(api)[0]["doc_types"] == ["CV", "TB"]


@pytest.mark.parametrize(
    "doc_types",
    [[], [""], ["CV,QĐ"], ["CV", "NOPE"], ["*", "CV"], ["cv"]],
    ids=["empty", "blank", "comma-joined", "unknown", "star-and-more", "lower-case"],
)
def test_doc_types_are_type_codes_or_star_alone(api_any_db: Api, doc_types: list[str]) -> None:
    # An empty list used to mean "every type" and "CV,QĐ" was split into two: both refused
    api = api_any_db
    add_signer_user(api)

    refused = grant(api, doc_types=doc_types)

    details = assert_error(refused, 422, "invalid_input")
    assert details["field"] == "doc_types"
    assert "CV" in details["allowed"]
    assert listed(api) == []


@pytest.mark.parametrize("code", ["C\x00V", "\ud800"], ids=["nul", "lone-surrogate"])
def test_doc_types_are_text_both_databases_store(api_any_db: Api, code: str) -> None:
    api = api_any_db
    add_signer_user(api)
    body = {"signer": SIGNER_USER, "valid_from": "2020-01-01", "doc_types": ["CV", code]}
    response = api.client.post(
        "/v1/authorities",
        headers={**api.auth("supervisor"), "Content-Type": "application/json"},
        content=json.dumps(body),  # json= would refuse to encode a lone surrogate
    )

    details = assert_error(response, 422, "invalid_input")
    assert [e["field"] for e in details["errors"]] == ["doc_types"]
    assert listed(api) == []


@pytest.mark.parametrize("role", NOT_MANAGERS)
def test_other_roles_do_not_grant_authority(api: Api, role: str) -> None:
    add_signer_user(api)

    details = assert_error(grant(api, role=role), 403, "forbidden")

    assert details["needs"] == sorted(MANAGERS)
    assert listed(api) == []


def test_granting_needs_a_token(api: Api) -> None:
    add_signer_user(api)
    response = api.client.post(
        "/v1/authorities", json={"signer": SIGNER_USER, "valid_from": "2020-01-01"}
    )
    assert_error(response, 401, "unauthenticated")
    assert listed(api) == []


@pytest.mark.parametrize(
    "signer",
    [
        "nobody",  # no such user
        "clerk",  # a user of A without the signer role
        "supervisor",  # nor has a supervisor it
        "",
    ],
)
def test_the_signer_must_be_a_user_with_the_signer_role(api: Api, signer: str) -> None:
    details = assert_error(grant(api, signer=signer), 422, "invalid_input")

    assert details["field"] == "signer"
    assert listed(api) == []


@pytest.mark.parametrize("role", MANAGERS)
def test_a_signer_of_another_agency_is_never_granted_authority(api: Api, role: str) -> None:
    # Given a signer who exists only in B
    add_signer_user(api, agency=B, username="ttb.signer")

    # When A's manager grants them authority to sign for A
    response = grant(api, role=role, signer="ttb.signer")

    # Then it is refused, and neither agency holds an authority
    assert assert_error(response, 422, "invalid_input")["field"] == "signer"
    assert listed(api, agency=A) == []
    assert listed(api, agency=B) == []
    # While B's own manager may grant it
    assert granted(api, agency=B, role=role, signer="ttb.signer")["signer"] == "ttb.signer"
    assert listed(api, agency=A) == []


def test_valid_until_before_valid_from_is_refused(api: Api) -> None:
    add_signer_user(api)

    response = grant(api, valid_from="2026-01-05", valid_until="2026-01-04")

    details = assert_error(response, 422, "invalid_input")
    assert any("valid_until" in e["problem"] for e in details["errors"])
    # the error names the field at fault, not the body
    assert [e["field"] for e in details["errors"]] == ["valid_until"]
    assert listed(api) == []
    # A single day is fine
    one_day = granted(api, valid_from="2026-01-05", valid_until="2026-01-05")
    assert (one_day["valid_from"], one_day["valid_until"]) == ("2026-01-05", "2026-01-05")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"signer": SIGNER_USER, "valid_from": "2020-01-01", "agency_id": B}, "agency_id"),
        ({"signer": SIGNER_USER, "valid_from": "2020-01-01", "revoked": True}, "revoked"),
        ({"signer": SIGNER_USER}, "valid_from"),
        ({"valid_from": "2020-01-01"}, "signer"),
        ({"signer": SIGNER_USER, "valid_from": "01/01/2020"}, "valid_from"),
        ({"signer": SIGNER_USER, "valid_from": "2020-01-01", "doc_types": "CV"}, "doc_types"),
        ({"signer": SIGNER_USER, "valid_from": "2020-01-01", "valid_until": "x"}, "valid_until"),
    ],
)
def test_an_invalid_body_is_refused(api: Api, body: dict[str, Any], field: str) -> None:
    add_signer_user(api)
    response = api.client.post("/v1/authorities", headers=api.auth("supervisor"), json=body)

    details = assert_error(response, 422, "invalid_input")

    assert field in [e["field"] for e in details["errors"]]
    assert listed(api) == []


@pytest.mark.parametrize(
    "overlap",
    [
        {"doc_types": ["CV"], "competence": "KT. CHỦ TỊCH", "valid_from": "2025-06-01"},
        {"doc_types": ["*"], "competence": "KT. CHỦ TỊCH", "valid_from": "2024-01-01"},
        {"doc_types": ["CV", "QĐ"], "competence": "", "valid_from": "2025-01-02"},
        {"doc_types": ["CV"], "competence": "KT. CHỦ TỊCH", "valid_from": "2020-01-01",
         "valid_until": "2025-01-01"},
    ],
)  # fmt: skip
def test_an_authority_overlapping_one_held_for_its_competence_is_refused(
    api: Api, overlap: dict[str, Any]
) -> None:
    # Given KT. CHỦ TỊCH for CV from 2025 (revoking it must stop the signer signing so)
    add_signer_user(api)
    first = granted(api, doc_types=["CV"], competence="KT. CHỦ TỊCH", valid_from="2025-01-01")

    # When one that covers a type and a day of it, for its competence or any, is granted
    refused = grant(api, **overlap)

    # Then it is refused, naming the one held
    assert assert_error(refused, 409, "already_exists") == {"authority_id": first["id"]}
    assert [a["id"] for a in listed(api)] == [first["id"]]


def test_authorities_for_other_competences_types_or_days_may_stand_beside(api: Api) -> None:
    add_signer_user(api)
    granted(api, doc_types=["CV"], competence="KT. CHỦ TỊCH", valid_from="2025-01-01",
            valid_until="2025-12-31")  # fmt: skip
    granted(api, doc_types=["CV"], competence="TM. ỦY BAN NHÂN DÂN", valid_from="2025-01-01")
    granted(api, doc_types=["QĐ"], competence="KT. CHỦ TỊCH", valid_from="2025-01-01")
    granted(api, doc_types=["CV"], competence="KT. CHỦ TỊCH", valid_from="2026-01-01")
    assert len(listed(api)) == 4


def test_the_same_authority_is_granted_once_and_anew_once_revoked(api_any_db: Api) -> None:
    # Given an authority granted
    api = api_any_db
    add_signer_user(api)
    first = granted(api, doc_types=["CV"], competence="KT. CHỦ TỊCH", valid_from="2025-01-01")

    # When the same is granted again: refused, naming it (a twin would outlive a revoke)
    again = grant(api, doc_types=["CV"], competence="KT. CHỦ TỊCH", valid_from="2025-01-01")
    assert assert_error(again, 409, "already_exists") == {"authority_id": first["id"]}
    # Another grant of the signer (another type, another competence) is its own
    other = granted(api, doc_types=["QĐ"], competence="KT. CHỦ TỊCH", valid_from="2025-01-01")

    # Then revoked, it may be granted anew
    assert revoke(api, first["id"]).status_code == 200
    anew = granted(api, doc_types=["CV"], competence="KT. CHỦ TỊCH", valid_from="2025-01-01")
    assert {a["id"] for a in listed(api) if not a["revoked"]} == {other["id"], anew["id"]}


# -- revoking ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", MANAGERS)
def test_a_supervisor_or_an_operator_revokes_an_authority_once(api_any_db: Api, role: str) -> None:
    api = api_any_db
    add_signer_user(api)
    authority = granted(api)

    response = revoke(api, authority["id"], role=role)

    assert response.status_code == 200, response.text
    assert response.json() == {"id": authority["id"], "revoked": True}
    assert listed(api) == [{**authority, "revoked": True}]
    # Revoking twice finds no active authority
    again = revoke(api, authority["id"], role=role)
    assert assert_error(again, 404, "not_found") == {"authority_id": authority["id"]}
    assert listed(api) == [{**authority, "revoked": True}]


@pytest.mark.parametrize("role", NOT_MANAGERS)
def test_other_roles_do_not_revoke(api: Api, role: str) -> None:
    add_signer_user(api)
    authority = granted(api)

    details = assert_error(revoke(api, authority["id"], role=role), 403, "forbidden")

    assert details["needs"] == sorted(MANAGERS)
    assert listed(api) == [authority]


@pytest.mark.parametrize("role", MANAGERS)
def test_another_agencys_authority_is_not_found(api: Api, role: str) -> None:
    add_signer_user(api)
    authority = granted(api)

    response = revoke(api, authority["id"], role=role, agency=B)

    assert_error(response, 404, "not_found")
    assert listed(api) == [authority]


@pytest.mark.parametrize("suffix", ["0", "-extra", "x" * 300])
def test_an_unknown_authority_is_not_found(api_any_db: Api, suffix: str) -> None:
    api = api_any_db
    add_signer_user(api)
    authority = granted(api)

    for authority_id in ("no-such-authority", "00000000-0000-7000-8000-000000000000", "a%00b"):
        assert_error(revoke(api, authority_id), 404, "not_found")
    # Nor is an id that merely starts with a real one
    assert_error(revoke(api, authority["id"] + suffix), 404, "not_found")
    assert_error(revoke(api, authority["id"] + "%00"), 404, "not_found")
    assert listed(api) == [authority]


# -- what an authority is worth to the authority.signer check ---------------------------


def test_an_authority_granted_over_the_api_satisfies_the_check_until_revoked(
    api: Api,
) -> None:
    # Given a signer granted authority over the API, and a letter they sign
    add_signer_user(api)
    authority = granted(api, doc_types=["CV"])
    doc_id = letter(api)

    # Then the check passes, naming the authority
    passed = authority_check(api, doc_id)
    assert (passed["status"], passed["cleared"]) == ("passed", True)
    assert passed["details"]["authority_id"] == authority["id"]

    # When the authority is revoked and the letter is checked again
    assert revoke(api, authority["id"]).status_code == 200
    rejected = api.fire(doc_id, "reject", role="reviewer", body={"reason": "Kiểm tra lại"})
    assert rejected.status_code == 200, rejected.text

    # Then the check fails: a revoked authority is no authority
    failed = authority_check(api, doc_id)
    assert (failed["severity"], failed["status"], failed["cleared"]) == (
        "blocking",
        "failed",
        False,
    )
    assert failed["details"] == {
        "signer": SIGNER_USER,
        "doc_type": "CV",
        "on": today(api).isoformat(),
    }
    approve = api.fire(doc_id, "approve", role="reviewer")
    assert assert_error(approve, 409, "guard_failed")["failed"] == ["checks_cleared"]


def test_a_revoked_authority_never_counts_for_a_new_letter(api: Api) -> None:
    add_signer_user(api)
    authority = granted(api)
    assert revoke(api, authority["id"], role="operator").status_code == 200

    result = authority_check(api, letter(api))

    assert (result["status"], result["details"]["signer"]) == ("failed", SIGNER_USER)


def test_an_authority_for_other_doc_types_does_not_count(api: Api) -> None:
    add_signer_user(api)
    granted(api, doc_types=["QĐ", "TB"])

    result = authority_check(api, letter(api))

    assert (result["status"], result["details"]["doc_type"]) == ("failed", "CV")


def test_another_agencys_authority_for_a_same_named_signer_does_not_count(api: Api) -> None:
    # Given a user of B with the same name, holding B's authority
    add_signer_user(api)
    add_signer_user(api, agency=B)
    granted(api, agency=B)

    # Then A's letter signed by A's user of that name holds no authority
    assert authority_check(api, letter(api))["status"] == "failed"


# The letter is dated ten days before the app's today: the window is judged on its date.
DATED = timedelta(days=-10)


@pytest.mark.parametrize(
    ("starts", "ends", "status"),
    [
        pytest.param(-30, -1, "failed", id="until-the-day-before"),
        pytest.param(1, None, "failed", id="from-the-day-after"),
        pytest.param(1, 30, "failed", id="from-the-day-after-until-after-today"),
        pytest.param(-30, 0, "passed", id="until-that-day"),
        pytest.param(0, None, "passed", id="from-that-day"),
        pytest.param(0, 0, "passed", id="that-day-only"),
    ],
)
def test_an_authority_counts_only_on_the_documents_date(
    api: Api, starts: int, ends: int | None, status: str
) -> None:
    # Given an authority whose window is set around the letter's date
    add_signer_user(api)
    issued_on = today(api) + DATED
    granted(
        api,
        valid_from=(issued_on + timedelta(days=starts)).isoformat(),
        valid_until=(issued_on + timedelta(days=ends)).isoformat() if ends is not None else None,
    )

    result = authority_check(api, letter(api, issued_on=issued_on))

    assert result["status"] == status, result
    if status == "failed":
        assert result["details"]["on"] == issued_on.isoformat()
