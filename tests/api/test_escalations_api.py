"""The escalation board over HTTP: supervisors list, claim, comment, snooze, resolve; the
agency tightens its time rules. The app's clock starts on Monday 05/01/2026, 15:00 in
Vietnam; the scheduler is run by the test after moving the clock."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import timedelta
from typing import Any

import pytest

from congvan.workflow import directory
from tests.api.conftest import A, Api, B, MakeApi, assert_error
from tests.api.test_signing_api import issue, reviewed_letter, sign, signing_api


def late_letter(make_api: MakeApi) -> tuple[Api, str, dict[str, Any]]:
    """A letter signed on Monday and still not sent on Wednesday: its escalation."""
    api = signing_api(make_api)
    issue(api)
    doc_id = reviewed_letter(api)
    assert sign(api, doc_id).status_code == 200
    api.clock.advance(days=2)
    api.runtime.scheduler.run_due()
    listed = api.get("/v1/escalations", role="supervisor")
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    return api, doc_id, item


def post(api: Api, escalation_id: str, event: str, role: str = "supervisor", **body: Any) -> Any:
    return api.client.post(
        f"/v1/escalations/{escalation_id}/events/{event}",
        headers=api.auth(role),
        json=body or None,
    )


def test_a_letter_not_sent_in_time_is_on_the_board_and_handled_to_its_end(
    make_api: MakeApi,
) -> None:
    api, doc_id, item = late_letter(make_api)
    assert item["kind"] == "not_sent_in_time"
    assert item["document_id"] == doc_id
    assert item["state"] == "open"
    assert item["due_at"] == "2026-01-06T05:00:00Z"  # Tuesday noon in Vietnam
    assert item["what_vi"] and item["what_to_do_vi"]
    assert "claim" in item["allowed_events"]
    escalation_id = item["id"]
    told = api.get(f"/v1/escalations/{escalation_id}/notice", role="supervisor").json()
    assert (told["document_id"], told["kind"], told["level"]) == (doc_id, "not_sent_in_time", 1)
    assert told["subject"] and told["number"] and told["what_to_do_vi"]

    claimed = post(api, escalation_id, "claim")
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["to_state"] == "claimed"
    assert post(api, escalation_id, "comment", text="Đã gọi văn thư").status_code == 200
    until = (api.clock() + timedelta(hours=2)).isoformat()
    snoozed = post(api, escalation_id, "snooze", until=until, reason="chờ người ký")
    assert snoozed.status_code == 200, snoozed.text
    resolved = post(api, escalation_id, "resolve", outcome="accepted", reason="đã rõ lý do")
    assert resolved.status_code == 200, resolved.text

    shown = api.get(f"/v1/escalations/{escalation_id}", role="supervisor").json()
    assert (shown["state"], shown["outcome"]) == ("resolved", "accepted")
    assert shown["owner"].endswith("@" + A)  # the supervisor who claimed it
    assert [t["event"] for t in shown["trail"]] == ["open", "claim", "comment", "snooze", "resolve"]
    assert shown["trail"][2]["payload"]["comment"] == "Đã gọi văn thư"
    # Resolved ones leave the default (active) list, and stay listed by state.
    assert api.get("/v1/escalations", role="supervisor").json()["items"] == []
    by_state = api.get("/v1/escalations", role="supervisor", params={"state": "resolved"})
    assert [i["id"] for i in by_state.json()["items"]] == [escalation_id]


def test_an_owner_typed_decomposed_finds_what_its_owner_claimed(make_api: MakeApi) -> None:
    # Given an escalation claimed by a supervisor with a Vietnamese user name
    api, _, item = late_letter(make_api)
    name = unicodedata.normalize("NFC", "thảo.nguyễn")
    with api.runtime.uow() as uow:
        user = directory.ensure_user(uow, A, name, ["supervisor"], api.clock())
        token = directory.create_token(uow, user, api.clock()).token
        uow.commit()
    headers = {"Authorization": f"Bearer {token}"}
    claimed = api.client.post(f"/v1/escalations/{item['id']}/events/claim", headers=headers)
    assert claimed.status_code == 200, claimed.text
    # When the board is filtered by that owner, typed composed or decomposed (macOS)
    owner = f"{name}@{A}"  # as the board names people
    assert api.get(f"/v1/escalations/{item['id']}", role="supervisor").json()["owner"] == owner
    for typed in (owner, unicodedata.normalize("NFD", owner)):
        listed = api.get("/v1/escalations", role="supervisor", params={"owner": typed})
        # Then it is found either way
        assert listed.status_code == 200, listed.text
        assert [i["id"] for i in listed.json()["items"]] == [item["id"]], typed


def _supervisors(api: Api, *names: str) -> dict[str, dict[str, str]]:
    """Supervisors of A by these names: each one's Authorization header."""
    tokens = {}
    with api.runtime.uow() as uow:
        for name in names:
            user = directory.ensure_user(uow, A, name, ["supervisor"], api.clock())
            token = directory.create_token(uow, user, api.clock()).token
            tokens[name] = {"Authorization": f"Bearer {token}"}
        uow.commit()
    return tokens


