"""Bodies the API accepts, validated at the edge."""

from __future__ import annotations

import functools
import re
import unicodedata
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, TypeVar, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from congvan.states.errors import FieldTooLong, InvalidInput
from congvan.states.fields import DATES, FIELDS, MOMENTS, REQUIRED_AT_CREATION
from congvan.states.policy import SECRECY, URGENCY
from congvan.states.text import MULTI_LINE_FIELDS, RECKONED, has_visible_text, unstorable
from congvan.states.timeliness import reckoned
from congvan.storage.tables import Recipient

from ..directory import validate_organ_id
from ..settings import Settings

_RECIPIENT_NAME_LENGTH: int = Recipient.__table__.c.name.type.length  # type: ignore[attr-defined]


class TextModel(BaseModel):
    """A body whose strings are all text the databases can store, in NFC, without control
    characters (line breaks only in the multi-line fields, ``states.text``), and whose
    dates and moments fall within the days the engine reckons with (years 1901 to 2100,
    ``states.timeliness``), which the databases keep too.

    Every body the API reads is one (``tests/api/test_text_rules_api.py`` holds every
    route to it)."""

    # A field the route does not know is refused, never dropped: a client that misspells
    # a name, or sends one this version does not take, learns it at once.
    model_config = ConfigDict(extra="forbid")

    multi_line: ClassVar[frozenset[str]] = frozenset(MULTI_LINE_FIELDS)

    @field_validator("*", mode="before")
    @classmethod
    def _as_written(cls, value: Any, info: ValidationInfo) -> Any:
        """A yes/no is JSON's true or false, and a moment or a day is written as one.

        Pydantic's lax mode reads ``"off"`` or ``0`` as false and ``1700000000`` as a moment
        in 2023: a client that meant something else would get it silently.
        """
        name = info.field_name
        kinds = _field_kinds(cls, name) if name else frozenset()
        if bool in kinds and value is not None and not isinstance(value, bool):
            raise ValueError("must be true or false")
        if kinds & {datetime, date} and (
            isinstance(value, int | float)
            or (isinstance(value, str) and NUMBER_TEXT.fullmatch(value))
        ):
            raise ValueError("must be written as a date or a moment (ISO 8601), not a number")
        # Pydantic takes "2026-12-31T00:00:00+14:00" as 2026-12-31, its offset dropped:
        # 30 December in Vietnam. A day is written as one.
        day_only = date in kinds and datetime not in kinds
        if day_only and isinstance(value, str) and not _DAY.fullmatch(value):
            raise ValueError("must be written as a date, YYYY-MM-DD")
        # In NFC before a length is judged: Vietnamese typed decomposed (macOS) counts
        # each mark as a character, three times the letters it writes.
        if isinstance(value, str) and not value.isascii():
            return unicodedata.normalize("NFC", value)
        if isinstance(value, list):
            return [
                unicodedata.normalize("NFC", v) if isinstance(v, str) and not v.isascii() else v
                for v in value
            ]
        return value

    @field_validator("*")
    @classmethod
    def _storable_text(cls, value: Any, info: ValidationInfo) -> Any:
        multi_line = info.field_name in cls.multi_line
        if isinstance(value, str):
            return _storable(value, multi_line)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return [_storable(v, multi_line) for v in value]
        if isinstance(value, datetime):
            return storable_moment(value)
        if isinstance(value, date):
            return storable_day(value)
        return value


# A day as the API takes one: YYYY-MM-DD, nothing more.
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
# A number written as text, which pydantic would read as Unix seconds.
NUMBER_TEXT = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


@functools.cache
def _field_kinds(model: type[BaseModel], name: str) -> frozenset[Any]:
    """``_kinds`` of a model's field, worked out once (every body validates every field)."""
    return _kinds(model.model_fields[name].annotation)


def _kinds(annotation: Any) -> frozenset[Any]:
    """The plain types an annotation admits (``datetime | None`` admits datetime)."""
    if annotation in (bool, datetime, date):
        return frozenset({annotation})
    return frozenset(a for a in get_args(annotation) if a in (bool, datetime, date))


_Model = TypeVar("_Model", bound=BaseModel)


