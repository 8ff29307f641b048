"""Who may call what: tokens, roles per event and endpoint, and isolation between agencies."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI

from congvan.states import DOCUMENT
from congvan.states.errors import InvalidInput
from congvan.states.policy import (
    CREATE_ROLES,
    ESCALATION_EVENT_ROLES,
    ESCALATION_HANDLERS,
    EVENT_ROLES,
    OPERATOR,
    READ_ROLES,
    RECEIVED_EVENT_ROLES,
    REPLACE_ROLES,
    ROLES,
    SUPERVISOR,
)
from congvan.storage.agencies import AgencyRepository
from congvan.storage.clock import FrozenClock
from congvan.workflow import directory
from congvan.workflow.api.deps import get_clock
from tests.api.conftest import MAIN_PDF, A, Api, B, assert_error, sha256

# -- authentication ----------------------------------------------------------------------


def _protected(doc_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every route that needs a token, with a request body good enough to pass parsing."""
    letter = '{"doc_type": "CV", "subject": "V/v"}'
    return [
        ("GET", "/v1/documents", {}),
        ("POST", "/v1/documents", {"data": {"metadata": letter}}),
        ("GET", f"/v1/documents/{doc_id}", {}),
        ("GET", f"/v1/documents/{doc_id}/history", {}),
        ("GET", f"/v1/documents/{doc_id}/attachments/{sha256(MAIN_PDF)}", {}),
        ("POST", f"/v1/documents/{doc_id}/events/edit", {"json": {"fields": {"place": "Huế"}}}),
        ("GET", "/v1/metrics", {}),
        ("GET", "/v1/agencies", {}),
        (
            "POST",
            "/v1/agencies",
            {"json": {"id": "000.00.99.H57", "name": "X", "abbreviation": "X"}},
        ),
    ]


BAD_AUTHORIZATION = {
    "no header": None,
    "empty header": "",
    "scheme only": "Bearer",
    "scheme and blanks": "Bearer    ",
    "basic scheme": "Basic dmFudGh1OnNlY3JldA==",
    "token without scheme": "cvt_0123456789abcdef",
    "unknown token": "Bearer cvt_" + "A" * 43,
    "token too long": "Bearer cvt_" + "A" * 300,
    "two tokens": "Bearer cvt_a cvt_b",
}


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION.values(), ids=BAD_AUTHORIZATION)
def test_every_protected_route_answers_401_without_a_valid_token(
    api: Api, authorization: str | None
) -> None:
    # Given a document, so that the document routes have something to find
    doc_id = api.draft()["id"]
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path, kwargs in _protected(doc_id):
        # When the route is called without a valid token
        response = api.client.request(method, path, headers=headers, **kwargs)
        # Then it is refused as unauthenticated, with the challenge header
        assert_error(response, 401, "unauthenticated")
        assert response.headers["WWW-Authenticate"] == "Bearer", (method, path)
    # And nothing was changed by the refused calls
    assert api.version(doc_id) == 1
    assert len(api.get("/v1/documents").json()["items"]) == 1


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION.values(), ids=BAD_AUTHORIZATION)
def test_a_caller_without_a_valid_token_learns_nothing_of_the_parameters(
    api: Api, authorization: str | None
) -> None:
    # Given every route that authenticates by token, as the OpenAPI document declares them
    headers = {} if authorization is None else {"Authorization": authorization}
    operations = [
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path))
        for path, declared in api.client.app.openapi()["paths"].items()  # type: ignore[attr-defined]
        for method, operation in declared.items()
        if {"HTTPBearer": []} in operation.get("security", [])
    ]
    assert ("GET", "/v1/documents") in operations
    for method, path in operations:
        # When it is called with a parameter it does not take, or one given twice
        for query in ("?bogus=1", "?limit=1&limit=2", "?limit=", "?limit=%FF", "?a=%01"):
            response = api.client.request(method, path + query, headers=headers)
            # Then the caller is refused first: no list of what the route takes
            assert_error(response, 401, "unauthenticated")


