"""Agencies, their users and API tokens: the directory an operator manages."""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import regex

from congvan.states.errors import (
    AlreadyExists,
    FieldTooLong,
    InvalidInput,
    NotFound,
    NumberingConflict,
)
from congvan.states.format_rules import (
    COMPETENCE_PREFIXES,
    KNOWN_DOC_TYPES,
    agency_group_cased,
    competence_chain,
    competence_line,
)
from congvan.states.policy import DEFAULT_NUMBERING, NUMBERING, ROLES, is_organ_id
from congvan.states.text import has_visible_text, nfc, unstorable
from congvan.states.timeliness import FIRST_DAY, LAST_DAY, VIETNAM, reckoned
from congvan.storage.agencies import AgencyRow, UserRow, hash_token
from congvan.storage.authorities import AuthorityRow
from congvan.storage.ids import new_id
from congvan.storage.tables import Agency, SigningAuthority
from congvan.storage.unit_of_work import UnitOfWork

TOKEN_PREFIX = "cvt_"
# The column holding an authority's document types, comma-separated.
_DOC_TYPES = SigningAuthority.__table__.c.doc_types  # type: ignore[attr-defined]
_AGENCY_NAME_LENGTH: int = Agency.__table__.c.name.type.length  # type: ignore[attr-defined]
_AGENCY_ABBREVIATION_LENGTH: int = Agency.__table__.c.abbreviation.type.length  # type: ignore[attr-defined]
DOC_TYPES_LENGTH: int = _DOC_TYPES.type.length
_COMPETENCE_LENGTH: int = SigningAuthority.__table__.c.competence.type.length  # type: ignore[attr-defined]


def validate_organ_id(value: str, field: str = "organ_id") -> str:
    if not is_organ_id(value or ""):
        raise InvalidInput(
            f"{field} must be an agency identifier: up to 35 characters of A-Z, 0-9 "
            "in dot-separated groups, e.g. 000.00.00.H57.",
            field=field,
            value=value[:40],
        )
    return value


def validate_roles(roles: Iterable[str]) -> list[str]:
    roles = sorted(set(roles))
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise InvalidInput(
            f"roles must be among {', '.join(ROLES)}", field="roles", unknown=unknown
        )
    return roles


def validate_numbering(numbering: str) -> str:
    if numbering not in NUMBERING:
        raise InvalidInput(
            f"Numbering must be one of {', '.join(NUMBERING)}.",
            field="numbering",
            allowed=sorted(NUMBERING),
        )
    return numbering


def existing_agency(uow: UnitOfWork, agency_id: str) -> AgencyRow:
    """The agency of this directory with ``agency_id``; ``NotFound`` when there is none."""
    # An id no agency can have (PostgreSQL refuses NUL in a query) is simply not there.
    agency = uow.agencies.agency(agency_id) if is_organ_id(agency_id or "") else None
    if agency is None:
        raise NotFound(f"No agency {agency_id}.", agency_id=agency_id)
    return agency


def set_numbering(uow: UnitOfWork, agency_id: str, numbering: str, now: datetime) -> str:
    """Number the agency's administrative documents in ``numbering`` from now on.

    Decree 30/2020 Art. 15.1: a number with its symbol is unique in the year, and the
    agency's head decides how administrative documents are numbered. The change applies
    to the numbers checked from now on, this year's included, so going to one series for
    all is refused while this year's (or a later year's) documents already hold a number
    under two symbols: that series would hold it twice. Going to a series per symbol
    repeats nothing. Legal normative documents keep their series by type either way.
    Returns the series the agency had.
    """
    validate_numbering(numbering)
    # Judged as a review verdict on a number is (``hold_issuing``): one committing
    # meanwhile would hold a number under a second symbol this change never saw.
    uow.duplicates.hold_issuing(agency_id)
    agency = existing_agency(uow, agency_id)
    before = agency.numbering
    if numbering == "agency" and before != "agency":
        year = str(now.astimezone(VIETNAM).year)
        shared = uow.duplicates.shared_numbers(agency_id, year)
        if shared:
            listed = ", ".join(
                f"{s['number']:02d} ({s['held_year']}: {s['first_symbol']}, "
                f"{s['last_symbol']}{', …' if s['symbols'] > 2 else ''})"
                for s in shared[:5]
            )
            raise NumberingConflict(
                f"One series for all documents would hold these numbers twice: {listed}. "
                "Change the series from 1 January, when numbering starts again at 01.",
                agency_id=agency_id,
                numbering=numbering,
                from_year=year,
                numbers=[
                    {"year": s["held_year"], "number": s["number"], "symbols": s["symbols"]}
                    for s in shared
                ],
            )
    if numbering != before:
        uow.agencies.set_numbering(agency_id, numbering)
    return before


