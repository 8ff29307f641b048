"""A request repeated with its Idempotency-Key gets the first answer, byte for byte.

The first answer is kept with the key in the transaction that made the change, so a
replay after the document moved on still shows the document as that request left it:
the same status, the same body, the same ETag, plus ``Idempotent-Replayed: true``.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from congvan.workflow import directory
from tests.api.conftest import A, Api, assert_error

REPLAYED = "Idempotent-Replayed"


def _same_answer(again: httpx.Response, first: httpx.Response) -> None:
    assert (again.status_code, again.content) == (first.status_code, first.content)
    for header in ("ETag", "Location", "Content-Type"):
        assert again.headers.get(header) == first.headers.get(header), header
    assert REPLAYED not in first.headers
    assert again.headers[REPLAYED] == "true"


def test_a_replayed_create_answers_the_document_as_it_was_created(api: Api) -> None:
    # Given a draft created with a key, then edited and submitted
    first = api.create(headers={"Idempotency-Key": "create-1227"})
    assert first.status_code == 201, first.text
    doc_id = first.json()["id"]
    edited = api.fire(doc_id, "edit", body={"fields": {"place": "Huế"}}, if_match='"1"')
    assert edited.status_code == 200, edited.text
    submitted = api.fire(doc_id, "submit", if_match='"2"')
    assert submitted.status_code == 200, submitted.text
    now = api.get(f"/v1/documents/{doc_id}").json()
    assert (now["version"], now["place"]) == (3, "Huế")

    # When the create is sent again with its key
    again = api.create(headers={"Idempotency-Key": "create-1227"})

    # Then it answers exactly as the first time: version 1, the first place, no new draft
    _same_answer(again, first)
    assert (again.json()["version"], again.json()["place"]) == (1, "Thừa Thiên Huế")
    assert again.headers["ETag"].startswith('"1.')
    assert [d["id"] for d in api.get("/v1/documents").json()["items"]] == [doc_id]


def test_a_replayed_event_answers_as_it_did_the_first_time(api: Api) -> None:
    # Given an edit fired with a key, then another edit and a submission
    doc_id = api.draft()["id"]
    first = api.fire(doc_id, "edit", body={"fields": {"place": "Huế"}}, key="edit-1")
    assert first.status_code == 200, first.text
    for event, body in (("edit", {"fields": {"place": "Hà Nội"}}), ("submit", None)):
        response = api.fire(doc_id, event, body=body)
        assert response.status_code == 200, response.text

    # When the first edit is sent again with its key
    again = api.fire(doc_id, "edit", body={"fields": {"place": "Huế"}}, key="edit-1")

    # Then it answers as the first time and changes nothing
    _same_answer(again, first)
    assert again.json()["version"] == 2
    assert api.version(doc_id) == 4
    assert api.get(f"/v1/documents/{doc_id}").json()["place"] == "Hà Nội"


def test_a_replayed_event_that_queued_jobs_names_the_same_jobs(api: Api) -> None:
    doc_id = api.draft()["id"]
    first = api.fire(doc_id, "submit", key="submit-1")
    assert first.status_code == 200, first.text
    assert first.json()["jobs"]  # the review checks, queued
    again = api.fire(doc_id, "submit", key="submit-1")
    _same_answer(again, first)


def test_a_create_that_lost_a_race_for_its_key_answers_the_winners_first_answer(
    api_any_db: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a create that committed with a key, and a document changed since
    api = api_any_db
    engine = api.runtime.engine
    winner = api.create(headers={"Idempotency-Key": "raced"})
    assert winner.status_code == 201, winner.text
    doc_id = winner.json()["id"]
    edited = api.fire(doc_id, "edit", body={"fields": {"place": "Huế"}})
    assert edited.status_code == 200, edited.text
    # and its twin (same key, same request) that did not see the winner's answer when it
    # looked, so that its own commit hits the key
    looked = []
    replay = engine._replay

    def not_yet(uow: Any, agency_id: str, idempotency: Any) -> Any:
        looked.append(idempotency.key)
        return None if len(looked) == 1 else replay(uow, agency_id, idempotency)

    monkeypatch.setattr(engine, "_replay", not_yet)

    # When the twin commits
    loser = api.create(headers={"Idempotency-Key": "raced"})

    # Then it answers the winner's first answer, marked as a replay, and one document exists
    _same_answer(loser, winner)
    assert len(looked) == 2 and looked[0] == looked[1]  # one key (the caller's own digest)
    assert [d["id"] for d in api.get("/v1/documents").json()["items"]] == [doc_id]


def test_an_event_that_lost_a_race_for_its_key_answers_the_winners_first_answer(
    api_any_db: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an edit that committed with a key, and another edit since
    api = api_any_db
    engine = api.runtime.engine
    doc_id = api.draft()["id"]
    winner = api.fire(doc_id, "edit", body={"fields": {"place": "Huế"}}, key="raced")
    assert winner.status_code == 200, winner.text
    assert api.fire(doc_id, "edit", body={"fields": {"place": "Vinh"}}).status_code == 200
    # and its twin that did not see the winner's answer when it looked
    looked = []
    replay = engine._replay

    def not_yet(uow: Any, agency_id: str, idempotency: Any) -> Any:
        looked.append(idempotency.key)
        return None if len(looked) == 1 else replay(uow, agency_id, idempotency)

    monkeypatch.setattr(engine, "_replay", not_yet)

    # When the twin commits its own edit and hits the key
    loser = api.fire(doc_id, "edit", body={"fields": {"place": "Huế"}}, key="raced")

    # Then it answers the winner's first answer and its own edit left no trace
    _same_answer(loser, winner)
    assert api.version(doc_id) == 3
    assert api.get(f"/v1/documents/{doc_id}").json()["place"] == "Vinh"


def test_a_key_is_its_callers_own_two_clerks_choosing_the_same_do_not_share_it(
    api: Api,
) -> None:
    # Given a second clerk of the same agency, with a token of her own
    with api.runtime.uow() as uow:
        now = api.runtime.clock()
        user = directory.ensure_user(uow, A, "clerk-lan", ["clerk"], now)
        lan = directory.create_token(uow, user, now).token
        uow.commit()
    api.tokens[A]["lan"] = lan

    # When both create a draft with the key "1", each their own letter
    first = api.create(headers={"Idempotency-Key": "1"})
    hers = api.create(role="lan", headers={"Idempotency-Key": "1"}, subject="V/v khác hẳn")

    # Then hers is made (not the first clerk's answer replayed, nor refused as reused)
    assert (first.status_code, hers.status_code) == (201, 201), hers.text
    assert REPLAYED not in hers.headers
    assert hers.json()["id"] != first.json()["id"]
    assert hers.json()["subject"] == "V/v khác hẳn"
    # And each one's repeat replays their own first answer
    _same_answer(
        api.create(role="lan", headers={"Idempotency-Key": "1"}, subject="V/v khác hẳn"), hers
    )
    _same_answer(api.create(headers={"Idempotency-Key": "1"}), first)


def test_an_empty_key_is_refused_not_taken_for_no_key(api: Api) -> None:
    # A client sending an empty key means one; answering as if none was sent would apply
    # its retry twice
    for _ in range(2):
        assert_error(api.create(headers={"Idempotency-Key": ""}), 422, "invalid_input")
    assert api.get("/v1/documents").json()["items"] == []


def test_every_change_that_keeps_no_key_refuses_one_before_doing_anything(api: Api) -> None:
    # Every change whose OpenAPI operation takes no Idempotency-Key (a route, an
    # authority, an agency, the time rules, a notification's retry, a peer's package or
    # status, which take no token, ...) refuses one: a
    # key dropped there would leave a repeat after a lost answer done twice.
    paths = api.client.get("/openapi.json").json()["paths"]
    some_id = "0192f000-0000-7000-8000-000000000001"
    refused, kept = set(), set()
    for path, operations in paths.items():
        for method, operation in operations.items():
            if method not in ("post", "put", "patch", "delete"):
                continue
            takes = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            url = re.sub(r"\{[^}]+\}", some_id, path)
            said = api.by_a_role_it_takes(method, url, {"Idempotency-Key": "k-1"}, json={})
            about_key = said.status_code == 422 and (
                said.json()["details"].get("field") == "Idempotency-Key"
            )
            (kept if "Idempotency-Key" in takes else refused).add(path)
            assert about_key == ("Idempotency-Key" not in takes), (method, path, said.text)
    # Those that keep it: a draft's creation, the engine's events, recall, update, replace
    assert {"/v1/notification-routes", "/v1/authorities", "/v1/agencies"} <= refused
    assert "/v1/documents" in kept and "/v1/documents/{document_id}/recall" in kept
