"""How documents look from the outside: plain dicts built from the repositories' records.

The engine records a create's first answer from here, in the create's own transaction,
and the API shows documents with the same function.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from congvan.actions.recalls import reached, replacement_held, uncorrected, was_updated
from congvan.states import DOCUMENT, allowed_events, policy
from congvan.states import dispatch as d
from congvan.states.dispatch import REJECTED, recipient_status
from congvan.states.document import DRAFT, ISSUED, SIGNED
from congvan.states.policy import SECRECY, URGENCY
from congvan.states.received import STATUS_LABEL
from congvan.storage.audit import timestamp
from congvan.storage.checks import StoredResult
from congvan.storage.dispatches import DispatchRow, StatusRow
from congvan.storage.documents import DocumentRow
from congvan.storage.unit_of_work import UnitOfWork


def notation(row: DocumentRow) -> str:
    """Số và ký hiệu as written on the document, e.g. ``1227/UBND-TĐKT``, ``05/2024/QĐ-UBND``."""
    return policy.written_notation(row.as_dict())


def summary(row: DocumentRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "agency_id": row.agency_id,
        "notation": notation(row),
        "doc_type": row.doc_type,
        "subject": row.subject,
        "urgency": row.urgency,
        "state": row.state,
        "version": row.version,
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
    }


def _failing(
    uow: UnitOfWork,
    row: DocumentRow,
    requests: list[dict[str, Any]],
    sending: list[DispatchRow],
    review: Sequence[StoredResult],
) -> tuple[str, ...]:
    """The conditions known not to hold, from what the view reads anyway: a request while
    a recipient's answer to the last one is awaited (one at a time), or while the document
    is still on its way to one; a resend with no dispatch failed for good, or once an
    update changed what the package says; a request when no recipient holds the document;
    a replacement's send while the document it replaces does not stand still;
    an approval of a revision not submitted, or whose ``review`` (its checks' results) is
    not finished or not cleared."""
    failing = []
    if any(r["state"] in d.UNANSWERED for q in requests for r in q["recipients"]):
        failing.append("no_request_awaiting")
    if row.state in ISSUED and any(x.state in d.ON_ITS_WAY for x in sending):
        failing.append("nothing_under_way")
    if row.state in ISSUED and not reached(uow, row.id):
        failing.append("a_recipient_holds_it")
    if (
        row.state in ISSUED
        and any(
            q["kind"] == "update" and r["state"] in (d.FAILED, REJECTED, d.DECLINED)
            for q in requests
            for r in q["recipients"]
        )
        and uncorrected(uow, row.id)
    ):
        failing.append("corrections_reached")
    if row.state == SIGNED and row.replaces_id and replacement_held(uow, row.id):
        failing.append("original_settled")  # the replaced one recalled, or still asked
    if row.state == DRAFT and not (review and all(r.cleared for r in review)):
        # Not submitted, its checks not run yet (the job records them all at once), or
        # one not cleared: approve's guard refuses it.
        failing.append("checks_cleared")
    if row.state == "failed":
        if not any(x.state == d.FAILED for x in sending):
            failing.append("a_dispatch_failed")
        elif was_updated(uow, row.id):
            failing.append("never_updated")
    return tuple(failing)


def _offered(
    row: DocumentRow, requests: list[dict[str, Any]], sending: list[DispatchRow], uow: UnitOfWork
) -> list[str]:
    """The events offered: declared from the state, less those known to be refused; a
    waiver is of a failed warning check of the revision in review, none waived yet."""
    review: Sequence[StoredResult] = ()
    if row.state == DRAFT and row.submitted_revision == row.revision:
        review = uow.checks.for_revision(row.id, row.revision)
    failing = _failing(uow, row, requests, sending, review)
    events = allowed_events(DOCUMENT, row.state, failing=failing)
    if not any(r.waivable for r in review):
        events = [e for e in events if e != "waive"]
    return events


def document_view(uow: UnitOfWork, row: DocumentRow) -> dict[str, Any]:
    """Everything about a document, including what it waits for and until when."""
    doc_id = row.id
    jobs = uow.outbox.for_document(doc_id)
    timers = uow.timers.for_document(doc_id)
    statuses = uow.dispatches.statuses_by_dispatch(doc_id)
    requests = requests_view(uow, doc_id, statuses)
    sending = uow.dispatches.for_document(doc_id)
    return {
        **summary(row),
        "number": row.number,
        "symbol": row.symbol,
        "legal_normative": bool(row.legal_normative),
        "place": row.place,
        "issued_on": row.issued_on,
        "content": row.content,
        "signer": {
            "name": row.signer_name,
            "position": row.signer_position,
            "competence": row.signer_competence,
        },
        "urgency_label": URGENCY.get(row.urgency, ""),
        "secrecy": row.secrecy,
        "secrecy_label": SECRECY.get(row.secrecy, ""),
        "due_date": row.due_date,
        "appointed_at": row.appointed_at,
        "created_by": row.created_by,
        "allowed_events": _offered(row, requests, sending, uow),
        "recipients": [dataclasses.asdict(r) for r in uow.documents.recipients(doc_id)],
        "attachments": [dataclasses.asdict(a) for a in uow.documents.attachments(doc_id)],
        "dispatches": _with_recalls(
            [dispatch_view(x, statuses.get(x.id, [])) for x in sending],
            requests,
        ),
        "jobs": [
            {"id": j.id, "action": j.action, "status": j.status, "attempts": j.attempts}
            for j in jobs
        ],
        "waiting_for": [
            {"kind": t.kind, "ref_id": t.ref_id, "until": timestamp(t.due_at)} for t in timers
        ],
        "timeliness": signing_timeliness(uow, doc_id),
        "sending": sending_timeliness(uow, doc_id),
        "revision": row.revision,
        "submitted_revision": row.submitted_revision,
        "signer_user": row.signer_user,
        "audit_head": row.audit_head,
        "replaces": row.replaces_id,
        "replace_reason": row.replace_reason or None,
        "replaced_by": uow.documents.replaced_by(doc_id),
        "requests": requests,
    }


def _with_recalls(
    dispatches: list[dict[str, Any]], requests: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each recipient's dispatch, at 15 where it agreed to a recall: its copy is cancelled
    there, whatever it reported of it before (Decree 30 Art. 18); with the updates it
    refused or never got, whose corrections its copy lacks."""
    recalled = {
        r["organ_id"]
        for request in requests
        if request["kind"] == "recall"
        for r in request["recipients"]
        if r["answer"] == "agreed"
    }
    uncorrected: dict[str, list[dict[str, Any]]] = {}
    for request in requests:
        if request["kind"] != "update":
            continue
        for r in request["recipients"]:
            if r["answer"] in ("refused", "undelivered"):
                uncorrected.setdefault(r["organ_id"], []).append(
                    {
                        "request_id": request["id"],
                        "answer": r["answer"],
                        "reason": r["reason"],
                        "fields": sorted(request["changes"] or {}),
                    }
                )
    for view in dispatches:
        if view["organ_id"] in recalled:
            view["status_code"] = d.RECALL_AGREED
            view["status_label"] = STATUS_LABEL[d.RECALL_AGREED]
        view["uncorrected"] = uncorrected.get(view["organ_id"], [])
    return dispatches


# QCVN 102's 13: the sender asked to take the document back (yêu cầu lấy lại); a recall's
# recipient stands there until it answers (15 or 16).
ASKED_BACK = ("13", "asked to give it back (yêu cầu lấy lại)")

# How a request's recipient stands, by its dispatch's state.
_ANSWER = {
    d.PENDING: "sending",
    d.SENDING: "sending",
    d.DELIVERED: "awaiting_answer",
    d.AGREED: "agreed",
    d.DECLINED: "refused",
    d.REJECTED: "undelivered",
    d.FAILED: "undelivered",
}


def requests_view(
    uow: UnitOfWork, doc_id: str, statuses: dict[str, list[StatusRow]]
) -> list[dict[str, Any]]:
    """The document's recalls and updates, oldest first, with each recipient's answer."""
    by_request: dict[str, list[DispatchRow]] = {}
    for row in uow.dispatches.for_requests(doc_id):
        by_request.setdefault(row.request_id, []).append(row)
    views = []
    for request_id, rows in by_request.items():
        header = json.loads(uow.dispatches.header_of(rows[0].id) or b"{}")
        recipients = []
        asks_back = header.get("business_type") == "recall"
        for row in rows:
            answer = next((s for s in statuses.get(row.id, []) if s.code in ("15", "16")), None)
            code, label = (
                (answer.code, STATUS_LABEL[answer.code])
                if answer
                else ASKED_BACK
                if asks_back and row.state == d.DELIVERED
                else (None, None)
            )
            recipients.append(
                {
                    "organ_id": row.organ_id,
                    "dispatch_id": row.id,
                    "message_id": row.message_id,
                    "state": row.state,
                    "answer": _ANSWER[row.state],
                    "status_code": code,
                    "status_label": label,
                    "reason": (answer.reason or None)
                    if answer
                    else (row.last_error or None if row.state == REJECTED else None),
                    "updated_at": timestamp(row.updated_at),
                }
            )
        views.append(
            {
                "id": request_id,
                "kind": header.get("business_type"),
                "reason": header.get("reason"),
                "changes": header.get("changes"),
                "sent_at": header.get("sent_at"),
                "outcome": _outcome({str(r["answer"]) for r in recipients}),
                "recipients": recipients,
            }
        )
    return sorted(views, key=lambda v: str(v["sent_at"]))


def _outcome(answers: set[str]) -> str:
    """A request's outcome from its recipients' answers: awaited while one is; once all
    answered, agreed by all, partly (some agreed, the rest refused or never got it),
    refused, or undelivered."""
    if answers & {"sending", "awaiting_answer"}:
        return "awaiting_answer"
    if answers == {"agreed"}:
        return "agreed"
    if "agreed" in answers:
        return "partly_agreed"
    return "refused" if "refused" in answers else "undelivered"


def dispatch_view(row: DispatchRow, statuses: list[StatusRow]) -> dict[str, Any]:
    """One recipient's dispatch, with the QCVN 102 status code it stands at (domain.md §3)."""
    code = recipient_status(row.state, (s.code for s in statuses))
    reason = next((s.reason for s in statuses if s.code == "02"), None)
    if reason is None and row.state == REJECTED:
        reason = row.last_error  # refused at the inbox: the receiver's answer
    return {
        "id": row.id,
        "organ_id": row.organ_id,
        "state": row.state,
        "status_code": code,
        "status_label": STATUS_LABEL[code] if code else None,
        "status_reason": reason,
        "reported": [
            {
                "code": s.code,
                "label": STATUS_LABEL[s.code],
                "reason": s.reason or None,
                "at": timestamp(s.at),
                "staff": _staff_of(s.body),
            }
            for s in statuses
        ],
        "attempts": row.attempts,
        "last_error": row.last_error,
        "updated_at": timestamp(row.updated_at),
    }


def _staff_of(body: bytes) -> str | None:
    """Who the recipient says did what a status message reports (verified as it came)."""
    try:
        staff = json.loads(body).get("staff")
    except (ValueError, AttributeError):
        return None
    return staff if isinstance(staff, str) else None


def sending_timeliness(uow: UnitOfWork, document_id: str) -> dict[str, Any] | None:
    """The send as the outgoing register judged it (the latest ``send`` entry)."""
    sends = uow.audit.entries(document_id, "send")
    judged = sends[-1].payload.get("sending") if sends else None
    return dict(judged) if judged else None


def signing_timeliness(uow: UnitOfWork, document_id: str) -> dict[str, Any] | None:
    """The timeliness judged when the document was signed, as the trail keeps it."""
    signings = uow.audit.entries(document_id, "sign")
    if not signings:
        return None
    entry = signings[-1]
    payload = entry.payload
    if "timeliness" in payload:
        return dict(payload["timeliness"])
    # Signed before the whole judgment was kept: the send-by moment and the late flag.
    return {
        "signed_at": timestamp(entry.at),
        "send_by": payload.get("send_by"),
        "reviewed_at": None,
        "dated_send_by": payload.get("late"),
        "late": "late" in payload,
        "late_by_hours": None,
        "late_by_working_days": None,
        "review_to_signing_working_days": None,
        "sign_within_working_days": None,
        "signed_long_after_review": None,
    }
