"""Notification routes (operators of the agency) and the dead-letter list over HTTP.

A route's secret goes in and never comes out; another agency's route or notification is
not found; every bad input has its code.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from congvan.actions.notifications import queue_notifications
from congvan.states.policy import ROLES
from congvan.workflow.serving import free_port
from tests.api.conftest import A, Api, MakeApi, assert_error
from tests.factories import B

SECRET = "api-hook-secret-0123456789abcdefghijklmn"
ROUTES = "/v1/notification-routes"


def hook(api: Api, agency: str = A, **fields: Any) -> Any:
    body = {
        "kind": "not_delivered",
        "channel": "webhook",
        "target": "https://hooks.hue.gov.vn/congvan",
        "secret": SECRET,
        **fields,
    }
    return api.client.post(ROUTES, headers=api.auth("operator", agency), json=body)


def dead_letter(api: Api, agency: str = A) -> str:
    """A notification that could not be sent: its route's receiver is not listening."""
    made = hook(api, agency, kind="*", target=f"http://127.0.0.1:{free_port()}/hook")
    assert 201 == made.status_code, made.text
    event = {
        "escalation_id": "0192f000-0000-7000-8000-0000000000e1",
        "level": 2,
        "severity": "khẩn",
        "what_to_do": "Gọi văn thư.",
        "at": api.clock(),
    }
    with api.runtime.uow() as uow:
        queue_notifications(uow, agency_id=agency, kind="not_delivered", event=event)
        uow.commit()
        [notice] = uow.notifications.page(agency, "pending")
    assert "failed" == api.runtime.runner.run(notice.job_id)
    return notice.id


@pytest.fixture
def one_attempt(make_api: MakeApi) -> Api:
    return make_api(notify_max_attempts=1)


# -- routes ------------------------------------------------------------------------------------