def test_a_second_supervisor_claiming_at_once_is_refused_unless_taking_it_over(
    make_api: MakeApi,
) -> None:
    # Given an escalation one supervisor claimed, and a second supervisor of the agency
    api, _, item = late_letter(make_api)
    path = f"/v1/escalations/{item['id']}"
    tokens = _supervisors(api, "giamsat.mot", "giamsat.hai")
    first = api.client.post(f"{path}/events/claim", headers=tokens["giamsat.mot"])
    assert first.status_code == 200, first.text

    # When the second claims it too (as two claiming at once do), then is told whose it is
    second = api.client.post(f"{path}/events/claim", headers=tokens["giamsat.hai"])

    # Then the second is refused, naming who holds it: only one is told it owns it
    details = assert_error(second, 409, "guard_failed")
    assert f"giamsat.mot@{A} holds it" in details["reasons"]["not_held_by_another"]
    assert "--take-over" in details["reasons"]["not_held_by_another"]  # the CLI's word too
    assert api.get(path, role="supervisor").json()["owner"] == f"giamsat.mot@{A}"
    # (the holder claiming again takes nothing over, and changes nothing: refused as such,
    # no step written, the version as it was)
    version = api.get(path, role="supervisor").json()["version"]
    again = api.client.post(f"{path}/events/claim", headers=tokens["giamsat.mot"])
    details = assert_error(again, 409, "guard_failed")
    assert "you hold it already" in details["reasons"]["not_claimed_by_actor"]
    assert api.get(path, role="supervisor").json()["version"] == version

    # And it is taken over when the claim says so: take_over, or If-Match on the version seen
    etag = api.get(path, role="supervisor").headers["ETag"]
    took = api.client.post(
        f"{path}/events/claim", headers={**tokens["giamsat.hai"], "If-Match": etag}
    )
    assert took.status_code == 200, took.text
    back = api.client.post(
        f"{path}/events/claim", headers=tokens["giamsat.mot"], json={"take_over": True}
    )
    assert back.status_code == 200, back.text
    shown = api.get(path, role="supervisor").json()
    assert shown["owner"] == f"giamsat.mot@{A}"
    assert shown["trail"][-1]["payload"]["previous_owner"] == f"giamsat.hai@{A}"

    # And acting from it, which takes it too, is held to the same: refused, then said
    contact = {"action": "contact", "reason": "Đã gọi điện", "note": "0234 382 2222"}
    acted = api.client.post(f"{path}/events/act", headers=tokens["giamsat.hai"], json=contact)
    details = assert_error(acted, 409, "guard_failed")
    assert f"giamsat.mot@{A} holds it" in details["reasons"]["not_held_by_another"]
    assert api.get(path, role="supervisor").json()["owner"] == f"giamsat.mot@{A}"
    acted = api.client.post(
        f"{path}/events/act", headers=tokens["giamsat.hai"], json={**contact, "take_over": True}
    )
    assert acted.status_code == 200, acted.text
    assert api.get(path, role="supervisor").json()["owner"] == f"giamsat.hai@{A}"


