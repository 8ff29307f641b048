"""Properties of the Decree 30 symbol and signing rules, on generated symbols and titles.

A well-formed symbol is upper-case groups joined by '-': the agency abbreviation and the
drafting unit for a công văn (UBND-TĐKT), the type and the agency otherwise (QĐ-UBND).
The number/symbol check reads only the document and the agency, so a plain stand-in for
its input is enough here; no database is involved.
"""

from __future__ import annotations

import dataclasses
import json
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from congvan.actions.checks import formatting
from congvan.actions.checks.registry import Finding
from congvan.actions.exchange import acceptance
from congvan.actions.signing.manifest import build_manifest
from congvan.states.errors import MessageMalformed
from congvan.states.format_rules import (
    AS_WRITTEN_AGENCIES,
    COMPETENCE_CHAINS,
    COMPETENCE_PREFIXES,
    DOC_TYPES,
    OFFICIAL_LETTER,
    competence_chain,
    competence_parts,
    grants_competence,
    is_upper_group,
)
from congvan.storage.agencies import AgencyRow
from congvan.storage.documents import DocumentRow

from .test_manifest import make_attachments, make_document

# Upper-case letters as Vietnamese abbreviations use them, with a few accented ones
# (TƯ, SỞ) and the letters borrowed in names (F, J, W, Z).
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZĂÂĐÊÔƠƯÁÀẢÃẠỘỨỞ"
DIGITS = "0123456789"
NOT_IN_A_GROUP = " /-.,_\t"


# A draft with nothing filled in, as the documents table holds it.
BLANK = DocumentRow(
    id="doc-1", agency_id="000.00.00.H57", number=None, symbol="", doc_type="",
    legal_normative=False, subject="", place="", issued_on=None, content="", signer_name="",
    signer_position="", signer_competence="", urgency=0, secrecy="", due_date=None,
    appointed_at=None,
    signer_user="", state="draft", version=1, revision=1, submitted_revision=None,
    audit_head="", created_by="clerk", created_at=datetime(2021, 2, 6, tzinfo=UTC),
    updated_at=datetime(2021, 2, 6, tzinfo=UTC),
)  # fmt: skip


def agency_row(abbreviation: str) -> AgencyRow:
    return AgencyRow(
        "000.00.00.H57", "Ủy ban nhân dân tỉnh", abbreviation, "agency", BLANK.created_at
    )


def letter_row(**fields: Any) -> DocumentRow:
    return dataclasses.replace(BLANK, **fields)


@dataclass
class Letter:
    """What ``format.number_symbol`` reads of a ``CheckInput``."""

    document: DocumentRow
    agency: AgencyRow | None = None


def number_symbol(doc_type: str, agency: str, number: int, symbol: str) -> Finding:
    letter = Letter(letter_row(doc_type=doc_type, number=number, symbol=symbol), agency_row(agency))
    return formatting.number_symbol(letter)  # type: ignore[arg-type]


# -- strategies --------------------------------------------------------------------------

abbreviations = st.text(alphabet=LETTERS, min_size=1, max_size=8)
groups = st.text(alphabet=LETTERS + DIGITS, min_size=1, max_size=8)
numbers = st.integers(min_value=1, max_value=999_999)
other_types = st.sampled_from(sorted(set(DOC_TYPES) - {OFFICIAL_LETTER}))


@st.composite
def well_formed(draw: st.DrawFn) -> tuple[str, str, str]:
    """(doc_type, agency abbreviation, symbol) as Decree 30 wants them."""
    agency = draw(abbreviations)
    doc_type = draw(st.one_of(st.just(OFFICIAL_LETTER), other_types))
    if doc_type == OFFICIAL_LETTER:
        return doc_type, agency, f"{agency}-{draw(groups)}"  # and the drafting unit
    return doc_type, agency, f"{doc_type}-{agency}"