def test_an_operator_adds_a_route_and_its_secret_never_comes_back(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    made = hook(api)

    assert 201 == made.status_code, made.text
    route = made.json()
    assert {
        "agency_id": A,
        "kind": "not_delivered",
        "channel": "webhook",
        "target": "https://hooks.hue.gov.vn/congvan",
        "has_secret": True,
        "enabled": True,
    }.items() <= route.items()
    listed = api.get(ROUTES, role="operator")
    one = api.get(f"{ROUTES}/{route['id']}", role="operator")
    assert [route] == listed.json()["items"]
    assert route == one.json()
    for answer in (made, listed, one):
        assert SECRET not in answer.text
    assert [] == [r for r in caplog.records if SECRET in r.getMessage() + repr(r.__dict__)]


def test_an_email_route_has_no_secret(api: Api) -> None:
    made = hook(api, channel="email", target="van.thu@hue.gov.vn", secret=None)

    assert 201 == made.status_code, made.text
    assert (False, "van.thu@hue.gov.vn") == (made.json()["has_secret"], made.json()["target"])


@pytest.mark.parametrize("role", [r for r in ROLES if r != "operator"])
def test_only_operators_manage_routes(api: Api, role: str) -> None:
    created = hook(api)
    headers = api.auth(role)

    answers = [
        api.client.post(
            ROUTES, headers=headers, json={"kind": "*", "channel": "email", "target": "v@hue.vn"}
        ),
        api.client.get(ROUTES, headers=headers),
        api.client.delete(f"{ROUTES}/{created.json()['id']}", headers=headers),
    ]

    for answer in answers:
        assert ["operator"] == assert_error(answer, 403, "forbidden")["needs"]


def test_another_agencys_route_is_not_found(api: Api) -> None:
    theirs = hook(api, B).json()["id"]
    ours = hook(api, A).json()["id"]
    headers = api.auth("operator", A)

    answers = [
        api.client.get(f"{ROUTES}/{theirs}", headers=headers),
        api.client.patch(f"{ROUTES}/{theirs}", headers=headers, json={"enabled": False}),
        api.client.delete(f"{ROUTES}/{theirs}", headers=headers),
    ]

    for answer in answers:
        assert {"route_id": theirs} == assert_error(answer, 404, "not_found")
    assert [ours] == [r["id"] for r in api.get(ROUTES, role="operator").json()["items"]]
    assert [theirs] == [r["id"] for r in api.get(ROUTES, role="operator", agency=B).json()["items"]]
    assert True is api.get(f"{ROUTES}/{theirs}", role="operator", agency=B).json()["enabled"]


def test_a_route_is_disabled_then_removed(api: Api) -> None:
    route = hook(api).json()["id"]
    headers = api.auth("operator")

    off = api.client.patch(f"{ROUTES}/{route}", headers=headers, json={"enabled": False})
    gone = api.client.delete(f"{ROUTES}/{route}", headers=headers)

    assert (200, False) == (off.status_code, off.json()["enabled"])
    assert (200, {"id": route, "removed": True}) == (gone.status_code, gone.json())
    assert_error(api.client.get(f"{ROUTES}/{route}", headers=headers), 404, "not_found")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "late"}, "kind"),
        ({"channel": "sms"}, "channel"),
        ({"secret": None}, "secret"),
        ({"secret": "short"}, "secret"),
        ({"secret": "with spaces " + "x" * 40}, "secret"),
        ({"target": "http://hooks.hue.gov.vn/congvan"}, "target"),  # plain http, not loopback
        ({"target": "ftp://hooks.hue.gov.vn/"}, "target"),
        ({"channel": "email", "target": "not-an-address", "secret": None}, "target"),
        ({"channel": "email", "target": "Văn thư <vt@hue.gov.vn>", "secret": None}, "target"),
        ({"channel": "email", "target": "vt@hue.gov.vn"}, "secret"),  # e-mail takes none
        # an address the relay would carry to a host named by address, or to no real domain
        *(
            ({"channel": "email", "target": target, "secret": None}, "target")
            for target in (
                "ops@[169.254.169.254]",
                "ops@[10.0.0.1]",
                "ops@[999.1.1.1]",
                "ops@10.0.0.5",
                "ops@127.0.0.1",
                "ops@-bad-.example",
                "ops@hue-.gov.vn",
                "a%b@hue.gov.vn",
                "host!user@hue.gov.vn",
                "a@metadata.google.internal",
                "a@x.v",
                "ops@mail.corp",
            )
        ),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_a_bad_route_is_refused_naming_its_field_and_never_echoing_the_secret(
    api: Api, fields: dict[str, Any], field: str
) -> None:
    answer = hook(api, **fields)

    details = assert_error(answer, 422, "invalid_input")
    named = details.get("field") or [e["field"] for e in details["errors"]]
    assert field in named, answer.text
    secret = fields.get("secret") or SECRET
    assert secret not in answer.text


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:6379/",
        "http://localhost:8000/v1/documents",
        "http://[::1]/hook",
        "https://10.0.0.5/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::ffff:192.168.1.1]/hook",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
        "https://[fd00::1]/hook",
        # an IPv6 address carrying a private IPv4 one, and an address with a final dot
        "https://[64:ff9b::a9fe:a9fe]/",
        "https://[64:ff9b::7f00:1]:8000/v1/health",
        "https://[::ffff:0:7f00:1]/",
        "https://[2002:a9fe:a9fe::1]/",
        "https://[::7f00:1]/",
        "https://169.254.169.254./latest/meta-data",
        "https://127.0.0.1./hook",
    ],
)
def test_a_webhook_to_a_private_address_is_refused_unless_the_installation_allows_it(
    make_api: MakeApi, target: str
) -> None:
    strict = make_api(notify_private_networks=[])

    details = assert_error(hook(strict, target=target), 422, "invalid_input")

    assert "target" == details["field"]
    assert 201 == hook(strict, target="https://hooks.hue.gov.vn/congvan").status_code
    listed = strict.client.get(ROUTES, headers=strict.auth("operator"))
    assert [] == [r for r in listed.json()["items"] if r["target"] == target]


def test_the_same_route_twice_is_a_conflict(api: Api) -> None:
    assert 201 == hook(api).status_code

    assert_error(hook(api), 409, "already_exists")
    assert 201 == hook(api, kind="*").status_code


@pytest.mark.parametrize(
    "again",
    [
        "HTTPS://HOOKS.HUE.GOV.VN/congvan",
        "https://Hooks.Hue.Gov.Vn/congvan",
        "https://hooks.hue.gov.vn:443/congvan",
        "https://hooks.hue.gov.vn./congvan",
    ],
)
def test_one_webhook_written_another_way_is_the_same_route(api: Api, again: str) -> None:
    # Given a route to a webhook
    assert 201 == hook(api).status_code

    # When the same address is routed again, written otherwise: one receiver, one route
    assert_error(hook(api, target=again), 409, "already_exists")
    [route] = api.get(ROUTES, role="operator").json()["items"]
    assert route["target"] == "https://hooks.hue.gov.vn/congvan"


@pytest.mark.parametrize("again", ["chanh@EXAMPLE.VN", "Chanh@example.vn", "CHANH@Example.Vn"])
def test_one_mailbox_written_in_another_case_is_the_same_route(api: Api, again: str) -> None:
    mail = {"channel": "email", "target": "chanh@example.vn", "secret": None}
    assert 201 == hook(api, **mail).status_code

    assert_error(hook(api, **{**mail, "target": again}), 409, "already_exists")