@pytest.mark.parametrize("event", ["snooze", "resolve"])
def test_a_supervisor_does_not_put_aside_or_close_what_another_holds_without_saying_so(
    make_api: MakeApi, event: str
) -> None:
    # Given an escalation one supervisor claimed, and a second supervisor of the agency
    api, _, item = late_letter(make_api)
    path = f"/v1/escalations/{item['id']}"
    tokens = _supervisors(api, "giamsat.mot", "giamsat.hai")
    assert api.client.post(f"{path}/events/claim", headers=tokens["giamsat.mot"]).is_success
    body = (
        {"until": (api.clock() + timedelta(days=2)).isoformat(), "reason": "Chờ Sở trả lời"}
        if event == "snooze"
        else {"outcome": "no_action", "reason": "Không cần làm gì"}
    )

    # When the second snoozes or resolves it without saying it takes it over
    blind = api.client.post(f"{path}/events/{event}", headers=tokens["giamsat.hai"], json=body)

    # Then it is refused, naming the holder, and stays as its holder left it
    details = assert_error(blind, 409, "guard_failed")
    assert f"giamsat.mot@{A} holds it" in details["reasons"]["not_held_by_another"]
    shown = api.get(path, role="supervisor").json()
    assert (shown["state"], shown["owner"]) == ("claimed", f"giamsat.mot@{A}")

    # And saying so (If-Match of the version seen), it is done, and the second owns it
    etag = api.get(path, role="supervisor").headers["ETag"]
    said = api.client.post(
        f"{path}/events/{event}", headers={**tokens["giamsat.hai"], "If-Match": etag}, json=body
    )
    assert said.status_code == 200, said.text
    shown = api.get(path, role="supervisor").json()
    assert shown["state"] == ("snoozed" if event == "snooze" else "resolved")
    assert shown["owner"] == f"giamsat.hai@{A}"
    assert shown["trail"][-1]["payload"]["previous_owner"] == f"giamsat.mot@{A}"


def test_bad_steps_are_refused_with_their_codes(make_api: MakeApi) -> None:
    api, _, item = late_letter(make_api)
    escalation_id = item["id"]

    assert_error(post(api, escalation_id, "claim", role="clerk"), 403, "forbidden")
    assert_error(post(api, escalation_id, "rise"), 403, "forbidden")
    assert_error(
        post(api, escalation_id, "snooze", until="2026-01-08T08:00:00+07:00"), 422, "invalid_input"
    )  # fmt: skip  (no reason)
    past = (api.clock() - timedelta(hours=1)).isoformat()
    details = assert_error(post(api, escalation_id, "snooze", until=past, reason="x"), 422,
                           "invalid_input")  # fmt: skip
    assert details["field"] == "until"
    assert_error(post(api, escalation_id, "resolve", reason="x"), 422, "invalid_input")
    assert_error(post(api, escalation_id, "resolve", outcome="won", reason="x"), 422,
                 "invalid_input")  # fmt: skip
    # cause_gone is how an escalation closes itself: not an outcome a person gives, and
    # refused by the body's own schema, as any other outcome not offered
    refused = post(api, escalation_id, "resolve", outcome="cause_gone", reason="x")
    assert assert_error(refused, 422, "invalid_input")["errors"][0]["field"] == "outcome"
    schema = api.client.get("/openapi.json").json()["components"]["schemas"]
    assert "cause_gone" not in schema["EscalationResolution"]["enum"]
    assert_error(post(api, escalation_id, "comment", text="  "), 422, "invalid_input")
    # A text over its limit is answered as every other: field_too_long, saying by how much
    long = assert_error(post(api, escalation_id, "comment", text="x" * 4001), 422, "field_too_long")
    assert long == {"field": "text", "max_length": 4000, "length": 4001}
    assert_error(post(api, escalation_id, "claim", extra=1), 422, "invalid_input")
    # A stale If-Match names what moved on: the escalation, not a document
    stale = api.client.post(
        f"/v1/escalations/{escalation_id}/events/comment",
        headers={**api.auth("supervisor"), "If-Match": '"99"'},
        json={"text": "late"},
    )
    assert_error(stale, 409, "version_conflict")
    assert "but the escalation is at version" in stale.json()["message"], stale.text
    assert post(api, escalation_id, "resolve", outcome="no_action", reason="x").status_code == 200
    assert_error(post(api, escalation_id, "claim"), 409, "invalid_transition")


