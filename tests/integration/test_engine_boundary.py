"""The engine itself puts text in NFC and checks agency identifiers: every caller passes
there (the API, the CLI, jobs), so none can store what the HTTP layer would refuse."""

from __future__ import annotations

import unicodedata

import pytest

from congvan.states.errors import InvalidInput
from congvan.workflow.bootstrap import Runtime
from tests.factories import actor, create_document

DECOMPOSED = unicodedata.normalize("NFD", "V/v thi đua, khen thưởng")


def test_text_is_stored_in_nfc_whoever_calls(runtime: Runtime) -> None:
    doc_id = create_document(
        runtime,
        subject=DECOMPOSED,
        recipients=[
            {"organ_id": "000.00.01.H57", "name": unicodedata.normalize("NFD", "Sở Nội vụ")}
        ],
    )
    runtime.engine.fire(
        doc_id,
        "edit",
        actor("clerk"),
        data={"fields": {"place": unicodedata.normalize("NFD", "Thành phố Huế")}},
    )
    with runtime.uow(readonly=True) as uow:
        doc = uow.documents.load(doc_id)
        (recipient,) = uow.documents.recipients(doc_id)
    assert doc.subject == unicodedata.normalize("NFC", DECOMPOSED) != DECOMPOSED
    assert doc.place == "Thành phố Huế"
    assert recipient.name == "Sở Nội vụ"


@pytest.mark.parametrize("organ_id", ["000.00.01.H57\n", "h57", "", "000..H57"])
def test_a_malformed_recipient_is_refused_by_the_engine(runtime: Runtime, organ_id: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        create_document(runtime, recipients=[{"organ_id": organ_id, "name": "x"}])
    assert refused.value.details["field"] == "recipients"
    doc_id = create_document(runtime)
    with pytest.raises(InvalidInput):
        runtime.engine.fire(
            doc_id, "edit", actor("clerk"), data={"recipients": [{"organ_id": organ_id}]}
        )