def _routes_reading_a_body_after_a_token(app: FastAPI) -> list[tuple[str, str, str]]:
    """(method, path, media type) of every route that takes a body from a caller it
    authenticates by token, as the OpenAPI document declares them."""
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path), next(iter(body["content"])))
        for path, operations in app.openapi()["paths"].items()
        for method, operation in operations.items()
        if (body := operation.get("requestBody"))
        and {"HTTPBearer": []} in operation.get("security", [])
    ]


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION.values(), ids=BAD_AUTHORIZATION)
def test_no_body_is_read_for_a_caller_without_a_valid_token(
    api: Api, authorization: str | None
) -> None:
    # Given every route that takes a body from a caller it authenticates
    routes = _routes_reading_a_body_after_a_token(api.client.app)  # type: ignore[arg-type]
    assert ("POST", "/v1/documents", "multipart/form-data") in routes and len(routes) > 10
    for method, path, media_type in routes:
        # (of the media type the route takes, or of one it does not: the caller first)
        boundary = "; boundary=b" if media_type.startswith("multipart/") else ""
        for content_type in (media_type + boundary, "text/plain"):
            headers = {"Content-Type": content_type}
            if authorization is not None:
                headers["Authorization"] = authorization
            for body in (b"{not json", b"[" + b"0," * 50_000 + b"0]"):
                # When it is sent a body it would refuse to read, by a caller with no
                # valid token
                response = api.client.request(method, path, headers=headers, content=body)
                # Then the caller is refused first: nothing of the body was read or parsed
                assert_error(response, 401, "unauthenticated")


def _roles_of(path: str) -> dict[str, frozenset[str]]:
    """The roles each route that takes a body gives its work to, by the policy's tables
    (its events' roles where the path names an event): what the API must hold it to."""
    fixed = {
        "POST /v1/agencies": frozenset({OPERATOR}),
        "PATCH /v1/agencies/x": frozenset({OPERATOR}),
        "POST /v1/documents": CREATE_ROLES,
        "POST /v1/documents/x/recall": EVENT_ROLES["recall"],
        "POST /v1/documents/x/update": EVENT_ROLES["update"],
        "POST /v1/documents/x/replace": REPLACE_ROLES,
        "POST /v1/authorities": frozenset({OPERATOR, SUPERVISOR}),
        "PUT /v1/time-rules": ESCALATION_HANDLERS,
        "POST /v1/notification-routes": frozenset({OPERATOR}),
        "PATCH /v1/notification-routes/x": frozenset({OPERATOR}),
    }
    by_event = {
        "POST /v1/documents/x/events/": EVENT_ROLES,
        "POST /v1/received/x/events/": RECEIVED_EVENT_ROLES,
        "POST /v1/escalations/x/events/": ESCALATION_EVENT_ROLES,
    }
    if path in fixed:
        return {path: fixed[path]}
    prefix, _, event = path.rpartition("/")
    return {path: by_event[prefix + "/"].get(event, frozenset())}  # none: the system's


def _routes_with_a_body_and_events(app: FastAPI) -> list[tuple[str, str, str]]:
    """As ``_routes_reading_a_body_after_a_token``, each event of an event route apart."""
    routes = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody")
            if not body or {"HTTPBearer": []} not in operation.get("security", []):
                continue
            media_type = next(iter(body["content"]))
            events = [
                p["schema"]["enum"] for p in operation.get("parameters", []) if p["name"] == "event"
            ]
            concrete = re.sub(r"\{(?!event\})[^}]+\}", "x", path)
            for event in events[0] if events else [None]:
                named = concrete if event is None else concrete.replace("{event}", event)
                routes.append((method.upper(), named, media_type))
    return routes


@pytest.mark.parametrize("role", ROLES)
def test_a_caller_without_the_role_is_refused_before_the_body_is_read(api: Api, role: str) -> None:
    # Given every route that takes a body (each event of an event route apart)
    routes = _routes_with_a_body_and_events(api.client.app)  # type: ignore[arg-type]
    assert len(routes) > 40
    refused = 0
    for method, path, media_type in routes:
        allowed = _roles_of(f"{method} {path}")[f"{method} {path}"]
        if role in allowed:
            continue
        if media_type.startswith("multipart/"):
            content_type = media_type + "; boundary=b"
            bodies = [b"--b\r\nbroken", b"--b--\r\n"]  # unreadable; no part it needs
        else:
            content_type = media_type
            bodies = [b"{not json", b'{"bogus": [1], "reason": ""}', b"[" + b"0," * 50_000 + b"0]"]
        for body in bodies:
            # When a caller of a role it does not take sends it a body it would refuse
            headers = api.auth(role, **{"Content-Type": content_type})
            response = api.client.request(method, path, headers=headers, content=body)
            # Then the caller is told of the role, not of the body (nothing of it read)
            details = assert_error(response, 403, "forbidden")
            assert set(details["needs"]) == allowed, (method, path, details)
            refused += 1
    assert refused > 0