def positions(symbol: str, which: str = "any") -> st.SearchStrategy[int]:
    if which == "upper":
        return st.sampled_from([i for i, ch in enumerate(symbol) if ch.isupper()])
    if which == "dash":
        return st.sampled_from([i for i, ch in enumerate(symbol) if ch == "-"])
    return st.integers(min_value=0, max_value=len(symbol))


def assert_refused(finding: Finding, symbol: str) -> None:
    assert (False, "symbol") == (finding.passed, finding.details.get("field")), finding
    assert symbol == finding.details.get("value")
    assert finding.vi and finding.en


# -- the number/symbol check --------------------------------------------------------------


@given(well_formed(), numbers)
@example((OFFICIAL_LETTER, "UBND", "UBND-TĐKT"), 1227)
@example(("QĐ", "UBND", "QĐ-UBND"), 5)
@example(("CTr", "UBND", "CTr-UBND"), 12)
def test_a_well_formed_symbol_passes(case: tuple[str, str, str], number: int) -> None:
    doc_type, agency, symbol = case

    finding = number_symbol(doc_type, agency, number, symbol)

    assert Finding(True, details={"notation": f"{number:02d}/{symbol}"}) == finding


@given(well_formed(), numbers, st.data(), st.sampled_from([" ", "/", "\u00a0"]))
def test_a_space_or_slash_anywhere_fails(
    case: tuple[str, str, str], number: int, data: st.DataObject, inserted: str
) -> None:
    doc_type, agency, symbol = case
    at = data.draw(positions(symbol))
    broken = symbol[:at] + inserted + symbol[at:]

    assert_refused(number_symbol(doc_type, agency, number, broken), broken)


@given(well_formed(), numbers, st.data())
def test_a_lower_case_letter_fails(
    case: tuple[str, str, str], number: int, data: st.DataObject
) -> None:
    doc_type, agency, symbol = case
    at = data.draw(positions(symbol, "upper"))
    broken = symbol[:at] + symbol[at].lower() + symbol[at + 1 :]
    assume(not AS_WRITTEN_AGENCIES.intersection(broken.split("-")))  # TTG → TTg stands

    assert_refused(number_symbol(doc_type, agency, number, broken), broken)


@given(well_formed(), numbers, st.data())
def test_an_empty_group_fails(case: tuple[str, str, str], number: int, data: st.DataObject) -> None:
    doc_type, agency, symbol = case
    where = data.draw(st.sampled_from(["start", "end", "twice"]))
    if where == "start":
        broken = "-" + symbol
    elif where == "end":
        broken = symbol + "-"
    else:
        at = data.draw(positions(symbol, "dash"))
        broken = symbol[:at] + "-" + symbol[at:]

    assert_refused(number_symbol(doc_type, agency, number, broken), broken)


@given(well_formed(), numbers, groups)
def test_a_third_group_fails(case: tuple[str, str, str], number: int, extra: str) -> None:
    # Decree 30, Appendix I: a named type's symbol is its type's and the agency's
    # abbreviations (QĐ-UBND, not QĐ-UBND-TĐKT); a công văn's the agency's and the drafting
    # unit's (UBND-TĐKT)
    doc_type, agency, symbol = case
    broken = f"{symbol}-{extra}"

    assert_refused(number_symbol(doc_type, agency, number, broken), broken)


@given(well_formed(), numbers, abbreviations)
def test_another_agencys_abbreviation_fails(
    case: tuple[str, str, str], number: int, other: str
) -> None:
    doc_type, agency, symbol = case
    if other == agency:
        other += "X"

    finding = number_symbol(doc_type, other, number, symbol)

    assert_refused(finding, symbol)


@given(abbreviations, numbers, other_types)
def test_a_letters_symbol_on_another_type_fails(agency: str, number: int, doc_type: str) -> None:
    symbol = f"{agency}-TĐKT"

    finding = number_symbol(doc_type, agency, number, symbol)

    assert_refused(finding, symbol)
    assert f"{doc_type}-{agency}" == finding.details["expected"]


