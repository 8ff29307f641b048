"""/v1/received: what other agencies sent, listed and handled by the receiving agency."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.api.conftest import Api, assert_error
from tests.factories import A, B, arrival, job_done


def _received(api: Api, message_id: str = "msg-1", agency: str = A) -> str:
    doc, _stored = api.runtime.engine.receive(arrival(message_id, agency_id=agency))
    return doc.id


def test_a_clerk_lists_and_reads_what_arrived_for_the_agency(
    make_api: Callable[..., Api],
) -> None:
    # Given two documents arrived for agency A and one for agency B
    api = make_api(jobs={"send_status": job_done})
    first, second = _received(api, "m-1"), _received(api, "m-2")
    _received(api, "m-3", agency=B)

    # When a clerk of A lists them, one page at a time
    page = api.get("/v1/received", params={"limit": 1})
    rest = api.get("/v1/received", params={"cursor": page.json()["next_cursor"]})

    # Then A's two come back newest first, each arrived (status 01) and waiting for a clerk
    assert page.status_code == rest.status_code == 200, page.text
    items = page.json()["items"] + rest.json()["items"]
    assert [i["id"] for i in items] == [second, first]
    assert {(i["state"], i["status_code"]) for i in items} == {("received", "01")}
    assert sorted(items[0]["allowed_events"]) == ["refuse", "register"]
    one = api.get(f"/v1/received/{first}")
    assert one.status_code == 200 and one.headers["ETag"] == '"1"'
    assert one.json()["symbol"] == "UBND-TĐKT"


def test_another_agencys_received_document_is_not_found(make_api: Callable[..., Api]) -> None:
    api = make_api(jobs={"send_status": job_done})
    theirs = _received(api, agency=B)
    assert_error(api.get(f"/v1/received/{theirs}"), 404, "not_found")
    response = api.client.post(f"/v1/received/{theirs}/events/register", headers=api.auth())
    assert_error(response, 404, "not_found")


def _fire(api: Api, received_id: str, event: str, role: str = "clerk", **body: Any) -> Any:
    return api.client.post(
        f"/v1/received/{received_id}/events/{event}",
        headers=api.auth(role),
        json=body or None,
    )


def test_registering_then_handling_reports_each_status_code(
    make_api: Callable[..., Api],
) -> None:
    api = make_api(jobs={"send_status": job_done})
    doc = _received(api)

    registered = _fire(api, doc, "register")
    assert registered.status_code == 200, registered.text
    assert (registered.json()["to_state"], len(registered.json()["jobs"])) == ("registered", 1)
    view = api.get(f"/v1/received/{doc}").json()
    assert (view["status_code"], view["register_number"]) == ("03", 1)

    assert_error(_fire(api, doc, "assign"), 403, "forbidden")  # a clerk does not assign
    assert _fire(api, doc, "assign", "supervisor").status_code == 200
    assert _fire(api, doc, "process").status_code == 200
    done = _fire(api, doc, "complete")
    assert done.status_code == 200 and done.headers["ETag"] == '"5"'
    assert api.get(f"/v1/received/{doc}").json()["status_code"] == "06"
    assert_error(_fire(api, doc, "register"), 409, "invalid_transition")


def test_a_refusal_without_a_reason_is_refused_and_with_one_is_kept(
    make_api: Callable[..., Api],
) -> None:
    api = make_api(jobs={"send_status": job_done})
    doc = _received(api)
    assert_error(_fire(api, doc, "refuse"), 422, "invalid_input")
    refused = _fire(api, doc, "refuse", reason="Gửi nhầm cơ quan")
    assert refused.status_code == 200, refused.text
    view = api.get(f"/v1/received/{doc}").json()
    assert (view["state"], view["status_code"], view["reason"]) == (
        "refused",
        "02",
        "Gửi nhầm cơ quan",
    )


def test_a_filter_by_an_unknown_state_names_the_states(api: Api) -> None:
    response = api.get("/v1/received", params={"state": "sent"})
    body = assert_error(response, 422, "invalid_input")
    assert "registered" in str(body)