def form_body(model: type[_Model], raw: object, what: str) -> _Model:
    """``raw`` (a form's fields, or JSON read from one) as ``model``, or InvalidInput.

    FastAPI validates a JSON body before the handler runs; a multipart form's text is read
    by the handler, so its validation errors are turned into the same answer here (422
    ``invalid_input``, each field and its problem), never a 500.
    """
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(
            f"{what} is not valid.",
            errors=[
                {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]}
                for e in exc.errors()
            ],
        ) from exc


def storable_moment(value: datetime) -> datetime:
    """``value``, if the engine can reckon with it: within years 1901 to 2100 in Vietnam
    time (``2100-12-31T23:00:00-05:00`` is not), so it converts to Vietnam time and
    deadlines count from it, and the databases keep it. A query parameter's validator."""
    if not reckoned(value):
        raise ValueError(f"{RECKONED} (Vietnam time)")
    return value


# A moment's fraction of a second, as ISO 8601 writes it (a comma is allowed).
_FRACTION = re.compile(r"[T ]\d\d:?\d\d:?\d\d[.,](\d+)")


def to_the_microsecond(value: Any) -> Any:
    """A moment as given, if written to the microsecond at most: parsed, a seventh decimal
    of a second and beyond would be dropped without a word (what is kept and signed would
    not be what was sent). A validator before parsing, for every moment a client gives."""
    if isinstance(value, str) and (found := _FRACTION.search(value)) and len(found[1]) > 6:
        raise ValueError("is given to the microsecond at most (six decimals of a second)")
    return value


# A moment a client gives: to the microsecond at most.
Moment = Annotated[datetime, BeforeValidator(to_the_microsecond)]


def storable_offset_moment(value: datetime) -> datetime:
    """``value`` as ``storable_moment`` takes it, written with its offset: a moment without
    one names no moment (it was read as Vietnam time by one check and as UTC by the
    query, seven hours apart). A query parameter's validator, as ``appointed_at``."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry its offset, e.g. 2026-12-01T08:00:00+07:00")
    return storable_moment(value)


def storable_day(value: date) -> date:
    """``value``, if it falls within the years the engine reckons with (1901 to 2100)."""
    if not reckoned(value):
        raise ValueError(RECKONED)
    return value


def _storable(value: str, multi_line: bool = False) -> str:
    problem = unstorable(value, multi_line=multi_line)
    if problem is not None:
        raise ValueError(problem)
    if value.isascii():
        return value
    # Vietnamese arrives precomposed or decomposed (macOS, some input methods); stored
    # one way, "TĐKT" typed either way is one symbol to the duplicate checks.
    return unicodedata.normalize("NFC", value)


def _described(name: str, **limits: Any) -> Any:
    """An optional field of the body, described as ``states.fields`` describes it."""
    return Field(default=None, description=FIELDS[name].description, **limits)


class RecipientIn(TextModel):
    model_config = ConfigDict(extra="forbid")

    organ_id: str = Field(description="Electronic identifier of the recipient agency")
    name: str = Field(default="", description="Its name as written in Nơi nhận")

    @field_validator("organ_id")
    @classmethod
    def _organ_id(cls, value: str) -> str:
        try:
            return validate_organ_id(value)
        except InvalidInput as exc:
            raise ValueError(exc.message) from exc


class DocumentFields(TextModel):
    """Metadata of an outgoing document (QCVN 102 MessageHeader, Decree 30 format)."""

    model_config = ConfigDict(extra="forbid")

    # The fields of states.fields, one by one (a test holds the two lists together).
    # Strict: true, "7" and 5.0 are not numbers a clerk wrote.
    number: StrictInt | None = _described("number", ge=1, le=999_999)
    symbol: str | None = _described("symbol")
    doc_type: str | None = _described("doc_type")
    legal_normative: StrictBool | None = _described("legal_normative")
    subject: str | None = _described("subject")
    place: str | None = _described("place")
    issued_on: date | None = _described("issued_on")
    content: str | None = _described("content")
    signer_name: str | None = _described("signer_name")
    signer_position: str | None = _described("signer_position")
    signer_competence: str | None = _described("signer_competence")
    signer_user: str | None = _described("signer_user")
    urgency: StrictInt | None = _described("urgency")
    secrecy: str | None = _described("secrecy")
    due_date: date | None = _described("due_date")
    appointed_at: Moment | None = _described("appointed_at")

    @field_validator("urgency")
    @classmethod
    def _urgency(cls, value: int | None) -> int | None:
        if value is not None and value not in URGENCY:
            raise ValueError(f"urgency must be one of {sorted(URGENCY)}")
        return value

    @field_validator("appointed_at")
    @classmethod
    def _appointed_at(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("appointed_at must carry its offset, e.g. 2026-12-01T20:00+07:00")
        return value

    @field_validator("secrecy")
    @classmethod
    def _secrecy(cls, value: str | None) -> str | None:
        if value is not None and value not in SECRECY:
            raise ValueError(f"secrecy must be one of {sorted(SECRECY)}")
        return value

    def as_row(self) -> dict[str, Any]:
        """Only the fields that were given, with dates as ISO text; ``null`` clears a field
        to its empty value (``states.fields``), except a field required at creation."""
        row = self.model_dump(exclude_unset=True)
        for key in (*DATES, *MOMENTS):
            if row.get(key) is not None:
                row[key] = row[key].isoformat()
        for key, value in row.items():
            # Null, "" or only invisible characters: none of them gives what is required.
            empty = value is None or (isinstance(value, str) and not has_visible_text(value))
            if empty and key in REQUIRED_AT_CREATION:
                raise InvalidInput(f"{key} cannot be empty.", field=key)
            if value is None:
                row[key] = FIELDS[key].empty
        return row


class DocumentIn(DocumentFields):
    """A new draft: its metadata and recipients. Files come as multipart parts."""

    doc_type: str = Field(description=FIELDS["doc_type"].description)
    subject: str = Field(description=FIELDS["subject"].description)
    recipients: list[RecipientIn] = Field(default_factory=list)


class EventIn(TextModel):
    """The body of an event; every part is optional."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, description="Why (required to reject and waive)")
    code: str | None = Field(
        default=None, max_length=60, description="For waive: the warning check accepted"
    )
    cms: str | None = Field(
        default=None,
        max_length=360_000,
        description="For sign: a detached CMS over the manifest, base64 (signer's own tool)",
    )
    signed_pdf: str | None = Field(
        default=None,
        description="For sign, with cms: the main PDF signed (PAdES) by the same certificate, "
        "base64; the main file with signatures appended. Bounded by the request size limit.",
    )
    fields: DocumentFields | None = Field(default=None, description="For edit")
    recipients: list[RecipientIn] | None = Field(default=None, description="For edit")