@given(well_formed(), st.sampled_from([None, 0, -1]))
def test_a_missing_number_fails(case: tuple[str, str, str], number: int | None) -> None:
    doc_type, agency, symbol = case

    finding = number_symbol(doc_type, agency, number, symbol)  # type: ignore[arg-type]

    assert (False, "number") == (finding.passed, finding.details.get("field"))


@given(well_formed(), numbers)
@example(("TTr", "UBND", "TTr-UBND"), 11)
@example(("QyĐ", "UBND", "QyĐ-UBND"), 13)
def test_what_review_passes_every_inbox_takes(case: tuple[str, str, str], number: int) -> None:
    # A symbol review passes travels in the signed manifest: were a peer's inbox to refuse
    # it, the letter would be refused (status 02) by every recipient, for good
    doc_type, agency, symbol = case
    assert number_symbol(doc_type, agency, number, symbol).passed

    manifest = json.loads(
        build_manifest(
            make_document(doc_type=doc_type, symbol=symbol, number=number), make_attachments()
        )
    )
    acceptance._check_members(manifest)  # the inbox's reading of it: no refusal


@pytest.mark.parametrize(
    ("doc_type", "agency", "symbol"),
    [
        (OFFICIAL_LETTER, "ubnd", "ubnd-TĐKT"),  # an abbreviation kept in lower case
        ("TTr", "Ubnd", "TTr-Ubnd"),
        (OFFICIAL_LETTER, "UBND", "TTr-UBND"),  # TTr as written only as a type's group
        ("TB", "UBND", "TB-UBND-vp"),
    ],
)
def test_a_group_in_lower_case_fails_review_and_the_inbox_alike(
    doc_type: str, agency: str, symbol: str
) -> None:
    assert_refused(number_symbol(doc_type, agency, 5, symbol), symbol)
    manifest = json.loads(
        build_manifest(make_document(doc_type=doc_type, symbol=symbol), make_attachments())
    )
    with pytest.raises(MessageMalformed) as refused:
        acceptance._check_members(manifest)
    assert refused.value.details["field"] == "symbol"


@pytest.mark.parametrize(
    ("doc_type", "symbol"), [("QĐ", "QĐ-TTg"), ("CT", "CT-TTg"), (OFFICIAL_LETTER, "TTg-KTTH")]
)
def test_the_prime_ministers_abbreviation_stands_as_practice_writes_it(
    doc_type: str, symbol: str
) -> None:
    # TTg, the Prime Minister's: the one agency abbreviation not in capitals alone
    assert number_symbol(doc_type, "TTg", 5, symbol).passed
    manifest = json.loads(
        build_manifest(make_document(doc_type=doc_type, symbol=symbol), make_attachments())
    )
    acceptance._check_members(manifest)  # the inbox takes it as review does


@pytest.mark.parametrize("symbol", ["QĐ-Ttg", "QĐ-ttg", "QĐ-tTg", "TTg-Kttn"])
def test_another_case_of_the_prime_ministers_abbreviation_fails(symbol: str) -> None:
    assert_refused(number_symbol("QĐ", "TTg", 5, symbol), symbol)


# -- is_upper_group ----------------------------------------------------------------------


@given(groups)
def test_upper_case_letters_and_digits_make_a_group(group: str) -> None:
    assert is_upper_group(group)


@given(groups, st.data())
def test_a_group_with_a_lower_case_letter_is_refused(group: str, data: st.DataObject) -> None:
    uppers = [i for i, ch in enumerate(group) if ch.isupper()]
    at = data.draw(st.sampled_from(uppers)) if uppers else None
    broken = group + "a" if at is None else group[:at] + group[at].lower() + group[at + 1 :]

    assert not is_upper_group(broken)


@given(groups, st.sampled_from(NOT_IN_A_GROUP), st.data())
def test_a_group_with_a_separator_is_refused(group: str, sep: str, data: st.DataObject) -> None:
    at = data.draw(st.integers(min_value=0, max_value=len(group)))

    assert not is_upper_group(group[:at] + sep + group[at:])