def test_an_address_the_mail_library_cannot_read_is_said_plainly(api: Api) -> None:
    response = hook(api, channel="email", target="chanh@example.vn.", secret=None)
    assert assert_error(response, 422, "invalid_input")["field"] == "target"
    assert "Error" not in response.text  # no name of the library's exception


def test_routes_page_like_every_list(api: Api) -> None:
    made = [hook(api, kind=kind).json()["id"] for kind in ("not_delivered", "*", "crl_expiring")]
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = api.get(ROUTES, role="operator", params=params).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert sorted(made) == sorted(seen) and len(seen) == 3
    bad = api.get(ROUTES, role="operator", params={"cursor": "nope"})
    assert {"field": "cursor"} == assert_error(bad, 422, "invalid_input")


# -- the dead-letter list ---------------------------------------------------------------------


@pytest.mark.parametrize("role", ["operator", "supervisor"])
def test_dead_letters_are_listed_and_retried_by_operators_and_supervisors(
    one_attempt: Api, role: str
) -> None:
    api = one_attempt
    dead = dead_letter(api)

    listed = api.get("/v1/notifications", role=role, params={"state": "dead"})
    shown = api.get(f"/v1/notifications/{dead}", role=role)

    assert [dead] == [n["id"] for n in listed.json()["items"]]
    notice = shown.json()
    assert ("dead", 1, "not_delivered") == (notice["state"], notice["attempts"], notice["kind"])
    [attempt] = notice["attempt_log"]
    assert ("transient", None) == (attempt["outcome"], attempt["status"])
    assert "Văn bản chưa đến đơn vị nhận" == notice["content"]["kind_words"]
    assert [] == api.get("/v1/notifications", role=role, params={"state": "sent"}).json()["items"]

    retried = api.client.post(f"/v1/notifications/{dead}/retry", headers=api.auth(role))

    assert (200, "pending") == (retried.status_code, retried.json()["state"])
    again = api.client.post(f"/v1/notifications/{dead}/retry", headers=api.auth(role))
    assert {"state": "pending"} == assert_error(again, 409, "conflict")
    assert [] == api.get("/v1/notifications", role=role, params={"state": "dead"}).json()["items"]


def test_a_webhooks_whole_address_is_shown_only_to_those_who_may_read_the_routes(
    one_attempt: Api,
) -> None:
    # Given a dead letter of a webhook whose path may carry the receiver's token
    api = one_attempt
    dead = dead_letter(api)
    target = api.get(f"/v1/notifications/{dead}", role="operator").json()["target"]
    assert target.endswith("/hook")
    origin = target.removesuffix("/hook")

    # When a supervisor (who may not read the routes) reads it, listed and alone
    listed = api.get("/v1/notifications", role="supervisor").json()["items"]
    shown = api.get(f"/v1/notifications/{dead}", role="supervisor").json()

    # Then the webhook is named by its origin only, its errors too
    assert [n["target"] for n in listed] == [f"{origin}/…"] == [shown["target"]]
    assert "/hook" not in json.dumps(listed) + json.dumps(shown)
    assert shown["attempt_log"] and shown["channel"] == "webhook"


@pytest.mark.parametrize("role", ["clerk", "reviewer", "signer"])
def test_other_roles_see_no_notifications(one_attempt: Api, role: str) -> None:
    dead = dead_letter(one_attempt)

    for answer in (
        one_attempt.get("/v1/notifications", role=role),
        one_attempt.get(f"/v1/notifications/{dead}", role=role),
        one_attempt.client.post(f"/v1/notifications/{dead}/retry", headers=one_attempt.auth(role)),
    ):
        assert_error(answer, 403, "forbidden")


def test_another_agencys_notification_is_not_found(one_attempt: Api) -> None:
    api = one_attempt
    theirs = dead_letter(api, B)

    assert (
        []
        == api.get("/v1/notifications", role="operator", params={"state": "dead"}).json()["items"]
    )
    assert_error(api.get(f"/v1/notifications/{theirs}", role="operator"), 404, "not_found")
    retry = api.client.post(f"/v1/notifications/{theirs}/retry", headers=api.auth("operator"))
    assert_error(retry, 404, "not_found")
    mine = api.get("/v1/notifications", role="operator", agency=B, params={"state": "dead"})
    assert [theirs] == [n["id"] for n in mine.json()["items"]]


def test_a_bad_state_filter_is_refused(api: Api) -> None:
    answer = api.get("/v1/notifications", role="operator", params={"state": "lost"})

    assert_error(answer, 422, "invalid_input")