def agency_names(name: str, abbreviation: str) -> tuple[str, str]:
    """An agency's name and abbreviation as kept, or refused."""
    if not has_visible_text(name) or not has_visible_text(abbreviation):
        raise InvalidInput("An agency needs a name and an abbreviation.")
    # Every way in (the API, the CLI, a directory file from another installation) comes
    # here: a name is printed in lists, letters and terminals, one line of plain text.
    name = one_line("The agency's name", "name", name, _AGENCY_NAME_LENGTH)
    abbreviation = one_line(
        "The agency's abbreviation", "abbreviation", abbreviation, _AGENCY_ABBREVIATION_LENGTH
    ).strip()
    if not all(agency_group_cased(group) for group in abbreviation.split("-")):
        # It is a group of every symbol the agency issues: written in capitals (Decree 30
        # Appendix I), as review checks and as every peer's inbox requires of a symbol
        raise InvalidInput(
            "An agency's abbreviation is in capitals and digits (UBND, SNV; TTg as practice "
            "writes it), groups joined by '-'.",
            field="abbreviation",
            value=abbreviation,
        )
    return name.strip(), abbreviation


def add_agency(
    uow: UnitOfWork,
    agency_id: str,
    name: str,
    abbreviation: str,
    now: datetime,
    numbering: str = DEFAULT_NUMBERING,
    *,
    id_field: str = "agency_id",
) -> None:
    """Add an agency; ``id_field`` names its id as the caller was given it (the API's
    body calls it ``id``)."""
    validate_organ_id(agency_id, id_field)
    name, abbreviation = agency_names(name, abbreviation)
    validate_numbering(numbering)
    uow.agencies.hold(agency_id)  # two adding it at once: one adds, the other is told
    if uow.agencies.agency(agency_id) is not None:
        raise AlreadyExists(f"Agency {agency_id} already exists.", agency_id=agency_id)
    uow.agencies.add_agency(
        AgencyRow(
            id=agency_id,
            name=name,
            abbreviation=abbreviation,
            numbering=numbering,
            created_at=now,
        )
    )


def one_line(what: str, field: str, text: str, longest: int) -> str:
    """``text`` as kept: one line of plain text of at most ``longest`` characters, without
    blanks around it and in Unicode NFC (as the API keeps text: "Sở Nội vụ" typed
    decomposed is the same name), or refused."""
    problem = unstorable(text, multi_line=False)
    if problem is not None:
        raise InvalidInput(f"{what} {problem}.", field=field)
    kept = str(nfc(text.strip()))
    if len(kept) > longest:
        raise FieldTooLong(
            f"{what} is at most {longest} characters.",
            field=field,
            max_length=longest,
            length=len(kept),
        )
    return kept


# A user's name as tokens and logs show it; a person's full name and position go into
# their certificate, whose common name and title X.509 bounds to 64 characters.
USERNAME_LENGTH, _PERSON_TEXT_LENGTH = 100, 64
# Letters of the Latin alphabet, Vietnamese ones among them (thảo.nguyễn), in their
# composed forms and no compatibility ones (a fullwidth ａ), ASCII digits, and . _ -.
USERNAME = regex.compile(r"[\p{Latin}0-9][\p{Latin}0-9._-]*")