def test_an_empty_group_is_refused() -> None:
    assert not is_upper_group("")


@given(st.text())
def test_whatever_passes_as_a_group_is_already_upper_case(text: str) -> None:
    if is_upper_group(text):
        assert text == text.upper()
        assert text.strip() == text and "-" not in text and "/" not in text


# -- competence_parts --------------------------------------------------------------------

words = st.text(alphabet=LETTERS, min_size=1, max_size=10)
titles = st.lists(words, min_size=1, max_size=4).map(" ".join)
prefixes = st.sampled_from(sorted(COMPETENCE_PREFIXES))


@given(prefixes, titles)
@example("KT.", "CHỦ TỊCH")
@example("TM.", "ỦY BAN NHÂN DÂN")
@example("TL.", "BỘ TRƯỞNG")
def test_a_prefix_and_an_upper_case_title_are_split(prefix: str, title: str) -> None:
    assert (prefix, title) == competence_parts(f"{prefix} {title}")


@given(prefixes, titles)
def test_decomposed_unicode_is_split_as_well(prefix: str, title: str) -> None:
    decomposed = unicodedata.normalize("NFD", f"{prefix} {title}")

    parts = competence_parts(decomposed)

    assert parts is not None
    assert (prefix, title) == (parts[0], unicodedata.normalize("NFC", parts[1]))


@given(prefixes, titles, st.sampled_from(["lower", "no dot", "no space", "no title"]))
@example("KT.", "CHỦ TỊCH", "no dot")  # KT CHỦ TỊCH
@example("KT.", "CHỦ TỊCH", "lower")  # kt. chủ tịch
def test_a_malformed_competence_is_refused(prefix: str, title: str, how: str) -> None:
    malformed = {
        "lower": f"{prefix} {title}".lower(),
        "no dot": f"{prefix.rstrip('.')} {title}",
        "no space": f"{prefix}{title}",
        "no title": f"{prefix} ",
    }[how]

    assert competence_parts(malformed) is None


@given(st.text())
def test_whatever_is_split_is_a_known_prefix_and_an_upper_case_title(text: str) -> None:
    parts = competence_parts(text)
    if parts is not None:
        prefix, title = parts
        assert prefix in COMPETENCE_PREFIXES
        assert text.startswith(prefix + " ")
        assert title and title == title.strip() == title.upper()


# -- competence_chain ---------------------------------------------------------------------


@given(st.sampled_from(sorted(COMPETENCE_CHAINS)), st.lists(titles, min_size=2, max_size=2))
def test_every_allowed_chain_splits_into_its_titles(
    chain: tuple[str, ...], names: list[str]
) -> None:
    text = "\n".join(f"{prefix} {title}" for prefix, title in zip(chain, names, strict=False))

    assert list(zip(chain, names, strict=False)) == competence_chain(text)


@pytest.mark.parametrize(
    "text",
    [
        "KT. CHỦ TỊCH TM. ỦY BAN NHÂN DÂN",
        "TUQ. CHỦ TỊCH KT. CHÁNH VĂN PHÒNG",
        "KT. CHỦ TỊCH KT. PHÓ CHỦ TỊCH",
        "TM. ỦY BAN NHÂN DÂN KT.",
        "ỦY BAN KT. CHỦ TỊCH",
        "TM.ỦY BAN NHÂN DÂN",
    ],
)
def test_a_chain_the_decree_does_not_describe_is_refused(text: str) -> None:
    assert competence_chain(text) is None


@given(st.text())
def test_whatever_chains_is_an_allowed_chain_of_upper_case_titles(text: str) -> None:
    chain = competence_chain(text)
    if chain is not None:
        assert tuple(p for p, _ in chain) in COMPETENCE_CHAINS
        assert all(t and t == t.upper() for _, t in chain)


# -- grants_competence ---------------------------------------------------------------------