def test_a_caller_with_the_role_still_hears_what_is_wrong_with_the_body(api: Api) -> None:
    for role, method, path in [
        (OPERATOR, "POST", "/v1/agencies"),
        ("clerk", "POST", "/v1/documents/x/events/edit"),
        (SUPERVISOR, "PUT", "/v1/time-rules"),
    ]:
        headers = api.auth(role, **{"Content-Type": "application/json"})
        response = api.client.request(method, path, headers=headers, content=b"{not json")
        assert_error(response, 422, "invalid_input")


@pytest.mark.parametrize(
    ("role", "path"),
    [
        ("reviewer", "/v1/notifications?state=bogus"),
        ("clerk", "/v1/notification-routes?limit=0"),
        (OPERATOR, "/v1/documents?limit=0&state=bogus"),
        (OPERATOR, "/v1/escalations?cursor=%FF"),
        ("clerk", "/v1/metrics?bogus=1"),
    ],
)
def test_a_caller_without_the_role_is_refused_before_the_query_is_judged(
    api: Api, role: str, path: str
) -> None:
    assert_error(api.get(path, role=role), 403, "forbidden")


@pytest.mark.parametrize("ended", ["revoked", "expired"])
def test_a_token_that_ended_gets_no_body_read_and_a_valid_one_does(api: Api, ended: str) -> None:
    # Given a clerk's token, then revoked or past its expiry
    issued = api.new_token("clerk", expires_in_days=1)
    if ended == "revoked":
        with api.runtime.uow() as uow:
            assert uow.agencies.revoke_token(issued.prefix, api.clock()) == 1
            uow.commit()
    else:
        api.clock.advance(days=1)
    doc_id = api.draft()["id"]
    path = f"/v1/documents/{doc_id}/events/edit"

    # When it sends a body that is not JSON, then a valid token does
    revoked = {"Authorization": f"Bearer {issued.token}", "Content-Type": "application/json"}
    refused = api.client.post(path, headers=revoked, content=b"{not json")
    valid = {**revoked, "Authorization": f"Bearer {api.tokens[A]['clerk']}"}
    read = api.client.post(path, headers=valid, content=b"{not json")

    # Then the revoked one is refused unread; the valid one's body is read, and refused
    assert_error(refused, 401, "unauthenticated")
    assert read.status_code == 422, read.text
    assert api.version(doc_id) == 1


