"""Long lists over HTTP: every page is cut by the database, in a stable order.

Each list here holds more items than one page, with ties in the leading sort key, so a
walk by ``next_cursor`` must meet every item once, in the order of the whole list.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from congvan.workflow.directory import USERNAME_LENGTH
from tests.api.conftest import A, Api
from tests.api.test_authorities_api import add_signer_user, grant, granted


def _walk(api: Api, path: str, role: str, limit: int) -> list[dict[str, Any]]:
    """Every item of a list, ``limit`` per page, following next_cursor."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = api.get(path, role=role, params=params)
        assert 200 == response.status_code, response.text
        body = response.json()
        assert len(body["items"]) <= limit, body
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def _selects(api: Api, path: str, role: str, table: str) -> list[str]:
    """The SELECTs from ``table`` that reading one page of ``path`` sends to the database."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and f"FROM {table}" in statement:
            seen.append(" ".join(statement.split()))

    engine = api.runtime.db
    event.listen(engine, "before_cursor_execute", before)
    try:
        assert 200 == api.get(path, role=role, params={"limit": 2}).status_code
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert seen, f"no SELECT from {table}"
    return seen


def _paged_in_sql(api: Api, path: str, role: str, table: str) -> bool:
    """Whether every read of ``table`` for a page asks the database for a bounded count."""
    return all(" LIMIT " in s for s in _selects(api, path, role, table))


def test_the_history_pages_through_many_entries(api_any_db: Api) -> None:
    # Given a draft edited seven times: eight audit entries
    api = api_any_db
    doc = api.draft()["id"]
    for n in range(7):
        response = api.fire(doc, "edit", body={"fields": {"subject": f"Trích yếu {n}"}})
        assert 200 == response.status_code, response.text
    path = f"/v1/documents/{doc}/history"
    # When it is read three entries a page
    walked = _walk(api, path, "clerk", 3)
    # Then every entry comes once, oldest first, as in the whole list
    assert list(range(1, 9)) == [e["version"] for e in walked]
    assert api.get(path, params={"limit": 50}).json()["items"] == walked
    # and the database is asked for a page, not for the whole trail
    assert _paged_in_sql(api, path, "clerk", "audit_entries")


def test_authorities_page_through_ties_of_signer_and_date(api_any_db: Api) -> None:
    # Given five authorities of one signer (each for its own type), three from the same day
    api = api_any_db
    add_signer_user(api)
    days = ["2021-01-01", "2020-01-01", "2021-01-01", "2019-06-30", "2021-01-01"]
    types = ["CV", "QĐ", "TB", "KH", "BC"]
    ids = {
        granted(api, valid_from=d, doc_types=[t])["id"] for d, t in zip(days, types, strict=True)
    }
    # When they are read two a page
    walked = _walk(api, "/v1/authorities", "supervisor", 2)
    # Then each comes once, by date and then by id
    assert ids == {a["id"] for a in walked} and len(walked) == 5
    keys = [(a["valid_from"], a["id"]) for a in walked]
    assert sorted(keys) == keys
    assert _paged_in_sql(api, "/v1/authorities", "supervisor", "signing_authorities")


def test_every_cursor_the_server_issues_is_taken_back_however_long_its_key(api: Api) -> None:
    # Given two authorities of a signer whose user name is as long as names may be, in
    # letters that take several bytes each (the cursor holds it, base64 of UTF-8 JSON)
    username = "ký.thay." + "ễ" * (USERNAME_LENGTH - len("ký.thay."))
    add_signer_user(api, username=username)
    for doc_type in ("CV", "QĐ"):
        response = grant(api, signer=username, doc_types=[doc_type])
        assert response.status_code == 201, response.text
    # When they are read one a page, then the server's own next_cursor is taken back
    walked = _walk(api, "/v1/authorities", "supervisor", 1)
    assert [a["signer"] for a in walked] == [username, username]


def test_agencies_page_through_the_directory(api_any_db: Api) -> None:
    # Given five agencies more than the two every test starts with
    api = api_any_db
    for n in range(5):
        body = {"id": f"000.00.{40 + n}.H57", "name": f"Sở {n}", "abbreviation": "SO"}
        response = api.client.post("/v1/agencies", headers=api.auth("operator"), json=body)
        assert 201 == response.status_code, response.text
    # When the directory is read three a page
    walked = _walk(api, "/v1/agencies", "operator", 3)
    # Then every agency comes once, by identifier
    ids = [a["id"] for a in walked]
    assert 7 == len(ids) and sorted(ids) == ids and A in ids
    assert _paged_in_sql(api, "/v1/agencies", "operator", "agencies")


def _cursor(listing: str, *key: Any) -> str:
    """A cursor as the server makes them: the list's route and a key."""
    import base64
    import json

    text = json.dumps([listing, *key], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_a_cursor_the_server_never_issued_is_refused_on_every_database(api_any_db: Api) -> None:
    api = api_any_db
    doc = api.draft()["id"]
    history = f"/v1/documents/{doc}/history"
    for path, role, key in [
        (f"/v1/documents/{doc}/history", "clerk", (history, 2**63)),
        (f"/v1/documents/{doc}/history", "clerk", (history, -(2**63) - 1)),
        (f"/v1/documents/{doc}/history", "clerk", (history, 2**31)),
        ("/v1/agencies", "operator", ("/v1/agencies", "\u0000")),
        ("/v1/authorities", "supervisor", ("/v1/authorities", "\u0000", "a", "b")),
        ("/v1/review-queue", "reviewer", ("/v1/review-queue", "2026-01-01T00:00:00+00:00", "\0")),
        ("/v1/review-queue", "reviewer", ("/v1/review-queue", "0001-01-01T00:00:00+05:00", "x")),
        ("/v1/stuck", "supervisor", ("/v1/stuck", "9999-12-31T23:59:59-05:00", "x")),
    ]:
        response = api.get(path, role=role, params={"cursor": _cursor(*key)})
        assert (response.status_code, response.json()["code"]) == (422, "invalid_input"), (
            path,
            key,
            response.text,
        )


def test_a_list_takes_its_own_cursors_only(api: Api) -> None:
    # Given a next_cursor from each of several lists (two documents, two agencies, a
    # document's history of two entries)
    first = api.draft()["id"]
    other = api.draft()["id"]
    edited = api.fire(first, "edit", body={"fields": {"place": "Huế"}}, if_match='"1"')
    assert edited.status_code == 200, edited.text
    issued = {
        "/v1/documents": api.get("/v1/documents", params={"limit": 1}),
        "/v1/agencies": api.get("/v1/agencies", role="operator", params={"limit": 1}),
        "history": api.get(f"/v1/documents/{first}/history", params={"limit": 1}),
    }
    cursors = {name: answer.json()["next_cursor"] for name, answer in issued.items()}
    assert all(cursors.values()), cursors
    lists = [
        ("/v1/documents", "clerk"),
        ("/v1/received", "clerk"),
        ("/v1/escalations", "supervisor"),
        ("/v1/agencies", "operator"),
        ("/v1/authorities", "supervisor"),
        ("/v1/review-queue", "reviewer"),
        ("/v1/stuck", "supervisor"),
        ("/v1/notifications", "supervisor"),
        ("/v1/notification-routes", "operator"),
        (f"/v1/documents/{first}/history", "clerk"),
        (f"/v1/documents/{other}/history", "clerk"),  # another document's: another list
    ]
    for name, cursor in cursors.items():
        for path, role in lists:
            answer = api.get(path, role=role, params={"cursor": cursor})
            if path == name or (name == "history" and path.endswith(f"{first}/history")):
                # When each list is given its own cursor, it goes on after it
                assert answer.status_code == 200, (path, answer.text)
            else:
                # and another list's cursor is refused, not read as a key of its own
                assert (answer.status_code, answer.json()["code"]) == (422, "invalid_input"), (
                    name,
                    path,
                    answer.text,
                )