def test_a_condition_on_a_change_with_no_entity_tag_is_judged_never_dropped(api: Api) -> None:
    # Given a route (it has no ETag: no version of it for If-Match to name)
    made = hook(api)
    assert made.status_code == 201, made.text
    path = f"{ROUTES}/{made.json()['id']}"

    def patch(**conditions: str) -> Any:
        headers = {**api.auth("operator"), **conditions}
        return api.client.patch(path, headers=headers, json={"enabled": False})

    # When a change names a tag, or asks that it not exist yet
    for conditions in ({"If-Match": '"999"'}, {"If-Match": "garbage"}, {"If-None-Match": "*"}):
        # Then it fails (412) and nothing changes
        assert_error(patch(**conditions), 412, "precondition_failed")
    deleted = api.client.delete(path, headers={**api.auth("operator"), "If-Match": '"1"'})
    assert_error(deleted, 412, "precondition_failed")
    shown = api.client.get(path, headers=api.auth("operator")).json()
    assert shown["enabled"] is True
    # And one that holds (it exists; no tag of it matches) is done
    assert patch(**{"If-Match": "*"}).status_code == 200
    assert patch(**{"If-None-Match": '"1"'}).status_code == 200


def test_a_dead_letter_whose_route_is_off_is_not_retried_until_it_is_on(one_attempt: Api) -> None:
    # Given a dead letter whose route the operator then disabled
    api = one_attempt
    dead = dead_letter(api)
    [route] = api.get(ROUTES, role="operator").json()["items"]
    off = api.client.patch(
        f"{ROUTES}/{route['id']}", headers=api.auth("operator"), json={"enabled": False}
    )
    assert off.status_code == 200, off.text

    # When it is retried, it is refused at once, saying why (its job would cancel it)
    retried = api.client.post(f"/v1/notifications/{dead}/retry", headers=api.auth("operator"))
    assert assert_error(retried, 409, "conflict")["route"] == "disabled"
    assert api.get(f"/v1/notifications/{dead}", role="operator").json()["state"] == "dead"

    # And once the route is on again, it goes
    api.client.patch(
        f"{ROUTES}/{route['id']}", headers=api.auth("operator"), json={"enabled": True}
    )
    again = api.client.post(f"/v1/notifications/{dead}/retry", headers=api.auth("operator"))
    assert (again.status_code, again.json()["state"]) == (200, "pending")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"force":true,"target":"https://evil.example/"}'),
        ("text/xml", b"<x/>"),
    ],
)
def test_a_body_sent_to_a_change_that_takes_none_is_refused(
    one_attempt: Api, content_type: str, body: bytes
) -> None:
    # Nothing in it would be read: refused rather than taken as if it said nothing
    api = one_attempt
    dead = dead_letter(api)
    headers = {**api.auth("operator"), "Content-Type": content_type}

    retried = api.client.post(f"/v1/notifications/{dead}/retry", headers=headers, content=body)

    assert assert_error(retried, 422, "invalid_input")["field"] == "body"
    assert api.get(f"/v1/notifications/{dead}", role="operator").json()["state"] == "dead"


def test_a_secret_over_its_length_is_too_long_and_never_echoed(api: Api) -> None:
    secret = "s3cr3t-" + "x" * 250
    response = hook(api, secret=secret)
    details = assert_error(response, 422, "field_too_long")
    assert (details["field"], details["max_length"], details["length"]) == ("secret", 256, 257)
    assert "xxxxxxxx" not in response.text


@pytest.mark.parametrize(
    "target",
    [
        "https://hook-user:hook-password@hooks.hue.gov.vn/congvan/hook-token",
        "ftp://hooks.hue.gov.vn/services/hook-token?key=hook-password",
        "https://hooks.hue.gov.vn/services/hook-token#hook-password",
        "https://10.0.0.5/services/hook-token?key=hook-password",
        "https://[::1/services/hook-token",
    ],
)
def test_a_refused_webhook_is_echoed_by_its_origin_alone(make_api: MakeApi, target: str) -> None:
    # A webhook's path, query and user-info may each be its receiver's token: an error
    # answer (which logs and proxies may keep) shows none of them
    strict = make_api(notify_private_networks=[])

    answer = hook(strict, target=target)

    details = assert_error(answer, 422, "invalid_input")
    assert "target" == details["field"]
    assert "hook-" not in answer.text, answer.text


def test_a_new_route_says_where_it_is_read(api: Api) -> None:
    made = hook(api)
    assert made.status_code == 201, made.text
    location = made.headers["Location"]
    assert location == f"{ROUTES}/{made.json()['id']}"
    assert api.get(location, role="operator").json() == made.json()
