"""Authority check: the signer may sign this type of document for this agency, then."""

from __future__ import annotations

from congvan.states.format_rules import competence_line, grants_competence

from .registry import BLOCKING, CheckInput, Finding, check, fail, ok


@check(
    "authority.signer",
    BLOCKING,
    "Người ký có thẩm quyền ký loại văn bản này",
    "The signer holds authority for this agency and document type",
)
def signer_authority(inp: CheckInput) -> Finding:
    doc = inp.document
    signer = (doc.signer_user or "").strip()
    if not signer:
        return fail("Chưa chỉ định người ký.", "No signer is named.", field="signer_user")
    on = doc.issued_on or inp.today.isoformat()
    authorities = inp.uow.authorities.holdings(doc.agency_id, signer, doc.doc_type, on)
    if not authorities:
        return fail(
            f"'{signer}' không có thẩm quyền ký {doc.doc_type} của cơ quan vào ngày {on}.",
            f"'{signer}' holds no authority to sign {doc.doc_type} for the agency on {on}.",
            signer=signer,
            doc_type=doc.doc_type,
            on=on,
        )
    competence = competence_line(doc.signer_competence or "")
    # A signer may hold several authorities at once (KT. for letters, TM. for decisions):
    # any one that names this competence, or its signer's own line, or none, will do.
    held = next(
        (a for a in authorities if grants_competence(a.competence or "", competence)),
        authorities[0],
    )
    if not grants_competence(held.competence or "", competence):
        return fail(
            f"Thẩm quyền ký là '{held.competence}', văn bản ghi '{competence}'.",
            f"The authority is '{held.competence}' but the document says '{competence}'.",
            field="signer_competence",
            expected=held.competence,
            value=competence,
        )
    return ok(authority_id=held.id, valid_from=held.valid_from, valid_until=held.valid_until)
