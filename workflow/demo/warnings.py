"""The warning scenes: a recipient that never registers letter 1227, the deadline passing
(the installations' shared clock moved forward), an escalation opening at both ends, and
the province's chánh văn phòng owning it to its resolution (letter 1227, point 3)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from congvan.states.timeliness import VIETNAM
from congvan.states.vocabulary import RULE_DEADLINE
from congvan.storage.clock import MovableClock

from ..notifications import add_route
from .cast import HEALTH, PROVINCE
from .client import Demo, DemoFailed, wait_for
from .exchange import NAMES, Installation, renew_crls
from .mailbox import Mailbox

SUPERVISOR = "chánh văn phòng"
CHIEF_ADDRESS = "chanhvanphong@thuathienhue.gov.vn"


def _local(moment: str | None) -> str:
    from datetime import datetime

    if not moment:
        return "—"
    return datetime.fromisoformat(moment).astimezone(VIETNAM).strftime("%H:%M %d/%m/%Y")


def _open(demo: Demo, who: str, kind: str, about: str) -> dict[str, Any] | None:
    listed = demo.call(who, "GET", "/v1/escalations", expect=200, params={"kind": kind})
    found = [e for e in listed["items"] if about in (e["recipient"], e["received_id"])]
    return found[0] if found else None


def unregistered(
    province: Installation,
    recipients: Installation,
    doc_id: str,
    clock: MovableClock,
    mailbox: Mailbox,
) -> dict[str, Any]:
    """Sở Y tế never registers the letter: the deadline passes, escalations open at both
    ends, a supervisor claims and resolves the province's. Returns it, resolved."""
    demo, there = province.demo, recipients.demo
    health = HEALTH[0]
    demo.step(
        "Sở Y tế has letter 1227 (01) but its văn thư never registers it (03 is due the "
        "working day it arrives, and sooner for a khẩn letter, Decree 30 Art. 21): the "
        "clock moves on"
    )
    runtime = province.runtime
    with runtime.uow() as uow:
        add_route(
            uow,
            PROVINCE[0],
            kind="not_acknowledged",
            channel="email",
            target=CHIEF_ADDRESS,
            secret=None,
            by="operator",
            now=runtime.clock(),
        )
        uow.commit()
    print(
        f"   the province's operator routes not_acknowledged warnings to {CHIEF_ADDRESS} "
        "(congvan notify add)"
    )
    [received] = there.call("văn thư Sở Y tế", "GET", "/v1/received", expect=200)["items"]
    # Straight to the deadline the province watches (past Tết, however long), then half
    # a working day at a time until both ends have theirs.
    due = _registration_due(province, doc_id, health)
    moved_from = clock()
    if due is not None and due > clock():
        clock.advance(seconds=(due - clock()).total_seconds() + 60)
    else:
        clock.advance(hours=12)
    escalation = reminder = None
    for _ in range(16):
        # Each end fires its own deadline on its own scheduler: wait for both.
        escalation = escalation or _wait_open(demo, health)
        if escalation is not None:
            reminder = _polled(
                lambda: _open(there, "văn thư Sở Y tế", "not_acknowledged", received["id"])
            )
        if reminder is not None:
            break
        clock.advance(hours=12)
    if escalation is None:
        raise DemoFailed("no escalation opened for Sở Y tế's missing registration")
    if clock() - moved_from > timedelta(days=3):  # past a long holiday: CRLs run out
        renew_crls(province, recipients)
    print(f"   the clock now reads {clock().astimezone(VIETNAM):%H:%M %d/%m/%Y} (Vietnam time)")
    print(
        f"   province: escalation {escalation['kind']} for {NAMES[health]} — "
        f"{escalation['what_vi']}; due {_local(escalation['due_at'])}, severity "
        f"{escalation['severity']}, level {escalation['level']}"
    )
    if reminder is None:
        raise DemoFailed("Sở Y tế's own clerks were not reminded")
    print(f"   Sở Y tế: its văn thư is reminded too — {reminder['what_vi']}")
    explain_stuck(demo, doc_id, health)
    mail = wait_for(
        "the warning's e-mail", lambda: mailbox.messages[0] if mailbox.messages else None
    )
    print(f"   e-mail to {mail['To']}: {mail['Subject']}")
    for line in mail.get_content().splitlines():
        if line.startswith(("Trích yếu", "Đơn vị nhận", "Việc cần làm")):
            print(f"      {line}")

    demo.step("The chánh văn phòng claims it, calls Sở Y tế and resolves it as contacted")
    path = f"/v1/escalations/{escalation['id']}/events"
    demo.call(SUPERVISOR, "POST", f"{path}/claim", expect=200)
    demo.call(
        SUPERVISOR,
        "POST",
        f"{path}/act",
        expect=200,
        json={
            "action": "contact",
            "note": "Gọi điện cho văn thư Sở Y tế, đề nghị vào sổ ngay",
            "reason": "Quá hạn vào sổ văn bản đến",
        },
    )
    demo.call(
        SUPERVISOR,
        "POST",
        f"{path}/resolve",
        expect=200,
        json={"outcome": "contacted", "reason": "Sở Y tế cam kết vào sổ trong buổi sáng"},
    )
    done: dict[str, Any] = demo.call(
        SUPERVISOR, "GET", f"/v1/escalations/{escalation['id']}", expect=200
    )
    for step in done["trail"]:
        extra = step["payload"].get("note") or step["payload"].get("outcome") or ""
        print(f"   {_local(step['at'])}  {step['actor']:<28} {step['event']:<8} {extra}")
    if done["state"] != "resolved":
        raise DemoFailed(f"the escalation ended {done['state']}, not resolved")
    return done