def test_another_agencys_escalation_is_not_found(make_api: MakeApi) -> None:
    api, _, item = late_letter(make_api)
    other = api.client.post(
        f"/v1/escalations/{item['id']}/events/claim", headers=api.auth("supervisor", B)
    )
    assert_error(other, 404, "not_found")
    assert_error(api.get(f"/v1/escalations/{item['id']}", role="supervisor", agency=B), 404,
                 "not_found")  # fmt: skip
    assert api.get("/v1/escalations", role="supervisor", agency=B).json()["items"] == []


def test_filters_are_checked(api: Api) -> None:
    assert_error(api.get("/v1/escalations", params={"state": "lost"}), 422, "invalid_input")
    assert_error(api.get("/v1/escalations", params={"kind": "late"}), 422, "invalid_input")
    assert_error(api.get("/v1/escalations", params={"level": 3}), 422, "invalid_input")


def test_an_agency_tightens_its_time_rules_and_may_not_loosen_them(api: Api) -> None:
    shown = api.get("/v1/time-rules").json()
    assert shown["province"]["deliver"] == [240, 60, 30, 15, 15]
    assert shown["agency"] == {}
    assert shown["working_hours"] == "08:00-12:00,13:00-17:00"

    put = api.client.put(
        "/v1/time-rules",
        headers={**api.auth("supervisor"), "If-Match": "*"},
        json={"rules": {"deliver": {"0": 120}}},
    )
    assert put.status_code == 200, put.text
    assert put.json()["in_force"]["deliver"] == [120, 60, 30, 15, 15]
    assert api.get("/v1/time-rules").json()["agency"] == {"deliver": [120, 60, 30, 15, 15]}
    # Other agencies keep the province's.
    assert api.get("/v1/time-rules", agency=B).json()["agency"] == {}

    looser = api.client.put(
        "/v1/time-rules", headers=api.auth("supervisor"), json={"rules": {"deliver": {"0": 600}}}
    )
    assert assert_error(looser, 422, "invalid_input")["limit"] == 240
    unknown = api.client.put(
        "/v1/time-rules", headers=api.auth("supervisor"), json={"rules": {"sleep": [1] * 5}}
    )
    assert_error(unknown, 422, "invalid_input")
    clerk = api.client.put("/v1/time-rules", headers=api.auth("clerk"), json={"rules": {}})
    assert_error(clerk, 403, "forbidden")


def test_two_supervisors_setting_time_rules_on_what_they_read_do_not_erase_each_other(
    api: Api,
) -> None:
    # Given two supervisors who read the agency's rules (no override yet), each with its tag
    read = api.client.get("/v1/time-rules", headers=api.auth("supervisor"))
    tag = read.headers["etag"]
    assert api.client.get("/v1/time-rules", headers=api.auth("supervisor")).headers["etag"] == tag

    # When the first tightens delivery on what it read, then the second escalation on it
    first = api.client.put(
        "/v1/time-rules",
        headers={**api.auth("supervisor"), "If-Match": tag},
        json={"rules": {"deliver": {"0": 120}}},
    )
    second = api.client.put(
        "/v1/time-rules",
        headers={**api.auth("supervisor"), "If-Match": tag},
        json={"rules": {"escalate": {"0": 240}}},
    )

    # Then the first stands with a new tag, the second is told to read again, not applied
    assert first.status_code == 200 and first.headers["etag"] != tag
    assert assert_error(second, 412, "precondition_failed")["etag"] == first.headers["etag"]
    now = api.client.get("/v1/time-rules", headers=api.auth("supervisor"))
    assert now.json()["agency"] == {"deliver": [120, 60, 30, 15, 15]}
    assert now.headers["etag"] == first.headers["etag"]
    # and on what it reads now, the second's change (the whole set) goes through
    again = api.client.put(
        "/v1/time-rules",
        headers={**api.auth("supervisor"), "If-Match": now.headers["etag"]},
        json={"rules": {"deliver": {"0": 120}, "escalate": {"0": 240}}},
    )
    assert again.status_code == 200, again.text
    assert sorted(again.json()["agency"]) == ["deliver", "escalate"]