def test_a_token_is_looked_up_once_a_request_with_or_without_a_body(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a draft, and every look-up of a token counted
    doc_id = api.draft()["id"]
    looked: list[str] = []
    holder = AgencyRepository.token_holder

    def counted(self: AgencyRepository, token: str) -> Any:
        looked.append(token)
        return holder(self, token)

    monkeypatch.setattr(AgencyRepository, "token_holder", counted)

    # When a clerk reads it, then edits it (a body, its token looked up before it is read)
    assert api.get(f"/v1/documents/{doc_id}").status_code == 200
    edited = api.client.post(
        f"/v1/documents/{doc_id}/events/edit",
        headers=api.auth(),
        json={"fields": {"place": "Huế"}},
    )

    # Then each request looked its token up once
    assert edited.status_code == 200, edited.text
    assert len(looked) == 2


def test_a_revoked_token_is_refused_and_the_others_keep_working(api: Api) -> None:
    issued = api.new_token("clerk")
    fresh = {"Authorization": f"Bearer {issued.token}"}
    assert api.client.get("/v1/documents", headers=fresh).status_code == 200

    with api.runtime.uow() as uow:
        assert uow.agencies.revoke_token(issued.prefix, api.clock()) == 1
        uow.commit()

    response = api.client.get("/v1/documents", headers=fresh)
    assert_error(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert api.get("/v1/documents").status_code == 200  # the clerk's first token


def test_a_token_acts_with_the_roles_it_was_created_with_and_no_role_given_later(
    api: Api,
) -> None:
    # Given a clerk's token for a user name, as `congvan tokens create --role clerk` makes it
    with api.runtime.uow() as uow:
        now = api.clock()
        user = directory.ensure_user(uow, A, "van.thu", ["clerk"], now)
        clerks = directory.create_token(uow, user, now, roles=["clerk"])
        uow.commit()
    as_clerk = {"Authorization": f"Bearer {clerks.token}"}
    assert_error(api.client.get("/v1/metrics", headers=as_clerk), 403, "forbidden")

    # When a supervisor's token is created for the same user name
    with api.runtime.uow() as uow:
        user = directory.ensure_user(uow, A, "van.thu", ["supervisor"], now)
        supervisors = directory.create_token(uow, user, now, roles=["supervisor"])
        uow.commit()

    # Then that one is a supervisor's, and the clerk's token is still a clerk's only
    as_supervisor = {"Authorization": f"Bearer {supervisors.token}"}
    assert api.client.get("/v1/metrics", headers=as_supervisor).status_code == 200
    assert_error(api.client.get("/v1/metrics", headers=as_clerk), 403, "forbidden")
    assert api.client.get("/v1/documents", headers=as_clerk).status_code == 200
    # and a token is never bound to a role its user does not hold
    with api.runtime.uow() as uow, pytest.raises(InvalidInput, match="does not hold"):
        directory.create_token(uow, user, now, roles=["reviewer"])


def test_an_expired_token_is_refused_from_its_expiry_on(api: Api) -> None:
    issued = api.new_token("reviewer", expires_in_days=1)
    headers = {"Authorization": f"Bearer {issued.token}"}

    api.clock.advance(days=1, seconds=-1)
    assert api.client.get("/v1/documents", headers=headers).status_code == 200

    api.clock.advance(seconds=1)
    response = api.client.get("/v1/documents", headers=headers)
    assert_error(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    # A token without expiry is unaffected by the passing of time
    assert api.get("/v1/documents", role="reviewer").status_code == 200


def test_a_clock_given_through_the_apps_dependencies_is_the_one_tokens_expire_by(
    api: Api,
) -> None:
    issued = api.new_token("reviewer", expires_in_days=1)
    headers = {"Authorization": f"Bearer {issued.token}"}
    app = api.client.app
    assert isinstance(app, FastAPI)
    later = FrozenClock(api.clock() + timedelta(days=1))
    app.dependency_overrides[get_clock] = lambda: later
    try:
        assert_error(api.client.get("/v1/documents", headers=headers), 401, "unauthenticated")
    finally:
        del app.dependency_overrides[get_clock]
    # The runtime's own clock has not moved: the token still works without the override.
    assert api.client.get("/v1/documents", headers=headers).status_code == 200


def test_the_scheme_is_case_insensitive_and_tokens_never_echo(api: Api) -> None:
    token = api.tokens[A]["clerk"]
    assert api.client.get("/v1/documents", headers={"Authorization": f"bearer {token}"}).is_success

    wrong = token[:-4] + "AAAA"
    response = api.client.get("/v1/documents", headers={"Authorization": f"Bearer {wrong}"})
    assert_error(response, 401, "unauthenticated")
    assert wrong not in response.text and token[4:12] not in response.text


def test_health_and_openapi_need_no_token(api: Api) -> None:
    assert api.client.get("/v1/health").status_code == 200
    assert api.client.get("/openapi.json").status_code == 200


# -- roles per event ---------------------------------------------------------------------

# What a role that may fire the event gets on a fresh draft, with a reason in the body:
# the role check passed, and the next check (or the transition) answered.
ALLOWED_IN_DRAFT = {
    "edit": (422, "invalid_input"),  # the edit changes nothing
    "submit": (200, None),  # queues the review checks
    "waive": (422, "invalid_input"),  # no check named in `code`
    "approve": (409, "guard_failed"),  # checks_cleared: the draft was not submitted
    "reject": (200, None),
    "sign": (409, "invalid_transition"),  # not from draft
    "send": (409, "invalid_transition"),
    "resend": (409, "invalid_transition"),
    "recall": (409, "invalid_transition"),  # not before it was sent
    "update": (409, "invalid_transition"),
}

ROLE_CASES = [
    pytest.param(event, role, role in allowed, id=f"{event}-{role}")
    for event, allowed in EVENT_ROLES.items()
    for role in ROLES
]


def test_the_role_table_covers_every_event_a_person_may_fire() -> None:
    derived = {t.trigger for t in DOCUMENT.transitions if t.derived}
    assert set(EVENT_ROLES) == set(DOCUMENT.events) - derived == set(ALLOWED_IN_DRAFT)


@pytest.mark.parametrize(("event", "role", "allowed"), ROLE_CASES)
def test_an_event_is_fired_only_by_its_roles(
    api: Api, event: str, role: str, allowed: bool
) -> None:
    # Given a draft of the caller's own agency
    doc_id = api.draft()["id"]
    # When someone of `role` fires `event` (with a reason, so that reject is complete)
    response = api.fire(doc_id, event, role=role, body={"reason": "Sai thể thức"}, if_match='"1"')
    # Then a role outside the event's roles is forbidden, naming the roles it needs
    if not allowed:
        details = assert_error(response, 403, "forbidden")
        assert details["needs"] == sorted(EVENT_ROLES[event])
        assert details["event"] == event
        assert api.version(doc_id) == 1
        return
    # And an allowed role gets past the role check to the transition's own answer
    status, code = ALLOWED_IN_DRAFT[event]
    assert response.status_code != 403
    if code is None:
        assert response.status_code == status, response.text
        assert response.json()["version"] == 2
    else:
        assert_error(response, status, code)
        assert api.version(doc_id) == 1


@pytest.mark.parametrize("event", ["delivered", "acknowledged", "failed"])
@pytest.mark.parametrize("role", ROLES)
def test_derived_events_are_fired_by_the_system_only(api: Api, event: str, role: str) -> None:
    doc_id = api.draft()["id"]
    response = api.fire(doc_id, event, role=role)
    details = assert_error(response, 403, "forbidden")
    assert details == {"event": event, "needs": []}
    assert api.version(doc_id) == 1


def test_a_replayed_idempotency_key_does_not_lift_the_role_check(api: Api) -> None:
    # Given a clerk's edit remembered under a key
    doc_id = api.draft()["id"]
    body = {"fields": {"place": "Huế"}}
    first = api.fire(doc_id, "edit", body=body, if_match='"1"', key="edit-1")
    assert first.status_code == 200, first.text
    # When people of other roles send the very same request with the same key
    for role in set(ROLES) - EVENT_ROLES["edit"]:
        response = api.fire(doc_id, "edit", role=role, body=body, if_match='"1"', key="edit-1")
        # Then they are refused, not handed the clerk's answer
        assert_error(response, 403, "forbidden")
    # And the clerk still gets the replay
    again = api.fire(doc_id, "edit", body=body, if_match='"1"', key="edit-1")
    assert (again.content, again.headers["Idempotent-Replayed"]) == (first.content, "true")


# -- roles per endpoint ------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_only_a_clerk_creates_documents(api: Api, role: str) -> None:
    response = api.create(role=role)
    if role in CREATE_ROLES:
        assert response.status_code == 201, response.text
        return
    details = assert_error(response, 403, "forbidden")
    assert details["needs"] == sorted(CREATE_ROLES)
    assert api.get("/v1/documents").json()["items"] == []


@pytest.mark.parametrize("role", ROLES)
def test_reading_documents_needs_a_reading_role(api: Api, role: str) -> None:
    doc = api.draft()
    paths = [
        "/v1/documents",
        f"/v1/documents/{doc['id']}",
        f"/v1/documents/{doc['id']}/history",
        f"/v1/documents/{doc['id']}/attachments/{sha256(MAIN_PDF)}",
    ]
    for path in paths:
        response = api.get(path, role=role)
        if role in READ_ROLES:
            assert response.status_code == 200, (path, response.text)
        else:
            details = assert_error(response, 403, "forbidden")
            assert details["needs"] == sorted(READ_ROLES)


# -- isolation between agencies ----------------------------------------------------------


def _read_paths(doc_id: str, digest: str) -> list[str]:
    return [
        f"/v1/documents/{doc_id}",
        f"/v1/documents/{doc_id}/history",
        f"/v1/documents/{doc_id}/attachments/{digest}",
    ]


@pytest.mark.parametrize("role", ROLES)
def test_another_agencys_document_reads_exactly_like_a_missing_one(api: Api, role: str) -> None:
    # Given a document of agency A, and an id nobody has
    theirs = api.draft(agency=A)["id"]
    missing = str(uuid.uuid4())
    digest = sha256(MAIN_PDF)
    for foreign, absent in zip(
        _read_paths(theirs, digest), _read_paths(missing, digest), strict=True
    ):
        # When a person of agency B asks for A's document
        response = api.get(foreign, role=role, agency=B)
        # Then the answer is the one for a document that does not exist
        expected = api.get(absent, role=role, agency=B)
        if role in READ_ROLES:
            assert_error(response, 404, "not_found")
        else:  # the operator reads no documents at all, anywhere
            assert_error(response, 403, "forbidden")
        assert response.status_code == expected.status_code
        assert response.json()["message"] == expected.json()["message"]


@pytest.mark.parametrize("role", ROLES)
def test_another_agencys_document_takes_no_events(api: Api, role: str) -> None:
    theirs = api.draft(agency=A)["id"]
    made_up = str(uuid.uuid4())
    for event in [*EVENT_ROLES, "bogus"]:
        answers = [
            api.fire(doc, event, role=role, agency=B, body={"reason": "x"}, if_match='"1"', key=k)
            for doc, k in ((theirs, event), (made_up, event + "-made-up"))
        ]
        # A role the event does not take is told so, whoever's the document; a role it
        # takes finds nothing: either way, exactly as for an id nobody made
        if role in EVENT_ROLES.get(event, frozenset().union(*EVENT_ROLES.values())):
            details = assert_error(answers[0], 404, "not_found")
            assert details == {"document_id": theirs}
            assert answers[1].json()["details"] == {"document_id": made_up}
        else:
            assert_error(answers[0], 403, "forbidden")
            assert answers[0].json() == answers[1].json()
        assert answers[0].status_code == answers[1].status_code
    # An edit without a body or If-Match is just as unknown (to the role that edits)
    if role in EVENT_ROLES["edit"]:
        assert_error(api.fire(theirs, "edit", role=role, agency=B), 404, "not_found")
    # A's document did not move
    assert api.version(theirs) == 1
    history = api.get(f"/v1/documents/{theirs}/history").json()["items"]
    assert [e["event"] for e in history] == ["create"]


def test_a_shared_file_is_downloaded_only_through_ones_own_document(api: Api) -> None:
    # Given the same bytes attached by both agencies (blobs are stored once, by digest)
    ours = api.draft(agency=A)
    theirs = api.draft(agency=B)
    digest = sha256(MAIN_PDF)
    assert ours["attachments"][0]["sha256"] == theirs["attachments"][0]["sha256"] == digest
    # Then each agency downloads it through its own document only
    own = api.get(f"/v1/documents/{theirs['id']}/attachments/{digest}", agency=B)
    assert own.status_code == 200 and own.content == MAIN_PDF
    foreign = api.get(f"/v1/documents/{ours['id']}/attachments/{digest}", agency=B)
    assert_error(foreign, 404, "not_found")
    # And a file only A has is not reachable through B's document either
    only_a = api.draft(agency=A, metadata=None, files=[("main", ("a.pdf", b"A only", "a/b"))])
    a_digest = only_a["attachments"][0]["sha256"]
    response = api.get(f"/v1/documents/{theirs['id']}/attachments/{a_digest}", agency=B)
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("role", sorted(READ_ROLES))
def test_a_listing_shows_only_the_callers_agency(api: Api, role: str) -> None:
    a_ids = {api.draft(agency=A)["id"] for _ in range(3)}
    b_ids = {api.draft(agency=B)["id"] for _ in range(2)}

    def listed(agency: str, **params: Any) -> set[str]:
        response = api.get("/v1/documents", role=role, agency=agency, params=params)
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["items"]}

    assert listed(A) == a_ids
    assert listed(B) == b_ids
    assert listed(B, state="draft", doc_type="CV", urgency=0) == b_ids
    for item in api.get("/v1/documents", role=role, agency=B).json()["items"]:
        assert item["agency_id"] == B
