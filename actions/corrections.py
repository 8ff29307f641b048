"""An update's corrections (cập nhật, QCVN 102 business type 2): which fields it may
correct and to what, checked once where the sender takes them (``checked_changes``, at
``send`` of the update) and again with the document they correct (``apply_update``, at
each end): a correction fixes how the document is written, never who signed it, its
year or a deadline already gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from cryptography.hazmat.primitives.serialization import pkcs7

from congvan.states.certificates import CertificateDescription, comparable
from congvan.states.document import UPDATABLE
from congvan.states.errors import InvalidInput
from congvan.states.fields import FIELDS, REQUIRED_AT_REVIEW
from congvan.states.text import calendar_day, has_visible_text, value_problem
from congvan.states.timeliness import in_vietnam

from .context import TransitionContext
from .signing.description import describe
from .signing.keystore import fingerprint


def checked_changes(fields: Any, today: date | None = None) -> dict[str, str | None]:
    """An update's corrected fields: some of ``UPDATABLE``, each text, a date or cleared;
    with ``today`` (Vietnam time), a due date not gone by then."""
    if not isinstance(fields, Mapping) or not fields:
        raise InvalidInput(
            f"An update names the fields it corrects: {', '.join(UPDATABLE)}.", field="fields"
        )
    changes: dict[str, str | None] = {}
    for name, value in fields.items():
        if name not in UPDATABLE:
            raise InvalidInput(
                f"An update corrects only {', '.join(UPDATABLE)}.",
                field=f"fields.{str(name)[:50]}",
                takes=list(UPDATABLE),
            )
        spec = FIELDS[name]
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"{name} is text or null.", field=f"fields.{name}")
        if value is not None and not has_visible_text(value):
            value = None
        if value is None and name in REQUIRED_AT_REVIEW:
            # What review requires a document to have, a correction cannot take away
            # (and the recipient would refuse the update).
            raise InvalidInput(f"The {name} cannot be cleared.", field=f"fields.{name}")
        if value is not None and spec.max_length is not None and len(value) > spec.max_length:
            raise InvalidInput(
                f"{name} holds at most {spec.max_length} characters.", field=f"fields.{name}"
            )
        if value is not None and spec.kind == "date":
            try:
                calendar_day(value)
            except ValueError as exc:
                raise InvalidInput(
                    f"{name} is a date, YYYY-MM-DD.", field=f"fields.{name}"
                ) from exc
        # What the package's manifest will be held to, here first: else the recipient
        # (or the sealing of the request) would refuse what was taken.
        problem = None if value is None else value_problem(spec, value)
        if problem is not None:
            raise InvalidInput(f"{name} {problem}.", field=f"fields.{name}")
        if name == "due_date" and value is not None and today is not None:
            _check_not_gone(value, today)
        changes[name] = value
    return changes


def _check_not_gone(due: str, today: date) -> None:
    if calendar_day(due) < today:
        raise InvalidInput(
            f"The corrected due date {due} has passed (today is {today}).",
            field="fields.due_date",
        )


def apply_update(ctx: TransitionContext) -> None:
    """Correct the issued document's metadata; the audit keeps the old values."""
    changes = checked_changes(ctx.data.get("fields"))
    before = ctx.uow.documents.load(ctx.document.id)
    changed = {k: v for k, v in changes.items() if (getattr(before, k) or None) != v}
    if not changed:
        raise InvalidInput("The update changes nothing.", field="fields")
    check_corrected(
        changed,
        {"issued_on": before.issued_on, "due_date": before.due_date},
        signer=_signer(ctx) if _SIGNER_FIELDS.keys() & changed.keys() else None,
        signed_on=_signed_on(ctx) if "issued_on" in changed else None,
        today=in_vietnam(ctx.now).date(),
    )
    stored = {k: ("" if v is None and not FIELDS[k].nullable else v) for k, v in changed.items()}
    ctx.uow.documents.set_fields(ctx.document.id, stored)
    ctx.audit["changed"] = {k: {"from": getattr(before, k), "to": v} for k, v in changed.items()}


