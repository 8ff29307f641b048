"""Who and what the demo plays with: three agencies of Thừa Thiên Huế, their people, letter 1227."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from congvan.actions.signing import keystore
from congvan.storage.signatures import CertificateRow
from congvan.storage.unit_of_work import UnitOfWork

from ..directory import add_agency, create_token, ensure_user

PROVINCE = ("000.00.00.H57", "Ủy ban nhân dân tỉnh Thừa Thiên Huế", "UBND")
DEPARTMENT = ("000.00.11.H57", "Sở Nội vụ tỉnh Thừa Thiên Huế", "SNV")
CITY = ("000.00.31.H57", "Ủy ban nhân dân thành phố Huế", "UBND")
SIGNER = ("pct", "Nguyễn Văn Phương", "Phó Chủ tịch")


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
        "recipients": [
            {"organ_id": DEPARTMENT[0], "name": DEPARTMENT[1]},
            {"organ_id": CITY[0], "name": CITY[1]},
        ],
    }


def set_up(runtime: Any, passphrase: str) -> dict[str, str]:
    tokens = {}
    now = runtime.clock()
    with runtime.uow() as uow:
        for agency_id, name, abbreviation in (PROVINCE, DEPARTMENT, CITY):
            add_agency(uow, agency_id, name, abbreviation, now)
        keystore.init_ca(
            uow,
            "congvan demo CA",
            PROVINCE[1],
            passphrase=passphrase,
            now=now,
            store=runtime.trust,
        )
        people = {
            "văn thư": (PROVINCE[0], "vanthu", ["clerk"], "Trần Thị Lan", "Văn thư"),
            "chuyên viên": (
                PROVINCE[0],
                "chuyenvien",
                ["reviewer"],
                "Lê Văn Hùng",
                "Chuyên viên Ban Thi đua - Khen thưởng",
            ),
            "lãnh đạo": (PROVINCE[0], SIGNER[0], ["signer"], SIGNER[1], SIGNER[2]),
            "chánh văn phòng": (
                PROVINCE[0],
                "chanhvp",
                ["supervisor"],
                "Hồ Thị Mai",
                "Chánh Văn phòng",
            ),
            "văn thư Sở": (DEPARTMENT[0], "vanthu", ["clerk"], "Phạm Thị Hoa", "Văn thư"),
        }
        for who, (agency, username, roles, full_name, position) in people.items():
            user_id = ensure_user(
                uow, agency, username, roles, now, full_name=full_name, position=position
            )
            tokens[who] = create_token(uow, user_id, now).token
        issue_signer(uow, runtime, passphrase, now)
        keystore.issue_agency(
            uow, PROVINCE[0], passphrase=passphrase, crl_url=runtime.settings.crl_url, now=now
        )
        uow.commit()
    print(
        "A test certification authority, the Phó Chủ tịch's certificate and the province's "
        "organisational certificate are ready"
    )
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
