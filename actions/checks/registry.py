"""What a check is, what it is given, and the list of checks congvan runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import cached_property
from typing import Any

from congvan.states import vocabulary
from congvan.states.policy import MAIN_FILE
from congvan.states.timeliness import DEFAULT_CUTOFF, VIETNAM
from congvan.storage.agencies import AgencyRow
from congvan.storage.documents import AttachmentRow, DocumentRow, RecipientRow
from congvan.storage.unit_of_work import UnitOfWork

from ..calendar import VIETNAM_CALENDAR, WorkingCalendar

BLOCKING = vocabulary.BLOCKING
WARNING = vocabulary.WARNING


@dataclass(frozen=True)
class Finding:
    """A check's verdict; a failure says what is wrong in both languages."""

    passed: bool
    vi: str = ""
    en: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def ok(**details: Any) -> Finding:
    return Finding(True, details=details)


def fail(vi: str, en: str, **details: Any) -> Finding:
    return Finding(False, vi, en, details)


@dataclass
class CheckInput:
    """One revision of a document, with lazy access to what checks look up."""

    uow: UnitOfWork
    document: DocumentRow
    today: date
    max_attachment_bytes: int
    max_subject_length: int
    # The moment of the review (None: the start of ``today``, Vietnam time), the working
    # days and the morning's end the time rules are judged by.
    now: datetime | None = None
    calendar: WorkingCalendar = VIETNAM_CALENDAR
    send_cutoff: time = DEFAULT_CUTOFF
    # What an inbox takes at most (its files, with the signed PDF): None, not judged.
    max_package_bytes: int | None = None

    @property
    def moment(self) -> datetime:
        return self.now or datetime.combine(self.today, time(0), VIETNAM)

    @cached_property
    def agency(self) -> AgencyRow | None:
        return self.uow.agencies.agency(self.document.agency_id)

    @cached_property
    def recipients(self) -> list[RecipientRow]:
        return self.uow.documents.recipients(self.document.id)

    @cached_property
    def attachments(self) -> list[AttachmentRow]:
        return self.uow.documents.attachments(self.document.id)

    def detected_type(self, sha256: str, detect: Callable[[bytes], str]) -> str:
        """The media type of a file as ``detect`` sees its bytes, worked out once."""
        if sha256 not in self._types:
            self._types[sha256] = detect(self.content(sha256))
        return self._types[sha256]

    @cached_property
    def _types(self) -> dict[str, str]:
        return {}

    def content(self, sha256: str) -> bytes:
        return self._blobs.setdefault(sha256, self.uow.documents.blob(sha256) or b"")

    @cached_property
    def _blobs(self) -> dict[str, bytes]:
        return {}

    @property
    def main_files(self) -> list[AttachmentRow]:
        return [a for a in self.attachments if a.role == MAIN_FILE]


@dataclass(frozen=True)
class Check:
    """A named check. ``code`` never changes once released."""

    code: str
    severity: str
    title_vi: str
    title_en: str
    run: Callable[[CheckInput], Finding]


CHECKS: list[Check] = []


def check(
    code: str, severity: str, title_vi: str, title_en: str
) -> Callable[[Callable[[CheckInput], Finding]], Callable[[CheckInput], Finding]]:
    """Register a check function under ``code``."""

    def register(fn: Callable[[CheckInput], Finding]) -> Callable[[CheckInput], Finding]:
        if any(c.code == code for c in CHECKS):
            raise ValueError(f"check {code!r} registered twice")
        CHECKS.append(Check(code, severity, title_vi, title_en, fn))
        return fn

    return register