def check_limits(
    settings: Settings,
    fields: DocumentFields | None,
    recipients: list[RecipientIn] | None,
    reason: str | None = None,
) -> None:
    """Enforce the configurable limits; each breach names the field and the limit."""
    limits = {"subject": settings.max_subject_length, "content": settings.max_content_length}
    values: dict[str, Any] = fields.as_row() if fields else {}
    if reason is not None:
        values["reason"] = reason
    for key, value in values.items():
        if not isinstance(value, str):
            continue
        limit = limits.get(key, settings.max_text_length)
        # The column's length (states.fields) caps the setting.
        field = FIELDS.get(key)
        if field is not None and field.max_length is not None:
            limit = min(limit, field.max_length)
        if len(value) > limit:
            raise FieldTooLong(
                f"{key} is {len(value)} characters long; at most {limit}.",
                field=key,
                max_length=limit,
                length=len(value),
            )
    # Like the document's columns, the recipient's name column caps the setting.
    name_limit = min(settings.max_text_length, _RECIPIENT_NAME_LENGTH)
    for r in recipients or []:
        if len(r.name) > name_limit:
            raise FieldTooLong(
                "A recipient name is too long.",
                field="recipients.name",
                max_length=name_limit,
                length=len(r.name),
            )
    if recipients is not None and len(recipients) > settings.max_recipients:
        raise InvalidInput(
            f"At most {settings.max_recipients} recipients.",
            field="recipients",
            max_items=settings.max_recipients,
        )
    if recipients is not None:
        ids = [r.organ_id for r in recipients]
        if len(set(ids)) != len(ids):
            raise InvalidInput("A recipient is listed twice.", field="recipients")