def test_time_rules_set_without_saying_what_they_replace_are_refused(api: Api) -> None:
    # Given the rules one supervisor set on what it read
    tag = api.client.get("/v1/time-rules", headers=api.auth("supervisor")).headers["etag"]
    first = api.client.put(
        "/v1/time-rules",
        headers={**api.auth("supervisor"), "If-Match": tag},
        json={"rules": {"register": {"0": 300}}},
    )
    assert first.status_code == 200, first.text

    # When another sets the whole set without an If-Match
    blind = api.client.put(
        "/v1/time-rules", headers=api.auth("supervisor"), json={"rules": {"escalate": {"0": 240}}}
    )

    # Then it is refused, told the tag to send, and the first's rules stand
    assert assert_error(blind, 428, "precondition_required")["etag"] == first.headers["etag"]
    assert "If-Match" in blind.json()["message"]
    assert sorted(api.get("/v1/time-rules").json()["agency"]) == ["register"]


@pytest.mark.parametrize(
    ("form", "status"),
    [("*", 200), ('"other", {tag}', 200), ("W/{tag}", 412), ('"other"', 412), ("{bare}", 422)],
    ids=["any", "a list naming it", "weak", "another", "unquoted"],
)
def test_time_rules_if_match_is_judged_as_rfc_9110_has_it(api: Api, form: str, status: int) -> None:
    # Given the agency's rules as read, with their tag
    tag = api.client.get("/v1/time-rules", headers=api.auth("supervisor")).headers["etag"]

    # When a supervisor sets them under an If-Match of this form
    put = api.client.put(
        "/v1/time-rules",
        headers={**api.auth("supervisor"), "If-Match": form.format(tag=tag, bare=tag.strip('"'))},
        json={"rules": {"deliver": {"0": 120}}},
    )

    # Then it holds (any, or a list naming the tag), fails (a weak tag never matches
    # strongly; another tag), or is not an If-Match at all
    assert put.status_code == status, put.text
    if status != 200:
        assert (
            api.client.get("/v1/time-rules", headers=api.auth("supervisor")).json()["agency"] == {}
        )


