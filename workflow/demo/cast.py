"""Who and what the demo plays with: agencies of Thừa Thiên Huế, their people, letter 1227.

The province's installation serves the Ủy ban nhân dân tỉnh and its office; the
recipients' installation serves the four agencies letter 1227 goes to. Each has its own
database, certification authority and HTTP server.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from congvan.actions.signing import keystore
from congvan.storage.signatures import CertificateRow
from congvan.storage.unit_of_work import UnitOfWork

from ..directory import add_agency, create_token, ensure_user

PROVINCE = ("000.00.00.H57", "Ủy ban nhân dân tỉnh Thừa Thiên Huế", "UBND")
OFFICE = ("000.00.01.H57", "Văn phòng Ủy ban nhân dân tỉnh Thừa Thiên Huế", "VPUBND")
DEPARTMENT = ("000.00.11.H57", "Sở Nội vụ tỉnh Thừa Thiên Huế", "SNV")
HEALTH = ("000.00.18.H57", "Sở Y tế tỉnh Thừa Thiên Huế", "SYT")
CITY = ("000.00.31.H57", "Ủy ban nhân dân thành phố Huế", "UBND")
TOWN = ("000.00.33.H57", "Ủy ban nhân dân thị xã Hương Thủy", "UBND")
RECIPIENTS = (DEPARTMENT, HEALTH, CITY, TOWN)
SIGNER = ("pct", "Nguyễn Văn Phương", "Phó Chủ tịch")
PROVINCE_PEOPLE = {
    "văn thư": (PROVINCE[0], "vanthu", ["clerk"], "Trần Thị Lan", "Văn thư"),
    "chuyên viên": (
        PROVINCE[0],
        "chuyenvien",
        ["reviewer"],
        "Lê Văn Hùng",
        "Chuyên viên Ban Thi đua - Khen thưởng",
    ),
    "lãnh đạo": (PROVINCE[0], SIGNER[0], ["signer"], SIGNER[1], SIGNER[2]),
    "chánh văn phòng": (PROVINCE[0], "chanhvp", ["supervisor"], "Hồ Thị Mai", "Chánh Văn phòng"),
    # Another agency on the province's installation: it sees none of the province's drafts.
    "văn thư Văn phòng": (OFFICE[0], "vanthu", ["clerk"], "Võ Thị Hằng", "Văn thư"),
}
# The recipients' people: a clerk (văn thư) of each agency, and the director of the Sở
# Nội vụ, who assigns what it registered.
RECIPIENT_PEOPLE = {
    "văn thư Sở Nội vụ": (DEPARTMENT[0], "vanthu", ["clerk"], "Phạm Thị Hoa", "Văn thư"),
    "giám đốc Sở Nội vụ": (DEPARTMENT[0], "giamdoc", ["signer"], "Trần Văn Nam", "Giám đốc"),
    "văn thư Sở Y tế": (HEALTH[0], "vanthu", ["clerk"], "Lê Thị Hạnh", "Văn thư"),
    "văn thư UBND thành phố": (CITY[0], "vanthu", ["clerk"], "Nguyễn Thị Thu", "Văn thư"),
    "văn thư UBND thị xã": (TOWN[0], "vanthu", ["clerk"], "Hoàng Văn Minh", "Văn thư"),
}


def letter_1227(today: str) -> dict[str, Any]:
    """The sample letter's metadata as a clerk enters it (Decree 30 format fields).

    The demo re-issues it today: a letter dated years ago would (rightly) draw the
    timeliness warning.
    """
    return {
        "number": 1227,
        "symbol": "UBND-TĐKT",
        "doc_type": "CV",
        "subject": "V/v tăng cường gửi, nhận văn bản điện tử giữa các cơ quan hành chính "
        "nhà nước nhằm phòng, chống dịch COVID-19",
        "place": "Thừa Thiên Huế",
        "issued_on": today,
        "signer_name": SIGNER[1],
        "signer_position": "PHÓ CHỦ TỊCH",
        "signer_competence": "KT. CHỦ TỊCH",
        "signer_user": SIGNER[0],
        "urgency": 0,
        "recipients": [{"organ_id": organ_id, "name": name} for organ_id, name, _ in RECIPIENTS],
    }


def set_up(runtime: Any, passphrase: str) -> dict[str, str]:
    """The province's installation: its agencies, CA, people, signer and agency key."""
    now = runtime.clock()
    with runtime.uow() as uow:
        # The recipients are in its directory (names on the letter); peers come later.
        tokens = _found(
            uow, runtime, (PROVINCE, OFFICE, *RECIPIENTS), PROVINCE_PEOPLE, passphrase, now
        )
        issue_signer(uow, runtime, passphrase, now)
        keystore.issue_agency(
            uow, PROVINCE[0], passphrase=passphrase, crl_url=runtime.settings.crl_url, now=now
        )
        uow.commit()
    print(
        "   the province: a test certification authority, the Phó Chủ tịch's certificate "
        "and the province's organisational certificate"
    )
    return tokens


def set_up_recipients(runtime: Any, passphrase: str) -> dict[str, str]:
    """The recipients' installation: four agencies, each with its key and its people."""
    now = runtime.clock()
    with runtime.uow() as uow:
        tokens = _found(uow, runtime, RECIPIENTS, RECIPIENT_PEOPLE, passphrase, now)
        for agency_id, _name, _abbreviation in RECIPIENTS:
            keystore.issue_agency(
                uow, agency_id, passphrase=passphrase, crl_url=runtime.settings.crl_url, now=now
            )
        uow.commit()
    print(
        f"   the recipients: their own certification authority and {len(RECIPIENTS)} "
        "organisational certificates, one per agency, whose keys stay there"
    )
    return tokens


def _found(
    uow: UnitOfWork,
    runtime: Any,
    agencies: tuple[tuple[str, str, str], ...],
    people: dict[str, tuple[str, str, list[str], str, str]],
    passphrase: str,
    now: datetime,
) -> dict[str, str]:
    """A new installation's agencies, its CA (named after the first) and its people,
    each with a token, by the role the demo calls them by."""
    for agency_id, name, abbreviation in agencies:
        add_agency(uow, agency_id, name, abbreviation, now)
    keystore.init_ca(
        uow,
        f"congvan demo CA ({agencies[0][2]} {agencies[0][0]})",
        agencies[0][1],
        passphrase=passphrase,
        now=now,
        store=runtime.trust,
    )
    tokens = {}
    for who, (agency, username, roles, full_name, position) in people.items():
        user_id = ensure_user(
            uow, agency, username, roles, now, full_name=full_name, position=position
        )
        tokens[who] = create_token(uow, user_id, now).token
    return tokens


def issue_signer(
    uow: UnitOfWork, runtime: Any, passphrase: str, now: datetime, **validity: Any
) -> CertificateRow:
    """A new certificate and stored key for the Phó Chủ tịch (``validity``: its span)."""
    return keystore.issue_signer(
        uow,
        PROVINCE[0],
        SIGNER[0],
        passphrase=passphrase,
        crl_url=runtime.settings.crl_url,
        now=now,
        **validity,
    )
