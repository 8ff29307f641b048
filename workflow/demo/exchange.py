"""The exchange scenes: two installations meet, and letter 1227 goes to four recipients.

The Sở Nội vụ and the UBND thành phố Huế take it at once; the Sở Y tế's inbox is down for
a while (its attempts wait on backoff timers, then it is delivered); the UBND thị xã
Hương Thủy stays unreachable past the last attempt (its dispatch fails, and the document
with it), then comes back and a supervisor resends. The recipients' people register,
assign and refuse it, and their signed status messages come back to the province; the
Sở Y tế's never registers it (the warning scenes take it from there).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from fastapi import FastAPI

from congvan.actions.exchange.receipts import Receipt, verify_receipt
from congvan.actions.signing import issuers, keystore
from congvan.states.dispatch import STATUS_EVENTS, recipient_status
from congvan.states.errors import CongvanError
from congvan.states.received import STATUS_LABEL

from ..api import create_app
from ..bootstrap import Runtime
from ..peers import export_directory, import_directory
from ..serving import free_port, serve_in_thread
from .cast import CITY, DEPARTMENT, HEALTH, PROVINCE, RECIPIENTS, TOWN
from .client import Demo, DemoFailed, clock_time, wait_for

NAMES = {agency_id: name for agency_id, name, _ in (PROVINCE, *RECIPIENTS)}
REFUSAL = "Đề nghị gửi lại kèm phụ lục danh sách cơ quan, đơn vị thực hiện"
# Where each recipient stands at the end: dispatch state and status code (domain.md §3).
EXPECTED = {
    DEPARTMENT[0]: ("acknowledged", "04"),
    HEALTH[0]: ("delivered", "01"),  # its văn thư never registers it (see warnings.py)
    CITY[0]: ("rejected", "02"),
    TOWN[0]: ("acknowledged", "03"),
}


@dataclass
class Installation:
    """One congvan installation of the demo: its runtime, its API as its people call it."""

    name: str
    runtime: Runtime
    demo: Demo
    base_url: str


class Link:
    """An agency's inbox on a port of its own: down until :meth:`up` serves it there."""

    def __init__(self, app: FastAPI, stack: ExitStack) -> None:
        self.app = app
        self.stack = stack
        self.port = free_port()

    @property
    def inbox(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/inbox"

    def up(self) -> None:
        self.stack.enter_context(serve_in_thread(self.app, port=self.port))


def connect(here: Installation, there: Installation, inbox_for: Callable[[str], str]) -> None:
    """``here`` pins ``there``'s root, imports its CRL and its directory of peers."""
    theirs = there.runtime
    crl = httpx.get(f"{there.base_url}/v1/pki/crl", timeout=30)
    if crl.status_code != 200:
        raise DemoFailed(f"GET {there.base_url}/v1/pki/crl answered {crl.status_code}")
    now = theirs.clock()
    with theirs.uow(readonly=True) as uow:
        # Their CA's certificate, as its operator hands it over (not the roots they trust).
        roots = "".join(r.cert_pem for r in uow.signatures.roots() if r.key_pem).encode()
        # Every agency of theirs that holds an organisational key.
        directory = export_directory(uow, [], inbox_for, now=now, allow_http=True)
    ours = here.runtime
    with ours.uow() as uow:
        pinned = keystore.trust(uow, ours.trust, roots, now=now)
        issuers.import_crl(uow, ours.trust, crl.content, now=now)
        added = import_directory(uow, directory, now, trust=ours.trust, allow_http=True)
        uow.commit()
    print(
        f"   {here.name}: pinned the root of {there.name} "
        f"({keystore.fingerprint(pinned[0])[:16]}…), imported its CRL and {len(added)} "
        f"peer entr{'y' if len(added) == 1 else 'ies'}"
    )
    for done in added:
        peer = done.peer
        print(f"      {NAMES.get(peer.agency_id, peer.agency_id)} → {peer.inbox_url}")


def meet(province: Installation, recipients: Installation, stack: ExitStack) -> tuple[Link, Link]:
    """Each installation learns the other's root, CRL and peers, before any letter is
    reviewed (a recipient with no inbox known fails review); the links of Sở Y tế and
    UBND thị xã Hương Thủy, down until the scenes below bring them up."""
    # The same installation answers on more ports: one per agency whose link is down.
    app = create_app(recipients.runtime)
    health, town = Link(app, stack), Link(app, stack)
    inboxes = {HEALTH[0]: health.inbox, TOWN[0]: town.inbox}
    province.demo.step(
        "The two installations meet: each pins the other's root and imports its CRL and "
        "its directory of peers (congvan keys trust, keys import-crl, peers import)"
    )
    connect(province, recipients, lambda a: inboxes.get(a, f"{recipients.base_url}/v1/inbox"))
    connect(recipients, province, lambda _a: f"{province.base_url}/v1/inbox")
    return health, town


def renew_crls(*installations: Installation) -> None:
    """Each installation publishes a fresh CRL and the others import it, as their operators
    do within ``CONGVAN_CRL_DAYS`` (congvan keys crl, keys import-crl): after the clock
    moved on days, the ones swapped when they met have run out."""
    for here in installations:
        runtime = here.runtime
        with runtime.uow() as uow:
            keystore.publish_crl(
                uow, passphrase=runtime.settings.ca_passphrase(), now=runtime.clock()
            )
            uow.commit()
    for here in installations:
        for there in installations:
            if there is here:
                continue
            crl = httpx.get(f"{there.base_url}/v1/pki/crl", timeout=30)
            if crl.status_code != 200:
                raise DemoFailed(f"GET {there.base_url}/v1/pki/crl answered {crl.status_code}")
            with here.runtime.uow() as uow:
                issuers.import_crl(uow, here.runtime.trust, crl.content, now=here.runtime.clock())
                uow.commit()
    print("   each installation published a fresh CRL and the other imported it")


def exchange(
    province: Installation, recipients: Installation, doc_id: str, links: tuple[Link, Link]
) -> dict[str, Any]:
    """The scenes above; the document's view at the end."""
    demo, there = province.demo, recipients.demo
    health, town = links

    demo.step("Văn thư sends letter 1227: a package per recipient, sealed with the province's key")
    result = demo.fire("văn thư", doc_id, "send")
    jobs = len(result["jobs"])
    print(f"   send: {result['from_state']} → {result['to_state']}, {jobs} delivery jobs")

    demo.step("Sở Nội vụ and UBND thành phố Huế take it at once, with signed receipts (01)")
    for agency in (DEPARTMENT, CITY):
        _show(_until(demo, doc_id, agency, "delivered", lambda d: d["state"] == "delivered"))

    demo.step("Sở Y tế's inbox is down: its attempts wait on database timers, then it is back")
    _show(
        _until(
            demo,
            doc_id,
            HEALTH,
            "two failed attempts",
            lambda d: d["attempts"] >= 2 and d["state"] == "pending",
        )
    )
    health.up()
    print(f"   Sở Y tế's inbox is up again on port {health.port}")
    _show(_until(demo, doc_id, HEALTH, "delivered", lambda d: d["state"] == "delivered"))

    limit = province.runtime.settings.dispatch_max_attempts
    demo.step(
        f"UBND thị xã Hương Thủy stays unreachable: after {limit} attempts its dispatch "
        "fails, and the document with it"
    )
    _show(_until(demo, doc_id, TOWN, "its last attempt", lambda d: d["state"] == "failed"))
    view = wait_for("the document to fail", lambda: _view_in(demo, doc_id, "failed"))
    print(f"   the document is {view['state']}: a supervisor must decide")

    demo.step("Hương Thủy's inbox is back; the chánh văn phòng resends with a reason")
    town.up()
    result = demo.fire(
        "chánh văn phòng", doc_id, "resend", reason="Đường truyền của UBND thị xã đã khôi phục"
    )
    print(f"   resend: {result['from_state']} → {result['to_state']}")
    _show(_until(demo, doc_id, TOWN, "delivered", lambda d: d["state"] == "delivered"))
    view = wait_for("every recipient to have it", lambda: _view_in(demo, doc_id, "delivered"))
    print(f"   the document is {view['state']}: every recipient has it")

    demo.step("The province checks each receipt it kept: signed by the recipient, for its package")
    for organ_id, receipt in verified_receipts(province.runtime, doc_id):
        print(
            f"   ✓ {NAMES[organ_id]}: status {receipt.status} for message …"
            f"{receipt.message_id[-12:]}, manifest {receipt.manifest_sha256[:12]}…, "
            f"received {clock_time(receipt.received_at)}"
        )

    demo.step("The recipients' people act; each move goes back as a signed status message")
    _act(there, "văn thư Sở Nội vụ", "register")
    _act(there, "giám đốc Sở Nội vụ", "assign")
    _act(there, "văn thư UBND thị xã", "register")
    _act(there, "văn thư UBND thành phố", "refuse", reason=REFUSAL)
    for agency in RECIPIENTS:
        expected = EXPECTED[agency[0]]
        _show(_until(demo, doc_id, agency, f"status {expected[1]}", _standing(expected)))
    view = wait_for("the refusal to count", lambda: _view_in(demo, doc_id, "failed"))
    print(f"   the document is {view['state']}: UBND thành phố Huế returned it")
    return view


def verified_receipts(runtime: Runtime, doc_id: str) -> list[tuple[str, Receipt]]:
    """Every receipt the province kept for the document, verified again now."""
    found = []
    with runtime.uow(readonly=True) as uow:
        dispatches = uow.dispatches.for_document(doc_id)
        trust = keystore.trust_material(uow, runtime.trust, [d.organ_id for d in dispatches])
        for dispatch in dispatches:
            kept = uow.dispatches.receipt(dispatch.id)
            sealed = uow.dispatches.sealed(dispatch.id)
            if kept is None or sealed is None:
                raise DemoFailed(f"no receipt is kept from {NAMES[dispatch.organ_id]}")
            body, cms = kept
            try:
                receipt = verify_receipt(
                    body,
                    cms,
                    trust,
                    expected_message_id=sealed.message_id,
                    # The package's digest is the receipt's word; the rest is checked.
                    expected_package_sha256=json.loads(body)["package_sha256"],
                    expected_manifest_sha256=json.loads(sealed.header)["manifest_sha256"],
                    expected_receiver=dispatch.organ_id,
                    expected_sender=json.loads(sealed.header)["sender"],
                    now=runtime.clock(),
                )
            except CongvanError as exc:
                raise DemoFailed(f"the receipt of {dispatch.organ_id}: {exc.message}") from exc
            found.append((dispatch.organ_id, receipt))
    return found


def _view_in(demo: Demo, doc_id: str, state: str) -> dict[str, Any] | None:
    view: dict[str, Any] = demo.call("văn thư", "GET", f"/v1/documents/{doc_id}", expect=200)
    return view if view["state"] == state else None


def _until(
    demo: Demo,
    doc_id: str,
    agency: tuple[str, str, str],
    what: str,
    done: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    """Poll the document until the agency's dispatch is ``done``."""

    def probe() -> dict[str, Any] | None:
        view = demo.call("văn thư", "GET", f"/v1/documents/{doc_id}", expect=200)
        [dispatch] = [d for d in view["dispatches"] if d["organ_id"] == agency[0]]
        return dispatch if done(dispatch) else None

    return wait_for(f"{agency[1]}: {what}", probe)


def _standing(expected: tuple[str, str]) -> Callable[[dict[str, Any]], bool]:
    """Whether a dispatch is in the state and at the status code ``expected``."""
    return lambda d: (d["state"], d["status_code"]) == expected


def _show(dispatch: dict[str, Any]) -> None:
    code = dispatch["status_code"]
    status = f"{code} {dispatch['status_label']}" if code else "no status yet"
    error = dispatch["status_reason"] or (
        dispatch["last_error"] if dispatch["state"] not in ("delivered", "acknowledged") else ""
    )
    print(
        f"   {NAMES[dispatch['organ_id']]}: {dispatch['state']} after {dispatch['attempts']} "
        f"attempt(s), {status}" + (f" — {error[:90]}" if error else "")
    )


def _act(there: Demo, who: str, event: str, **body: str) -> None:
    """One of the recipients' people fires ``event`` on letter 1227 as their agency got it."""
    [item] = there.call(who, "GET", "/v1/received", expect=200)["items"]
    done = there.call(
        who, "POST", f"/v1/received/{item['id']}/events/{event}", expect=200, json=body or None
    )
    after = there.call(who, "GET", f"/v1/received/{item['id']}", expect=200)
    number = f", số đến {after['register_number']}" if event == "register" else ""
    print(
        f"   {who}: {event} ({done['from_state']} → {done['to_state']}{number}) → status "
        f"{after['status_code']} {STATUS_LABEL[after['status_code']]}"
    )


def print_dispatches(demo: Demo, doc_id: str) -> None:
    """Each recipient's timeline: its dispatches' events (the document's, and a recall's or
    update's), each with the status code it stood at then, and the status messages it sent."""
    view = demo.call("văn thư", "GET", f"/v1/documents/{doc_id}", expect=200)
    history = _whole_history(demo, doc_id)
    # The status code each dispatch event reports (02-06 on the document's, 15/16 on a
    # request's), from the events status messages fire.
    reported_by = {event: code for code, event in STATUS_EVENTS.items()}
    print(f"\nDispatches of {view['notation']} ({view['state']}), recipient by recipient:")
    for d in view["dispatches"]:
        print(f"   {NAMES[d['organ_id']]} ({d['organ_id']})")
        asked = {
            r["dispatch_id"]: (q["kind"], r)
            for q in view["requests"]
            for r in q["recipients"]
            if r["organ_id"] == d["organ_id"]
        }
        seen: list[str] = []  # what it reported of the document so far
        # Told in the order they happened: by the second (a status message carries its
        # moment to the second, our entries to the microsecond), and within one, what we
        # did (a delivery) before what the recipient said, before what its word moved.
        lines: list[tuple[datetime, int, str]] = []
        for e in history:
            dispatch_id = e["payload"].get("dispatch_id") if "dispatch." in e["event"] else None
            if dispatch_id != d["id"] and dispatch_id not in asked:
                continue
            event = e["event"].removeprefix("dispatch.")
            if dispatch_id == d["id"]:
                if event in reported_by:
                    seen.append(reported_by[event])
                code = recipient_status(e["to_state"], seen)
                what = event
            else:
                code = reported_by.get(event) if event in ("agree", "decline") else None
                what = f"{asked[dispatch_id][0]}:{event}"
            status = f"{code} {STATUS_LABEL[code]}" if code else ""
            line = f"{what:<16} {e['from_state']:>12} → {e['to_state']:<12} {status}"
            answered = event in reported_by or event in ("agree", "decline")
            lines.append((datetime.fromisoformat(e["at"]), 2 if answered else 0, line))
        for r in d["reported"]:
            reason = f": {r['reason']}" if r["reason"] else ""
            said = f"signed status message {r['code']} {r['label']}{reason}"
            lines.append((datetime.fromisoformat(r["at"]), 1, said))
        for kind, r in asked.values():
            if r["status_code"] in ("15", "16"):
                reason = f": {r['reason']}" if r["reason"] else ""
                said = f"signed status message {r['status_code']} {r['status_label']}{reason}"
                lines.append(
                    (datetime.fromisoformat(r["updated_at"]), 1, f"{said} (to the {kind})")
                )
        ordered = sorted(lines, key=lambda item: (item[0].replace(microsecond=0), item[1]))
        for at, _rank, line in ordered:  # (stable: same second and kind, as read)
            print(f"      {clock_time(at)}  {line}")
    print(f"\n   {'recipient':<34} {'dispatch':<13} attempts  status (QCVN 102)")
    for d in view["dispatches"]:
        code = d["status_code"]
        status = f"{code} {d['status_label']}" if code else "—"
        reason = f": {d['status_reason']}" if d["status_reason"] else ""
        print(
            f"   {NAMES[d['organ_id']]:<34} {d['state']:<13} {d['attempts']:>8}  {status}{reason}"
        )


def _whole_history(demo: Demo, doc_id: str) -> list[dict[str, Any]]:
    """Every entry of the document's history, page after page."""
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = f"?limit=200{f'&cursor={cursor}' if cursor else ''}"
        page = demo.call("văn thư", "GET", f"/v1/documents/{doc_id}/history{query}", expect=200)
        entries += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return entries
