"""The running system over HTTP: health, metrics, the agency directory, OpenAPI, errors."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from congvan.states.policy import ROLES
from congvan.storage.ids import new_id
from tests.api.conftest import A, Api, B, MakeApi, assert_error
from tests.api.test_notifications_api import dead_letter
from tests.factories import arrival, job_done

# -- health and OpenAPI ------------------------------------------------------------------


def test_health_answers_without_a_token(api: Api) -> None:
    response = api.client.get("/v1/health")
    assert response.status_code == 200
    body = response.json()
    free = body.pop("disk_free_bytes")
    assert body == {
        "status": "ok",
        "database": "ok",
        "schema": "current",
        "broker": "embedded",
        "broker_status": "ok",
    }
    # (the embedded database's disk: room left, as the file system counts it)
    folder = Path(api.runtime.db.url.database).parent
    assert isinstance(free, int) and abs(free - shutil.disk_usage(folder).free) < 2**30


def test_health_says_degraded_when_the_databases_disk_has_no_room_for_a_request(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a disk with less room than one request may bring (writes would fail)
    room = api.runtime.settings.max_request_bytes - 1
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=room))
    # Then health says so: the API answers, writes will not
    body = api.client.get("/v1/health").json()
    assert (body["status"], body["database"], body["disk_free_bytes"]) == ("degraded", "ok", room)


def test_health_says_degraded_while_the_broker_does_not_answer(
    make_api: Any, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = make_api()
    runtime = api.client.app.state.runtime
    monkeypatch.setattr(type(runtime), "embedded", property(lambda _self: False))
    for url, status, broker in (
        (redis_url, "ok", "ok"),
        ("redis://127.0.0.1:1/0", "degraded", "unreachable"),  # nothing listens there
    ):
        monkeypatch.setattr(
            runtime, "settings", runtime.settings.model_copy(update={"broker_url": SecretStr(url)})
        )
        body = api.client.get("/v1/health").json()
        assert (body["status"], body["broker"], body["broker_status"]) == (status, "redis", broker)


def test_the_openapi_document_lists_every_v1_route(api: Api) -> None:
    response = api.client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["info"]["title"] == "congvan"
    assert {path: sorted(ops) for path, ops in spec["paths"].items()} == {
        "/v1/health": ["get"],
        "/v1/metrics": ["get"],
        "/v1/inbox": ["post"],
        "/v1/status": ["post"],
        "/v1/received": ["get"],
        "/v1/received/{received_id}": ["get"],
        "/v1/received/{received_id}/events/{event}": ["post"],
        "/v1/received/{received_id}/files/{name}": ["get"],
        "/v1/agencies": ["get", "post"],
        "/v1/agencies/{agency_id}": ["get", "patch"],
        "/v1/documents": ["get", "post"],
        "/v1/documents/{document_id}": ["get"],
        "/v1/documents/{document_id}/history": ["get"],
        "/v1/documents/{document_id}/explain": ["get"],
        "/v1/stuck": ["get"],
        "/v1/documents/{document_id}/attachments/{sha256}": ["get"],
        "/v1/documents/{document_id}/events/{event}": ["post"],
        "/v1/documents/{document_id}/recall": ["post"],
        "/v1/documents/{document_id}/update": ["post"],
        "/v1/documents/{document_id}/replace": ["post"],
        "/v1/documents/{document_id}/checks": ["get"],
        "/v1/review-queue": ["get"],
        "/v1/authorities": ["get", "post"],
        "/v1/authorities/{authority_id}": ["delete", "get"],
        "/v1/documents/{document_id}/manifest": ["get"],
        "/v1/documents/{document_id}/signature": ["get"],
        "/v1/documents/{document_id}/signature/manifest": ["get"],
        "/v1/documents/{document_id}/signature/cms": ["get"],
        "/v1/documents/{document_id}/signed-pdf": ["get"],
        "/v1/pki/crl": ["get"],
        "/v1/pki/roots": ["get"],
        "/v1/escalations": ["get"],
        "/v1/escalations/{escalation_id}": ["get"],
        "/v1/escalations/{escalation_id}/events/{event}": ["post"],
        "/v1/escalations/{escalation_id}/notice": ["get"],
        "/v1/time-rules": ["get", "put"],
        "/v1/notification-routes": ["get", "post"],
        "/v1/notification-routes/{route_id}": ["delete", "get", "patch"],
        "/v1/notifications": ["get"],
        "/v1/notifications/{notification_id}": ["get"],
        "/v1/notifications/{notification_id}/retry": ["post"],
    }
    event = spec["paths"]["/v1/documents/{document_id}/events/{event}"]["post"]
    headers = {p["name"] for p in event["parameters"] if p["in"] == "header"}
    assert headers == {"If-Match", "Idempotency-Key"}
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert api.client.get("/docs").status_code == 200


# -- metrics -----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_metrics_are_for_operators_and_supervisors(api: Api, role: str) -> None:
    response = api.get("/v1/metrics", role=role)
    if role in ("operator", "supervisor"):
        assert response.status_code == 200, response.text
        assert set(response.json()) == {
            "documents_by_state",
            "jobs_by_status",
            "next_timer_due",
            "timers_parked",
        }
    else:
        details = assert_error(response, 403, "forbidden")
        assert details == {"needs": ["operator", "supervisor"]}


def test_a_supervisor_counts_only_their_agency_and_an_operator_counts_all(api: Api) -> None:
    # Given three drafts in A and one in B
    for _ in range(3):
        api.draft(agency=A)
    api.draft(agency=B)

    def by_state(role: str, agency: str) -> dict[str, int]:
        response = api.get("/v1/metrics", role=role, agency=agency)
        assert response.status_code == 200, response.text
        return dict(response.json()["documents_by_state"])

    assert by_state("supervisor", A) == {"draft": 3}
    assert by_state("supervisor", B) == {"draft": 1}
    assert by_state("operator", A) == by_state("operator", B) == {"draft": 4}


def test_a_supervisor_sees_only_their_agencys_jobs_and_timers(api: Api) -> None:
    # Given two letters of A submitted (each queues a review job), and a draft of B
    for _ in range(2):
        doc_id = api.draft(agency=A)["id"]
        assert api.fire(doc_id, "submit").status_code == 200
    api.draft(agency=B)

    def metrics(role: str, agency: str) -> dict[str, object]:
        response = api.get("/v1/metrics", role=role, agency=agency)
        assert response.status_code == 200, response.text
        return dict(response.json())

    # Then B's supervisor sees none of A's work; A's sees its own; the operator all of it
    of_b = metrics("supervisor", B)
    assert (of_b["jobs_by_status"], of_b["next_timer_due"]) == ({}, None)
    assert sum(metrics("supervisor", A)["jobs_by_status"].values()) == 2  # type: ignore[union-attr]
    assert sum(metrics("operator", B)["jobs_by_status"].values()) >= 2  # type: ignore[union-attr]


def test_a_supervisor_counts_the_agencys_received_documents_and_notifications_too(
    make_api: MakeApi,
) -> None:
    # Given A's only work: a received document awaiting registration (its deadline timer)
    # and a notification that could not be sent (its job, failed)
    api = make_api(notify_max_attempts=1, jobs={"send_status": job_done})
    api.runtime.engine.receive(arrival("msg-m-1", agency_id=A))
    dead_letter(api)

    # Then A's supervisor counts all of it, as the operator does; B's, none of it
    of_a = api.get("/v1/metrics", role="supervisor").json()
    everyone = api.get("/v1/metrics", role="operator").json()
    of_b = api.get("/v1/metrics", role="supervisor", agency=B).json()
    assert of_a["next_timer_due"] is not None
    assert (of_a["jobs_by_status"], of_a["next_timer_due"]) == (
        everyone["jobs_by_status"],
        everyone["next_timer_due"],
    )
    assert (of_b["jobs_by_status"], of_b["next_timer_due"]) == ({}, None)


def test_metrics_of_an_empty_installation(api: Api) -> None:
    body = api.get("/v1/metrics", role="operator").json()
    assert body == {
        "documents_by_state": {},
        "jobs_by_status": body["jobs_by_status"],
        "next_timer_due": None,
        "timers_parked": 0,
    }
    assert all(n == 0 for n in body["jobs_by_status"].values())


def test_metrics_count_parked_timers_for_whoever_may_see_them(api: Api) -> None:
    # Given a timer parked for a document of agency A, and one of the installation's
    doc_id = api.draft()["id"]
    with api.runtime.uow() as uow:
        for ref, document, agency in (("of-a", doc_id, A), ("of-none", None, None)):
            timer_id = new_id()
            uow.timers.add(
                [{"id": timer_id, "kind": "k", "ref_id": ref, "document_id": document,
                  "agency_id": agency, "due_at": api.runtime.clock()}]
            )  # fmt: skip
            uow.timers.park(timer_id, 8, "RuntimeError: down", api.runtime.clock())
        uow.commit()

    # Then the operator counts both, A's supervisor A's one, B's supervisor none
    def parked(role: str, agency: str) -> int:
        return int(api.get("/v1/metrics", role=role, agency=agency).json()["timers_parked"])

    assert (parked("operator", A), parked("supervisor", A), parked("supervisor", B)) == (2, 1, 0)


# -- the agency directory ----------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_everyone_with_a_token_reads_the_directory(api: Api, role: str) -> None:
    response = api.get("/v1/agencies", role=role, agency=B)
    assert response.status_code == 200, response.text
    assert {a["id"]: a["abbreviation"] for a in response.json()["items"]} == {A: "UBND", B: "SNV"}


NEW_AGENCY = {"id": "000.00.31.H57", "name": "UBND thành phố Huế", "abbreviation": "UBND"}


@pytest.mark.parametrize("role", ROLES)
def test_only_an_operator_adds_agencies(api: Api, role: str) -> None:
    response = api.client.post("/v1/agencies", headers=api.auth(role), json=NEW_AGENCY)
    if role == "operator":
        assert response.status_code == 201, response.text
        assert response.json() == {**NEW_AGENCY, "numbering": "agency"}
        listed = {a["id"] for a in api.get("/v1/agencies").json()["items"]}
        assert listed == {A, B, NEW_AGENCY["id"]}
        return
    details = assert_error(response, 403, "forbidden")
    assert details == {"needs": ["operator"]}
    assert len(api.get("/v1/agencies").json()["items"]) == 2


def test_an_added_agency_is_read_where_its_location_says(api: Api) -> None:
    # Given an agency an operator added
    response = api.client.post("/v1/agencies", headers=api.auth("operator"), json=NEW_AGENCY)
    assert response.status_code == 201, response.text

    # Then its answer says where it is, and every role reads it there
    assert response.headers["Location"] == f"/v1/agencies/{NEW_AGENCY['id']}"
    for role in ROLES:
        read = api.get(response.headers["Location"], role=role, agency=B)
        assert read.status_code == 200, read.text
        assert read.json() == response.json()
    assert_error(api.client.get(response.headers["Location"]), 401, "unauthenticated")


@pytest.mark.parametrize("agency_id", ["000.00.99.H57", "000.00.31.h57", "x" * 300, "A%00B"])
def test_an_agency_not_in_the_directory_is_not_found(api_any_db: Api, agency_id: str) -> None:
    details = assert_error(api_any_db.get(f"/v1/agencies/{agency_id}"), 404, "not_found")
    assert details == {"agency_id": agency_id.replace("%00", "\x00")[:40]}


def test_an_agency_is_added_once(api: Api) -> None:
    headers = api.auth("operator")
    assert api.client.post("/v1/agencies", headers=headers, json=NEW_AGENCY).status_code == 201
    again = api.client.post("/v1/agencies", headers=headers, json=NEW_AGENCY)
    assert assert_error(again, 409, "already_exists") == {"agency_id": NEW_AGENCY["id"]}
    existing = api.client.post("/v1/agencies", headers=headers, json={**NEW_AGENCY, "id": A})
    assert_error(existing, 409, "already_exists")


def test_an_agency_added_meanwhile_by_another_request_is_already_there(
    api_any_db: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a request that looked for the agency before another request added it (the
    # look finds nothing; the other request's row is in when this one inserts)
    from congvan.storage.agencies import AgencyRepository

    headers = api_any_db.auth("operator")
    added = api_any_db.client.post("/v1/agencies", headers=headers, json=NEW_AGENCY)
    assert added.status_code == 201
    monkeypatch.setattr(AgencyRepository, "agency", lambda self, agency_id: None)

    # When it inserts: the database's unique key refuses the row
    again = api_any_db.client.post("/v1/agencies", headers=headers, json=NEW_AGENCY)

    # Then it is a repeat, as if it had looked a moment later: 409, not 500
    assert_error(again, 409, "already_exists")


@pytest.mark.parametrize(
    "body",
    [
        {**NEW_AGENCY, "id": "ubnd-hue"},
        {**NEW_AGENCY, "id": ""},
        {**NEW_AGENCY, "name": "   "},
        {**NEW_AGENCY, "abbreviation": ""},
        # A group of every symbol the agency issues: capitals, as every inbox requires
        {**NEW_AGENCY, "abbreviation": "ubnd"},
        {**NEW_AGENCY, "abbreviation": "UBND TP"},
        {**NEW_AGENCY, "abbreviation": "UBND/TP"},
        {**NEW_AGENCY, "abbreviation": "-UBND"},
        {**NEW_AGENCY, "abbreviation": "Ttg"},  # TTg alone is written as practice writes it
        {**NEW_AGENCY, "name": "Huế\x00"},
        {"id": NEW_AGENCY["id"], "name": "UBND"},
        {},
        [],
    ],
)
def test_a_malformed_agency_is_invalid_input(api: Api, body: object) -> None:
    response = api.client.post("/v1/agencies", headers=api.auth("operator"), json=body)
    assert_error(response, 422, "invalid_input")
    assert len(api.get("/v1/agencies").json()["items"]) == 2


def test_the_prime_ministers_abbreviation_is_taken_as_practice_writes_it(api: Api) -> None:
    body = {"id": "000.00.01.G01", "name": "Thủ tướng Chính phủ", "abbreviation": "TTg"}
    response = api.client.post("/v1/agencies", headers=api.auth("operator"), json=body)
    assert response.status_code == 201, response.text
    assert response.json()["abbreviation"] == "TTg"


def test_a_malformed_agency_id_is_named_as_the_body_names_it(api: Api) -> None:
    body = {**NEW_AGENCY, "id": NEW_AGENCY["id"].lower()}
    response = api.client.post("/v1/agencies", headers=api.auth("operator"), json=body)
    assert assert_error(response, 422, "invalid_input")["field"] == "id"


@pytest.mark.parametrize(("field", "limit"), [("id", 35), ("name", 300), ("abbreviation", 30)])
def test_an_agency_text_over_its_length_is_field_too_long(api: Api, field: str, limit: int) -> None:
    # As every other text over its limit: its own code, saying the limit and the length
    body = {**NEW_AGENCY, field: "0" * (limit + 1)}
    response = api.client.post("/v1/agencies", headers=api.auth("operator"), json=body)
    details = assert_error(response, 422, "field_too_long")
    assert details == {"field": field, "max_length": limit, "length": limit + 1}
    assert len(api.get("/v1/agencies").json()["items"]) == 2


# -- errors outside the routes -----------------------------------------------------------


def test_an_unknown_route_and_a_wrong_method_answer_in_the_error_shape(api: Api) -> None:
    assert_error(api.get("/v1/nothing-here"), 404, "not_found")
    assert_error(api.get("/v2/documents"), 404, "not_found")
    wrong = api.client.delete("/v1/documents", headers=api.auth())
    assert_error(wrong, 405, "method_not_allowed")
    put = api.client.put(f"/v1/documents/{api.draft()['id']}", headers=api.auth(), json={})
    assert_error(put, 405, "method_not_allowed")


def test_every_answer_names_its_request_id_and_a_caller_may_pass_its_own(api: Api) -> None:
    # Given one request with a well-formed id, one with a malformed id, one with none
    given = api.client.get("/v1/health", headers={"X-Request-ID": "req-7"})
    malformed = api.client.get("/v1/health", headers={"X-Request-ID": "bad id!"})
    refused = api.client.get("/v1/documents")  # no token: an error answer

    # Then the caller's id comes back; otherwise each answer has an id of its own
    assert given.headers["X-Request-ID"] == "req-7"
    assert malformed.headers["X-Request-ID"] not in ("", "bad id!")
    assert refused.status_code == 401
    assert refused.headers["X-Request-ID"] not in ("", malformed.headers["X-Request-ID"])
    # And no answer lets a browser guess another type than the one it says
    assert {"nosniff"} == {r.headers["X-Content-Type-Options"] for r in (given, refused)}


def test_a_client_gone_mid_body_is_a_line_in_the_log_not_an_error(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a client that sends part of a package and closes the connection
    app = api.client.app
    messages = iter(
        [
            {"type": "http.request", "body": b"PK\x03\x04", "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/inbox",
        "raw_path": b"/v1/inbox",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/zip"), (b"host", b"testserver")],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    with caplog.at_level(logging.INFO):
        asyncio.run(app(scope, receive, send))  # raises nothing

    # Then the answer (which nobody reads) is no 500, and no error or traceback is logged
    [start] = [m for m in sent if m["type"] == "http.response.start"]
    assert start["status"] == 400
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.message for r in caplog.records if r.name == "congvan.api"] == ["client went away"]


def test_a_path_with_a_trailing_slash_is_not_found_not_redirected(api: Api) -> None:
    for path in ("/v1/documents/", "/v1/health/", "/v1/received/"):
        answer = api.client.get(path, headers={**api.auth("clerk"), "Host": "evil.example"})
        assert_error(answer, 404, "not_found")
        assert "location" not in answer.headers
