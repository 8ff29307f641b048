"""A document as ``congvan documents show`` prints it: plain lines from its view."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from congvan.states.timeliness import shown_on_the_clock


def _when(moment: str | None) -> str:
    """An ISO moment in Vietnam time, to the minute, as clerks read it."""
    if not moment:
        return "—"
    return shown_on_the_clock(datetime.fromisoformat(moment))


def document_lines(view: Mapping[str, Any]) -> list[str]:
    """What a clerk or supervisor reads first: the document, its signer, its timeliness."""
    signer = view["signer"]
    kind = " (văn bản quy phạm pháp luật)" if view.get("legal_normative") else ""
    lines = [
        f"document      {view['id']} {view['notation'] or '—'}{kind}",
        f"state         {view['state']} (version {view['version']}, revision {view['revision']})",
        f"type          {view['doc_type']}, dated {view['issued_on'] or '—'}, "
        f"urgency {view['urgency_label'] or view['urgency']}",
        f"subject       {view['subject']}",
        f"signer        {signer['name'] or '—'}, {signer['position'] or '—'}"
        + (f" ({' '.join((signer['competence'] or '').split())})" if signer["competence"] else ""),
    ]
    lines += timeliness_lines(view.get("timeliness"))
    lines += sending_lines(view.get("sending"))
    lines += recipient_lines(view["dispatches"])
    lines += request_lines(view.get("requests") or [])
    if view.get("replaces"):
        lines.append(f"replaces      {view['replaces']}: {view.get('replace_reason') or '—'}")
    lines += [f"replaced by   {r}" for r in view.get("replaced_by") or []]
    lines += [f"waiting for   {w['kind']} until {_when(w['until'])}" for w in view["waiting_for"]]
    return lines


def recipient_lines(dispatches: Iterable[Mapping[str, Any]]) -> list[str]:
    """Each recipient's dispatch and the QCVN 102 status code it stands at."""
    lines = []
    for d in dispatches:
        status = f"{d['status_code']} {d['status_label']}" if d["status_code"] else "—"
        reason = f": {d['status_reason']}" if d["status_reason"] else ""
        lines.append(f"recipient     {d['organ_id']}  {d['state']:<12} {status}{reason}")
    return lines


def request_lines(requests: Iterable[Mapping[str, Any]]) -> list[str]:
    """Each recall or update sent, its outcome, and every recipient's answer (15, 16)."""
    lines = []
    for q in requests:
        lines.append(f"{q['kind']:<13} {_when(q['sent_at'])} {q['outcome']}")
        lines.append(f"  asked for   {q['reason']}")  # the sender's reason, not an answer's
        for r in q["recipients"]:
            code = f" {r['status_code']}" if r["status_code"] else ""
            reason = f": {r['reason']}" if r["reason"] else ""
            lines.append(f"  answer      {r['organ_id']}  {r['answer']}{code}{reason}")
    return lines


def sending_lines(judged: Mapping[str, Any] | None) -> list[str]:
    """When it was sent, and whether after the send-by moment its signing set."""
    if not judged:
        return []
    lines = [f"sent at       {_when(judged['sent_at'])}"]
    if judged.get("late"):
        lines.append(
            f"LATE          sent {judged['late_by_hours']} hour(s) after "
            f"{_when(judged.get('send_by'))}, when it had to go out"
        )
    return lines


def timeliness_lines(judged: Mapping[str, Any] | None) -> list[str]:
    """The signing's timeliness as judged when it was signed; nothing before signing."""
    if not judged:
        return []
    lines = [
        f"reviewed at   {_when(judged.get('reviewed_at'))}",
        f"signed at     {_when(judged['signed_at'])}",
        f"send by       {_when(judged.get('send_by'))}",
    ]
    if judged.get("late"):
        by = judged.get("late_by_hours")
        days = judged.get("late_by_working_days")
        amount = "" if by is None else f" by {by} hour(s), {days} working day(s)"
        lines.append(
            f"LATE          signed after {_when(judged.get('dated_send_by'))}, when a "
            f"document of its date had to be sent{amount}"
        )
    if judged.get("signed_long_after_review"):
        lines.append(
            f"LATE          signed {judged['review_to_signing_working_days']} working day(s) "
            f"after review; at most {judged['sign_within_working_days']}"
        )
    return lines