def check_corrected(
    changed: Mapping[str, str | None],
    current: Mapping[str, str | None],
    *,
    signer: CertificateDescription | None,
    signed_on: date | None,
    today: date | None,
) -> None:
    """An update's ``changed`` fields, against the document as it stands (``current``:
    its ``issued_on`` and ``due_date``): the signer as its signature's certificate
    (``signer``) names them, the date of issue in its year and not after ``signed_on``,
    a due date not before the date of issue (and, with ``today``, not gone). The sender
    checks its own update so; the recipient checks what it is asked to agree to, as an
    update corrects how a document is written, never who signed it or its year."""
    issued_on = changed.get("issued_on", current.get("issued_on"))
    if "issued_on" in changed:
        _check_redated(current.get("issued_on"), changed["issued_on"], signed_on)
    if signer is not None:
        _check_signer_named(signer, changed)
    due = changed.get("due_date")
    if due:
        _check_due(due, issued_on, today)
    else:
        # Redated past the due date it keeps: as wrong as a due date set before the date
        kept = changed.get("due_date", current.get("due_date"))
        redated = changed.get("issued_on")
        if redated and kept and calendar_day(kept) < calendar_day(redated):
            raise InvalidInput(
                f"The date of issue {changed['issued_on']} would come after the due date "
                f"{kept}: correct both.",
                field="fields.issued_on",
            )


_SIGNER_FIELDS = {"signer_name": "common_name", "signer_position": "title"}


def _signer(ctx: TransitionContext) -> CertificateDescription | None:
    """Who the document's signature's certificate names (None: no readable signature,
    which its verification says)."""
    signature = ctx.uow.signatures.latest_signature(ctx.document.id)
    if signature is None:
        return None
    certificate = next(
        (
            c
            for c in pkcs7.load_der_pkcs7_certificates(bytes(signature.cms))
            if fingerprint(c) == signature.certificate_fingerprint
        ),
        None,
    )
    return None if certificate is None else describe(certificate)


def _signed_on(ctx: TransitionContext) -> date:
    signings = ctx.uow.audit.entries(ctx.document.id, "sign")
    return in_vietnam(signings[-1].at if signings else ctx.now).date()


def _check_signer_named(named: CertificateDescription, changed: Mapping[str, str | None]) -> None:
    """An update corrects how the signer is written, never who signed: the certificate of
    the document's signature still names what the corrected fields say (compared as the
    verification compares them: case, spacing and Unicode form aside)."""
    for field, value in changed.items():
        if field not in _SIGNER_FIELDS:
            continue
        in_certificate = getattr(named, _SIGNER_FIELDS[field])
        if comparable(value or "") != comparable(in_certificate):
            raise InvalidInput(
                f"An update corrects how the signer is written, not who signed: the "
                f"signature's certificate names {in_certificate!r} as its {field}.",
                field=f"fields.{field}",
                certificate=in_certificate,
            )


def _check_redated(issued_on: str | None, corrected: str | None, signed_on: date | None) -> None:
    """A corrected date of issue stays in its year (the number is the year's: moved to
    another, it would be free again in this one and taken twice in that one), and not
    after the document was signed."""
    if not issued_on or not corrected:
        return
    if corrected[:4] != issued_on[:4]:
        raise InvalidInput(
            f"The date of issue stays in {issued_on[:4]}: the number {issued_on[:4]} gave it "
            "is that year's (a document of another year is a replacement).",
            field="fields.issued_on",
        )
    if signed_on is not None and calendar_day(corrected) > signed_on:
        raise InvalidInput(
            f"The date of issue cannot come after the document was signed ({signed_on}).",
            field="fields.issued_on",
        )


def _check_due(due: str, issued_on: str | None, today: date | None) -> None:
    """A corrected due date is still ahead (today counts) and not before the date of
    issue: review would flag either on a document, and a recipient has no use for a
    deadline already gone."""
    if today is not None:
        _check_not_gone(due, today)
    if issued_on and calendar_day(due) < calendar_day(issued_on):
        raise InvalidInput(
            f"The due date {due} comes before the date of issue {issued_on}.",
            field="fields.due_date",
        )