def test_supervisors_handle_escalations_and_time_rules_from_the_cli(
    make_api: MakeApi, tmp_path: Any, capsys: Any
) -> None:
    from congvan.workflow.cli import main

    api, doc_id, item = late_letter(make_api)
    url = api.runtime.settings.database_url
    assert url is not None
    cli = ["--data-dir", str(tmp_path), "--database-url", url.get_secret_value()]

    assert main([*cli, "escalations", "list", A]) == 0
    listed = capsys.readouterr().out
    assert item["id"] in listed and "not_sent_in_time" in listed and doc_id in listed

    # A clerk may not; a supervisor claims and resolves it.
    assert main([*cli, "escalations", "claim", item["id"], "--user", "clerk"]) == 2
    assert "[forbidden]" in capsys.readouterr().err
    assert main([*cli, "escalations", "claim", item["id"], "--user", "supervisor"]) == 0
    # Another supervisor takes it over only by saying so
    with api.runtime.uow() as uow:
        directory.ensure_user(uow, A, "giamsat.hai", ["supervisor"], api.clock())
        uow.commit()
    capsys.readouterr()
    assert main([*cli, "escalations", "claim", item["id"], "--user", "giamsat.hai"]) == 2
    assert "[guard_failed]" in capsys.readouterr().err
    for user, over in (("giamsat.hai", ["--take-over"]), ("supervisor", ["--take-over"])):
        assert main([*cli, "escalations", "claim", item["id"], "--user", user, *over]) == 0
    assert main([*cli, "escalations", "comment", item["id"], "--user", "supervisor",
                 "Đã nhắc văn thư"]) == 0  # fmt: skip
    assert main([*cli, "escalations", "resolve", item["id"], "--user", "supervisor",
                 "accepted", "--reason", "đã rõ"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main([*cli, "escalations", "show", item["id"]]) == 0
    shown = capsys.readouterr().out
    assert "Đã nhắc văn thư" in shown and "resolve → resolved" in shown
    # each step's own moment, evidence: ISO 8601 to the second, in Vietnam time
    steps = re.findall(r"^  v\d+ (\S+) ", shown, re.MULTILINE)
    assert steps and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00", s) for s in steps)
    # Every moment of every step in Vietnam time, as the rest of the CLI prints them
    moments = re.findall(r'"\d{4}-\d\d-\d\dT[\d:.]+([+-]\d\d:\d\d|Z)"', shown)
    assert moments and {"+07:00"} == set(moments)
    # and --json is what GET /v1/escalations/{id} answers: every step, ISO 8601 moments
    assert main([*cli, "escalations", "show", item["id"], "--json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    answered = api.client.get(f"/v1/escalations/{item['id']}", headers=api.auth("supervisor"))
    assert as_json == answered.json()
    assert [t["event"] for t in as_json["trail"]][-2:] == ["comment", "resolve"]
    assert main([*cli, "escalations", "list", A]) == 0
    assert "no escalations" in capsys.readouterr().out

    # Time rules: tightened for A, a loosening refused with its code.
    assert main([*cli, "time-rules", "set", A, "--user", "supervisor",
                 "--rules", '{"register": {"1": 60}}']) == 0  # fmt: skip
    assert "register" in capsys.readouterr().out
    assert main([*cli, "time-rules", "set", A, "--user", "supervisor",
                 "--rules", '{"register": {"0": 9999}}']) == 2  # fmt: skip
    assert "[invalid_input]" in capsys.readouterr().err
    # a rule given twice (the last would win unseen), an agency not here (not its user)
    assert main([*cli, "time-rules", "set", A, "--user", "supervisor", "--rules",
                 '{"register": {"1": 50}, "register": {"1": 40}}']) == 2  # fmt: skip
    assert "error [repeated_field]: The key 'register'" in capsys.readouterr().err
    assert main([*cli, "time-rules", "set", "000.00.99.H57", "--user", "supervisor",
                 "--rules", "{}"]) == 2  # fmt: skip
    assert "error [not_found]: No agency 000.00.99.H57." in capsys.readouterr().err
    assert main([*cli, "time-rules", "show", A]) == 0
    shown = capsys.readouterr().out
    assert "(agency)" in shown
    # A normal document's send is the cut-off's; urgent ones' clock rules are said so
    assert re.search(r"^send +cutoff ", shown, re.MULTILINE), shown
    assert "run on the clock" in shown


def test_an_agency_keeps_working_when_the_province_tightens_below_its_own_rules(
    api: Api,
) -> None:
    # Given the agency's deliver rule set at 120 working minutes, within the province's 240
    put = api.client.put(
        "/v1/time-rules",
        headers={**api.auth("supervisor"), "If-Match": "*"},
        json={"rules": {"deliver": {"0": 120}}},
    )
    assert put.status_code == 200, put.text

    # When the province tightens its own to 100 (a restart with new settings)
    watch = api.runtime.watch
    watch.rules = watch.rules.tightened({"deliver": [100, 60, 30, 15, 15]})

    # Then the tighter of the two is in force, shown as such, and the agency's work goes on
    shown = api.get("/v1/time-rules")
    assert shown.status_code == 200, shown.text
    assert shown.json()["in_force"]["deliver"] == [100, 60, 30, 15, 15]
    doc_id = api.draft()["id"]
    assert api.fire(doc_id, "submit").status_code == 200


@pytest.mark.parametrize("value", [True, "100", 100.0])
def test_working_minutes_are_whole_numbers_not_what_json_turns_into_them(
    api: Api, value: object
) -> None:
    for rules in ({"deliver": {"4": value}}, {"escalate": [value] * 5}):
        put = api.client.put(
            "/v1/time-rules", headers=api.auth("supervisor"), json={"rules": rules}
        )
        assert_error(put, 422, "invalid_input")
    assert api.get("/v1/time-rules").json()["agency"] == {}
