"""Metadata checks: every field the exchange needs, and agency identifiers."""

from __future__ import annotations

from datetime import datetime

from congvan.states.fields import REQUIRED_AT_REVIEW
from congvan.states.policy import APPOINTED_URGENCY, is_organ_id
from congvan.states.text import given
from congvan.states.timeliness import FIRST_DAY, LAST_DAY, reckoned

from ..exchange.local import served_here
from .registry import BLOCKING, WARNING, CheckInput, Finding, check, fail, ok


@check(
    "metadata.required",
    BLOCKING,
    "Đủ thông tin bắt buộc để liên thông",
    "Every field the exchange needs is filled in",
)
def required(inp: CheckInput) -> Finding:
    # Text that shows nothing (blank, a Hangul filler, a braille blank) is not given.
    missing = [f for f in REQUIRED_AT_REVIEW if not given(getattr(inp.document, f))]
    if not inp.recipients:
        missing.append("recipients")
    if not inp.main_files:
        missing.append("main file")
    if missing:
        return fail(
            f"Thiếu: {', '.join(missing)}.", f"Missing: {', '.join(missing)}.", missing=missing
        )
    return ok()


@check(
    "metadata.agencies",
    BLOCKING,
    "Mã định danh cơ quan hợp lệ và có trong danh bạ",
    "Agency identifiers are valid and in the directory",
)
def agencies(inp: CheckInput) -> Finding:
    bad_format, unknown = [], []
    for organ_id in [inp.document.agency_id, *[r.organ_id for r in inp.recipients]]:
        if not is_organ_id(organ_id):
            bad_format.append(organ_id)
        elif inp.uow.agencies.agency(organ_id) is None:
            unknown.append(organ_id)
    if bad_format:
        return fail(
            f"Mã định danh sai dạng: {', '.join(bad_format)}.",
            f"Malformed agency identifiers: {', '.join(bad_format)}.",
            malformed=bad_format,
        )
    if unknown:
        return fail(
            f"Cơ quan chưa có trong danh bạ: {', '.join(unknown)}.",
            f"Agencies not in the directory: {', '.join(unknown)}.",
            unknown=unknown,
        )
    if inp.document.agency_id in {r.organ_id for r in inp.recipients}:
        return fail(
            "Cơ quan ban hành không gửi cho chính mình.",
            "The issuing agency is listed as a recipient.",
            organ_id=inp.document.agency_id,
        )
    return ok()


@check(
    "metadata.reachable",
    BLOCKING,
    "Mỗi nơi nhận có địa chỉ nhận văn bản",
    "Every recipient has an inbox to deliver to",
)
def reachable(inp: CheckInput) -> Finding:
    """What ``send`` would refuse (``unknown_peer``), found at review: a recipient of the
    directory that another instance serves (no users here, nor its organisational key)
    but that has no peer entry. (One of ours without its key yet is the operator's to
    finish: ``keys issue-agency``.)"""
    uow, at = inp.uow, inp.moment
    nowhere = [
        r.organ_id
        for r in inp.recipients
        if is_organ_id(r.organ_id)
        and uow.agencies.agency(r.organ_id) is not None
        and uow.peers.get(r.organ_id) is None
        and not uow.agencies.has_users(r.organ_id)
        and not served_here(uow, r.organ_id, at)
    ]
    if nowhere:
        return fail(
            f"Chưa có địa chỉ nhận văn bản (danh bạ liên thông) của: {', '.join(nowhere)}.",
            f"No inbox is known for: {', '.join(nowhere)} (add a peer entry: "
            "`congvan peers add` or `peers import`).",
            unreachable=nowhere,
        )
    return ok()


@check(
    "metadata.due_date",
    WARNING,
    "Hạn xử lý không ở quá khứ",
    "The due date (if any) is not in the past",
)
def due_date(inp: CheckInput) -> Finding:
    due = inp.document.due_date
    if due and due < inp.today.isoformat():
        return fail("Hạn xử lý đã qua.", "The due date has passed.", field="due_date", value=due)
    return ok()


@check(
    "metadata.appointed_time",
    BLOCKING,
    "Văn bản hỏa tốc hẹn giờ ghi thời hạn hẹn giờ",
    "A hỏa tốc hẹn giờ document carries its appointed time, and only it does",
)
def appointed_time(inp: CheckInput) -> Finding:
    appointed = inp.document.appointed_at
    if inp.document.urgency == APPOINTED_URGENCY and not appointed:
        return fail(
            "Văn bản hỏa tốc hẹn giờ phải ghi thời hạn hẹn giờ.",
            "A hỏa tốc hẹn giờ document must carry its appointed time.",
            field="appointed_at",
        )
    if appointed and inp.document.urgency != APPOINTED_URGENCY:
        return fail(
            "Chỉ văn bản hỏa tốc hẹn giờ mới ghi thời hạn hẹn giờ.",
            "Only a hỏa tốc hẹn giờ document (urgency 4) carries an appointed time.",
            field="appointed_at",
            value=appointed,
        )
    if appointed and not reckoned(datetime.fromisoformat(appointed)):
        # Kept before the API held moments to the range: no deadline counts to it.
        return fail(
            f"Thời hạn hẹn giờ nằm ngoài các năm {FIRST_DAY.year}–{LAST_DAY.year}.",
            f"The appointed time is outside the years {FIRST_DAY.year} to {LAST_DAY.year}.",
            field="appointed_at",
            value=appointed,
        )
    if appointed and datetime.fromisoformat(appointed) <= inp.moment:
        return fail(
            "Thời hạn hẹn giờ đã qua.",
            "The appointed time has passed.",
            field="appointed_at",
            value=appointed,
        )
    return ok()