def ensure_user(
    uow: UnitOfWork,
    agency_id: str,
    username: str,
    roles: Iterable[str],
    now: datetime,
    *,
    full_name: str = "",
    position: str = "",
) -> str:
    """The user's id, creating the user when missing (roles are merged in; a full name or
    a position given replaces the one kept, so a signer made without them can be named)."""
    validate_organ_id(agency_id, "agency")  # a malformed id is a mistake, not a miss
    if uow.agencies.agency(agency_id) is None:
        raise NotFound(f"No agency {agency_id}.", agency_id=agency_id)
    roles = validate_roles(roles)
    if not username.strip() or username != username.strip():
        raise InvalidInput(
            "A user name is given, with no spaces before or after it.", field="username"
        )
    username = one_line("A user name", "username", username, USERNAME_LENGTH)
    full_name = one_line("A full name", "full_name", full_name, _PERSON_TEXT_LENGTH)
    if len(full_name.encode()) > _PERSON_TEXT_LENGTH:
        # The common name of the person's certificate, which X.509 tools bound in bytes
        raise FieldTooLong(
            f"A full name is at most {_PERSON_TEXT_LENGTH} bytes of UTF-8 (a Vietnamese "
            "letter takes 2 or 3): it is the common name of the person's certificate.",
            field="full_name",
            max_length=_PERSON_TEXT_LENGTH,
            length=len(full_name.encode()),
        )
    position = one_line("A position", "position", position, _PERSON_TEXT_LENGTH)
    user = uow.agencies.user(agency_id, username, holding=True)
    if user is None and not (
        USERNAME.fullmatch(username) and unicodedata.normalize("NFKC", username) == username
    ):
        # A new name: a login name of the Latin alphabet, which no other name can pass for
        # (a Cyrillic "р" in "pct"), with no space or "@" (a certificate names its holder
        # user@agency). A user kept from before the rule is still found by its name.
        raise InvalidInput(
            "A user name is made of letters of the Latin alphabet (Vietnamese ones too), "
            "digits 0-9 and . _ - (a login name such as nguyen.van.a or thảo.nguyễn), "
            f"beginning with a letter or digit: {username[:100]!r}.",
            field="username",
        )
    if user is not None:
        merged = sorted(set(user.roles.split(",")) | set(roles))
        if merged != sorted(user.roles.split(",")):
            uow.agencies.set_user_roles(user.id, merged)
        named = (full_name or user.full_name, position or user.position)
        if named != (user.full_name, user.position):
            uow.agencies.set_user_names(user.id, full_name=named[0], position=named[1])
        return user.id
    uow.peers.refuse_served_elsewhere(agency_id, "its users")
    user_id = new_id()
    uow.agencies.add_user(
        UserRow(
            id=user_id,
            agency_id=agency_id,
            username=username,
            full_name=full_name,
            position=position,
            roles=",".join(roles),
            created_at=now,
        )
    )
    return user_id


@dataclass(frozen=True)
class IssuedToken:
    """A token as shown once at creation; only its hash is kept."""

    token: str
    prefix: str
    user_id: str


def token_prefix(token: str) -> str:
    """The part of a token kept in clear to name it: ``cvt_`` and 8 characters (a whole
    token gives its prefix; anything shorter is taken as it is)."""
    return token[: len(TOKEN_PREFIX) + 8]


