"""Duplicate checks: never the same number twice a year, never the same file twice."""

from __future__ import annotations

from congvan.states.policy import DEFAULT_NUMBERING, number_series, written_notation
from congvan.storage.duplicates import NUMBER_CHECK

from .registry import BLOCKING, CheckInput, Finding, check, fail, ok

MAIN_FILE_CHECK = "duplicates.main_file"
_VI = {"number": "số", "issued_on": "ngày ban hành"}


def compares_documents(code: str) -> bool:
    """Whether the check ``code`` judges a document against the agency's others: its
    verdict depends on what they hold when it is kept."""
    return code in (NUMBER_CHECK, MAIN_FILE_CHECK)


@check(
    NUMBER_CHECK,
    BLOCKING,
    "Số chưa dùng trong năm, trong hệ thống số của cơ quan",
    "The number is not used already this year in the agency's series",
)
def same_number(inp: CheckInput) -> Finding:
    doc = inp.document
    if not doc.number or not doc.issued_on:
        # Not a duplicate: what it would be compared by is missing (metadata.required
        # names it too), said as such.
        missing = "number" if not doc.number else "issued_on"
        return fail(
            f"Chưa đối chiếu được số trùng: văn bản chưa có {_VI[missing]}.",
            f"Whether the number is used already cannot be told: the document has no "
            f"{missing} yet.",
            field=missing,
            missing=missing,
        )
    numbering = inp.agency.numbering if inp.agency else DEFAULT_NUMBERING
    series = number_series(numbering, doc.as_dict())
    earlier = inp.uow.duplicates.same_number(
        doc.agency_id, doc.number, series, doc.issued_on[:4], exclude=doc.id
    )
    numbering = series.name
    if earlier:
        written = written_notation(earlier)
        return fail(
            f"Số {doc.number:02d} đã dùng cho văn bản {earlier['id']} ({written}, "
            f"{earlier['state']}) trong cùng hệ thống số.",
            f"Number {doc.number:02d} is used by document {earlier['id']} ({written}, "
            f"{earlier['state']}) in the same series.",
            earlier_document=earlier["id"],
            earlier_state=earlier["state"],
            earlier_notation=written,
            numbering=numbering,
        )
    return ok(numbering=numbering)


@check(
    MAIN_FILE_CHECK,
    BLOCKING,
    "Tệp chính chưa gửi cho cùng nơi nhận",
    "The main file was not sent to the same recipient before",
)
def same_file(inp: CheckInput) -> Finding:
    if not inp.main_files:
        return fail("Không có tệp chính để đối chiếu.", "No main file to compare.")
    organ_ids = [r.organ_id for r in inp.recipients]
    earlier = inp.uow.duplicates.sent_with_file(
        inp.document.agency_id,
        inp.main_files[0].sha256,
        organ_ids,
        exclude=inp.document.id,
        # A replacement may keep the file of what it replaces, and of what that replaced.
        replaced=inp.uow.documents.replaced_chain(inp.document.replaces_id),
    )
    if earlier:
        return fail(
            f"Tệp chính đã gửi tới {earlier['organ_id']} trong văn bản {earlier['id']}.",
            f"The main file was already sent to {earlier['organ_id']} in document {earlier['id']}.",
            earlier_document=earlier["id"],
            organ_id=earlier["organ_id"],
        )
    return ok()