def _registration_due(province: Installation, doc_id: str, organ_id: str) -> datetime | None:
    """When the province's rule that ``organ_id`` registers the letter falls due."""
    with province.runtime.uow(readonly=True) as uow:
        dispatches = {r.id for r in uow.dispatches.for_document(doc_id) if r.organ_id == organ_id}
        due = [
            t.deadline
            for t in uow.timers.for_document(doc_id)
            if t.kind == RULE_DEADLINE
            and t.payload.get("escalation") == "not_acknowledged"
            and t.payload.get("dispatch_id") in dispatches
        ]
    return min(due) if due else None


def _wait_open(demo: Demo, health: str) -> dict[str, Any] | None:
    """The escalation once the scheduler (polling every 0.1 s) has fired the deadline."""
    return _polled(lambda: _open(demo, SUPERVISOR, "not_acknowledged", health))


def _polled(look: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
    """What ``look`` finds within about three seconds (a scheduler's few ticks), or None."""
    import time

    for _ in range(30):
        found = look()
        if found is not None:
            return found
        time.sleep(0.1)
    return None


def explain_stuck(demo: Demo, doc_id: str, organ_id: str) -> None:
    """Why is it stuck? The province asks, and lists what made no progress for an hour."""
    stuck = demo.call("văn thư", "GET", "/v1/stuck", expect=200, params={"older_than": "PT1H"})[
        "items"
    ]
    print(f"   GET /v1/stuck?older_than=PT1H: {len(stuck)} document(s) idle for over an hour")
    view = demo.call("văn thư", "GET", f"/v1/documents/{doc_id}/explain", expect=200)
    [waits] = [r for r in view["recipients"] if r["organ_id"] == organ_id]
    print(f"   GET /v1/documents/…/explain — {NAMES[organ_id]}:")
    for finding in waits["findings"]:
        print(f"      vi: {finding['vi']}")
        print(f"      en: {finding['en']}")


def recalled(province: Installation, recipients: Installation, doc_id: str) -> dict[str, Any]:
    """Letter 1227 recalled (thu hồi): every recipient that has it agrees (15), their
    copies are cancelled, and the province's document is recalled."""
    demo, there = province.demo, recipients.demo
    demo.step(
        "The lãnh đạo recalls letter 1227, sent in error: each recipient that has it is "
        "asked to take it back (business type 1, a signed package)"
    )
    asked = demo.call(
        "lãnh đạo",
        "POST",
        f"/v1/documents/{doc_id}/recall",
        expect=200,
        json={"reason": "Văn bản ban hành nhầm, sẽ thay thế bằng văn bản khác"},
    )
    print(f"   recall: {asked.get('from_state', '')} → {asked.get('to_state', '')}")
    clerks = {
        "văn thư Sở Nội vụ": "Sở Nội vụ",
        "văn thư Sở Y tế": "Sở Y tế",
        "văn thư UBND thị xã": "UBND thị xã Hương Thủy",
    }
    for who, name in clerks.items():
        item = wait_for(f"{name} to get the recall", functools.partial(_awaiting, there, who))
        done = there.call(who, "POST", f"/v1/received/{item['id']}/events/agree_recall", expect=200)
        print(f"   {who}: agrees (15) → its copy is {done['to_state']}")
    view = wait_for(
        "the document to be recalled",
        lambda: _state(demo, doc_id, "recalled"),
    )
    print(f"   the province's letter 1227 is {view['state']}: every recipient took it back")
    return view


def _awaiting(there: Demo, who: str) -> dict[str, Any] | None:
    [item] = there.call(who, "GET", "/v1/received", expect=200)["items"]
    return item if "agree_recall" in item["allowed_events"] else None


def _state(demo: Demo, doc_id: str, state: str) -> dict[str, Any] | None:
    view: dict[str, Any] = demo.call("văn thư", "GET", f"/v1/documents/{doc_id}", expect=200)
    return view if view["state"] == state else None