def create_token(
    uow: UnitOfWork,
    user_id: str,
    now: datetime,
    expires_in_days: int | None = None,
    roles: Iterable[str] | None = None,
) -> IssuedToken:
    """A new token for the user, bound to ``roles`` (None: every role the user holds now);
    ``expires_in_days`` None never expires, else at least 1. The token acts with those of
    its roles its user still holds: another role given to the user later is not its."""
    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        # 0 used to mean "never" and a negative number made a token born expired.
        raise InvalidInput(
            "expires_in_days is a number of days from 1 to 3650; leave it out for a token "
            "that does not expire.",
            field="expires_days",
            value=expires_in_days,
        )
    held = uow.agencies.user_roles(user_id)
    bound = held if roles is None else validate_roles(roles)
    if not set(bound) <= set(held):
        raise InvalidInput(
            f"The user does not hold the role {', '.join(sorted(set(bound) - set(held)))}.",
            field="roles",
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    prefix = token_prefix(token)
    uow.agencies.add_token(
        {
            "id": new_id(),
            "user_id": user_id,
            "token_hash": hash_token(token),
            "prefix": prefix,
            "roles": ",".join(sorted(bound)),
            "created_at": now,
            "expires_at": None
            if expires_in_days is None
            else now + timedelta(days=expires_in_days),
        }
    )
    return IssuedToken(token=token, prefix=prefix, user_id=user_id)


def _storable(text: str) -> bool:
    """Text both databases store: PostgreSQL refuses NUL, UTF-8 has no lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def add_authority(
    uow: UnitOfWork,
    agency_id: str,
    signer: str,
    doc_types: Iterable[str],
    competence: str,
    valid_from: date,
    valid_until: date | None,
    *,
    by: str,
    now: datetime,
) -> AuthorityRow:
    """Grant ``signer`` (a user with the signer role) authority to sign for the agency."""
    user = uow.agencies.user(agency_id, signer)
    if user is None or "signer" not in user.roles.split(","):
        raise InvalidInput(
            f"'{signer}' is not a user with the signer role in {agency_id}.", field="signer"
        )
    types = sorted({t.strip() for t in doc_types})
    # Each item is one type code of Decree 30 Appendix III, or "*" alone for every type. An
    # empty list used to mean "all" and "CV,QĐ" was split: both are refused, not guessed.
    unknown = [t for t in types if t != "*" and t not in KNOWN_DOC_TYPES]  # "" and "CV,QĐ" too
    if not types or unknown or ("*" in types and len(types) > 1):
        raise InvalidInput(
            "doc_types lists document type codes (e.g. CV, QĐ), or is ['*'] for every type.",
            field="doc_types",
            unknown=unknown,
            allowed=["*", *sorted(KNOWN_DOC_TYPES)],
        )
    joined = ",".join(types)
    if len(joined) > DOC_TYPES_LENGTH or not _storable(joined):
        raise InvalidInput(
            f"doc_types must be type codes of {DOC_TYPES_LENGTH} characters in all at most.",
            field="doc_types",
        )
    for name, day in (("valid_from", valid_from), ("valid_until", valid_until)):
        if day is not None and not reckoned(day):
            raise InvalidInput(
                f"{name} falls within the years {FIRST_DAY.year} to {LAST_DAY.year}.",
                field=name,
            )
    if valid_until is not None and valid_until < valid_from:
        raise InvalidInput("valid_until is before valid_from.", field="valid_until")
    competence = competence_line(competence)
    # Its lines made one, it is one line of text (no control or hidden characters, which
    # would make a title no signer block could ever match, or one that reads as another).
    problem = unstorable(competence, multi_line=False)
    if problem is not None:
        raise InvalidInput(f"competence {problem}.", field="competence")
    if len(competence) > _COMPETENCE_LENGTH:  # the API's bound, for every caller
        raise InvalidInput(
            f"competence is a signer block of {_COMPETENCE_LENGTH} characters at most.",
            field="competence",
            length=len(competence),
        )
    # Matched against signer blocks (rules.grants_competence), so it is one of their lines
    # or stacks, never free text that no document could ever match.
    if competence and competence_chain(competence) is None:
        raise InvalidInput(
            f"competence is empty (any) or a signer block: one of {', '.join(COMPETENCE_PREFIXES)}"
            " or Q. and an upper-case title, e.g. 'KT. CHỦ TỊCH', 'TM. ỦY BAN NHÂN DÂN'.",
            field="competence",
            value=competence[:60],
        )
    # The same grant twice would be two rows, and revoking one would leave its twin in
    # force: the signer could still sign. So would a grant overlapping it (a type both
    # cover, on a day both cover) for the same competence, or for any (""): refused too.
    # Grants for other competences may overlap: a document's signer block names the one
    # it is signed under (a Phó Chủ tịch signs as KT. CHỦ TỊCH and as TM. ỦY BAN NHÂN DÂN).
    # Grants of an agency take turns for the look.
    uow.authorities.hold_granting(agency_id)
    until = valid_until.isoformat() if valid_until else None
    overlapping = next(
        (
            a
            for a in uow.authorities.for_agency(agency_id, signer)
            if a.revoked_at is None
            and (a.competence == competence or "" in (a.competence, competence))
            and _types_meet(a.doc_types, joined)
            and _periods_meet((a.valid_from, a.valid_until), (valid_from.isoformat(), until))
        ),
        None,
    )
    if overlapping is not None:
        same = (overlapping.doc_types, overlapping.competence, overlapping.valid_from) == (
            joined,
            competence,
            valid_from.isoformat(),
        ) and overlapping.valid_until == until
        raise AlreadyExists(
            f"'{signer}' holds this authority already ({overlapping.id}); revoke it before "
            "granting it anew."
            if same
            else f"'{signer}' holds an authority for {overlapping.doc_types} from "
            f"{overlapping.valid_from}"
            + (f" to {overlapping.valid_until}" if overlapping.valid_until else "")
            + f" ({overlapping.competence or 'any competence'}) that overlaps this one: "
            f"revoke it ({overlapping.id}), or grant types or days it does not cover.",
            authority_id=overlapping.id,
        )
    row = AuthorityRow(
        id=new_id(),
        agency_id=agency_id,
        signer=signer,
        doc_types=joined,
        competence=competence,
        valid_from=valid_from.isoformat(),
        valid_until=valid_until.isoformat() if valid_until else None,
        created_by=by,
        created_at=now,
    )
    uow.authorities.add(row)
    return row


def _types_meet(held: str, granted: str) -> bool:
    """Whether two grants' document types (``*`` or codes joined by commas) share one."""
    a, b = set(held.split(",")), set(granted.split(","))
    return "*" in a or "*" in b or bool(a & b)


def _periods_meet(held: tuple[str, str | None], granted: tuple[str, str | None]) -> bool:
    """Whether two validities (ISO days, the end None when open) share a day."""
    (a_from, a_until), (b_from, b_until) = held, granted
    return (a_until is None or b_from <= a_until) and (b_until is None or a_from <= b_until)
