"""A signer's competence over HTTP: which signing authority covers which signer block.

A deputy's authority names the deputy's own line (``KT. CHỦ TỊCH``); the document's signer
block may stack the collective body's line above it (``TM. ỦY BAN NHÂN DÂN`` /
``KT. CHỦ TỊCH``, Decree 30/2020 Appendix I). The authority is matched on that own line,
or on the whole block when it names the whole block; an acting head's ``Q.`` likewise.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest

from tests.api.conftest import LETTER, Api, B, assert_error
from tests.api.test_authorities_api import add_signer_user, grant, granted, listed
from tests.api.test_review_flow_api import (
    SIGNER_NAME,
    SIGNER_USER,
    approve,
    failed,
    printing,
    submit_and_check,
    today,
)

BLOCK = "TM. ỦY BAN NHÂN DÂN\nKT. CHỦ TỊCH"


def letter(api: Api, **overrides: Any) -> str:
    """A draft of letter 1227 that SIGNER_USER (PHÓ CHỦ TỊCH) signs; returns its id."""
    metadata = {
        **LETTER,
        "issued_on": today(api).isoformat(),
        "signer_name": SIGNER_NAME,
        "signer_user": SIGNER_USER,
        "recipients": [{"organ_id": B, "name": "Sở Nội vụ tỉnh Thừa Thiên Huế"}],
        **overrides,
    }
    files = [("main", ("1227-UBND-TDKT.pdf", printing(metadata), "application/pdf"))]
    return str(api.draft(metadata=metadata, files=files)["id"])


@pytest.mark.parametrize(
    ("authority", "written", "status"),
    [
        ("KT. CHỦ TỊCH", BLOCK, "passed"),
        ("TM. ỦY BAN NHÂN DÂN KT. CHỦ TỊCH", BLOCK, "passed"),
        ("TM.  ỦY BAN NHÂN DÂN  KT. CHỦ TỊCH", "TM. ỦY BAN NHÂN DÂN KT. CHỦ TỊCH", "passed"),
        ("TM. ỦY BAN NHÂN DÂN KT. CHỦ TỊCH", "KT. CHỦ TỊCH", "failed"),
        ("KT. CHỦ TỊCH", "TM. HỘI ĐỒNG NHÂN DÂN\nKT. CHỦ TỊCH", "passed"),
        ("TM. ỦY BAN NHÂN DÂN KT. CHỦ TỊCH", "TM. HỘI ĐỒNG NHÂN DÂN\nKT. CHỦ TỊCH", "failed"),
    ],
    ids=[
        "own KT. line under TM.",
        "whole block on one line, written on two",
        "whole block granted with extra spaces",
        "block granted, KT. written alone",
        "own KT. line under another body's TM.",
        "block granted for another body",
    ],
)
def test_a_deputys_authority_is_matched_on_the_block_or_its_own_line(
    api: Api, authority: str, written: str, status: str
) -> None:
    # Given the deputy chairman granted this competence
    add_signer_user(api)
    granted(api, competence=authority)

    # When a letter with this signer block is checked
    checks = submit_and_check(api, letter(api, signer_competence=written))

    # Then the authority covers it when the block, or its own KT. line, is what was granted
    assert status == checks["authority.signer"]["status"], checks["authority.signer"]


def test_a_deputy_granted_kt_signs_for_the_committee_and_is_approved(api: Api) -> None:
    # Given the deputy chairman granted "KT. CHỦ TỊCH"
    add_signer_user(api)
    granted(api, competence="KT. CHỦ TỊCH")

    # When he signs a letter "TM. ỦY BAN NHÂN DÂN / KT. CHỦ TỊCH"
    doc_id = letter(api, signer_competence=BLOCK)
    checks = submit_and_check(api, doc_id)

    # Then every check passes and the reviewer approves it
    assert set() == failed(checks), checks
    assert 200 == approve(api, doc_id).status_code


@pytest.mark.parametrize(
    ("authority", "status"),
    [("Q. CHỦ TỊCH", "passed"), ("TM. ỦY BAN NHÂN DÂN Q. CHỦ TỊCH", "passed"), ("", "failed")],
    ids=["own Q. line", "whole block", "an authority naming no competence"],
)
def test_an_acting_head_under_tm_needs_an_authority_naming_q(
    api: Api, authority: str, status: str
) -> None:
    # Given the signer granted this competence
    add_signer_user(api)
    granted(api, competence=authority)

    # When he signs "TM. ỦY BAN NHÂN DÂN / Q. CHỦ TỊCH"
    block = "TM. ỦY BAN NHÂN DÂN\nQ. CHỦ TỊCH"
    checks = submit_and_check(api, letter(api, signer_competence=block))

    # Then the signer block passes only with an authority naming Q. CHỦ TỊCH
    assert status == checks["format.signer_block"]["status"], checks["format.signer_block"]


@pytest.mark.parametrize(
    "competence",
    ["kt. chủ tịch", "KT CHỦ TỊCH", "CHỦ TỊCH", "TUQ. CHỦ TỊCH KT. CHÁNH VĂN PHÒNG", "KT."],
)
def test_an_authority_naming_no_signer_block_is_refused(api: Api, competence: str) -> None:
    # Given a signer
    add_signer_user(api)

    # When an authority is granted with a competence no signer block can read
    response = grant(api, competence=competence)

    # Then it is refused, naming the field
    assert "competence" == assert_error(response, 422, "invalid_input")["field"]


def test_an_authority_keeps_its_block_in_nfc_with_single_spaces(api: Api) -> None:
    add_signer_user(api)

    body = granted(
        api, competence=unicodedata.normalize("NFD", " TM.  ỦY BAN NHÂN DÂN KT. CHỦ TỊCH ")
    )

    assert "TM. ỦY BAN NHÂN DÂN KT. CHỦ TỊCH" == body["competence"]
    assert [body] == [a for a in listed(api) if a["id"] == body["id"]]