upper_chains = st.sampled_from(sorted(c for c in COMPETENCE_CHAINS if len(c) == 2))


@given(upper_chains, st.lists(titles, min_size=2, max_size=2), st.sampled_from(["\n", " "]))
def test_a_stacked_block_is_covered_by_its_own_line_or_the_whole_block(
    chain: tuple[str, ...], names: list[str], sep: str
) -> None:
    lines = [f"{prefix} {title}" for prefix, title in zip(chain, names, strict=True)]
    written = sep.join(lines)

    assert grants_competence(lines[1], written)  # the signer's own line: KT. or Q.
    assert grants_competence(" ".join(lines), written)
    assert grants_competence("", written)


@given(upper_chains, st.lists(titles, min_size=2, max_size=2))
def test_the_upper_line_alone_or_a_block_for_a_lone_line_is_not_covered(
    chain: tuple[str, ...], names: list[str]
) -> None:
    lines = [f"{prefix} {title}" for prefix, title in zip(chain, names, strict=True)]

    # TM. <body> is the body's line, not the signer's; a block is more than its last line.
    assert not grants_competence(lines[0], "\n".join(lines))
    assert not grants_competence(" ".join(lines), lines[1])


# -- the deputy rule, through the signer block ---------------------------------------------


def signer_block(position: str, competence: str) -> Finding:
    doc = letter_row(
        signer_name="Nguyễn Văn Phương",
        signer_position=position,
        signer_competence=competence,
        signer_user="",  # no account: the check then needs no database
    )
    return formatting.signer_block(Letter(doc))  # type: ignore[arg-type]


@given(titles, st.sampled_from([str, str.lower, str.title]), st.booleans())
def test_a_deputy_signs_for_the_head_with_kt(title: str, case: Any, decomposed: bool) -> None:
    position = case(f"PHÓ {title}")
    competence = f"KT. {title}"
    if decomposed:
        position, competence = (unicodedata.normalize("NFD", t) for t in (position, competence))

    assert signer_block(position, competence).passed
    assert "signer_competence" == signer_block(position, "").details.get("field")


@given(titles)
def test_kt_by_someone_who_is_no_deputy_fails(title: str) -> None:
    finding = signer_block(title, f"KT. {title}")

    assert (False, "signer_position") == (finding.passed, finding.details.get("field"))


# Capitals of other scripts that look like Latin ones: Cyrillic А В Е К М Н О Р С Т Х,
# Greek Α Β Ε Κ Μ Ν Ο Ρ Τ Χ, and the Latin-1 look-alikes outside Vietnamese (Ð, Ø).
LOOK_ALIKES = "АВЕКМНОРСТХΑΒΕΚΜΝΟΡΤΧÐØ"


@given(st.text(LETTERS + DIGITS, min_size=0, max_size=6), st.sampled_from(LOOK_ALIKES))
def test_a_look_alike_capital_of_another_script_is_refused(head: str, alike: str) -> None:
    # "TĐKТ" with a Cyrillic Т looks like TĐKT and would be another symbol to the
    # duplicate checks
    assert alike.isupper()
    assert not is_upper_group(head + alike)


@given(st.text(LETTERS, min_size=1, max_size=6))
def test_a_decomposed_accent_is_refused(group: str) -> None:
    decomposed = unicodedata.normalize("NFD", group + "Ộ")
    assert not is_upper_group(decomposed)
    assert is_upper_group(unicodedata.normalize("NFC", decomposed))


def test_every_vietnamese_capital_and_no_lower_case_letter_makes_a_group() -> None:
    lower = (
        "aàáảãạăằắẳẵặâầấẩẫậbcdđeèéẻẽẹêềếểễệfghiìíỉĩịjklmnoòóỏõọôồốổỗộơờớởỡợ"
        "pqrstuùúủũụưừứửữựvwxyỳýỷỹỵz"
    )
    assert all(is_upper_group(ch.upper()) for ch in lower)
    assert not any(is_upper_group(ch) for ch in lower)
