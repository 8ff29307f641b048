"""Only a signature may be added to the reviewed PDF: ``pdfchanges.check_only_a_signature_added``.

The reviewed letter (``sample_pdf``, two pages, no form) is changed the ways a signer's
tool could change it before or after signing (``tests.pdf_edits``), then signed. Where
pdfsig (poppler) can see the difference, it is asked too: it sees only what follows a
signature, never what was changed before it.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name, pdf_string
from pyhanko.pdf_utils.reader import PdfFileReader

from congvan.actions.signing import pades, pki
from congvan.actions.signing.pdfchanges import check_only_a_signature_added
from congvan.actions.signing.pdfpages import page_leaves
from congvan.states.errors import ManifestMismatch, PdfModified
from congvan.workflow.letters import sample_pdf
from tests.integration.test_pades import _tool
from tests.pdf_edits import (
    add_annotation,
    add_signature_field,
    blank_pages,
    change_text_field,
    paint_over,
    token_sign,
    with_text_field,
)

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)
PASSPHRASE = "mật khẩu thử nghiệm"


@dataclass(frozen=True)
class Holder:
    key: pki.PrivateKey
    cert: x509.Certificate


@dataclass(frozen=True)
class Pki:
    root: x509.Certificate
    root_pem: bytes
    crl: bytes
    signer: Holder
    other: Holder  # another signer of the same agency


def _holder(ca: pki.Issued, name: str, user_id: str) -> Holder:
    issued = pki.issue_signer_certificate(
        ca,
        PASSPHRASE,
        full_name=name,
        position="Phó Chủ tịch",
        agency_id="000.00.00.H57",
        agency_name="UBND tỉnh Thừa Thiên Huế",
        user_id=user_id,
        passphrase=PASSPHRASE,
        valid_from=NOW - DAY,
        valid_days=365,
        crl_url="http://ca.congvan.test/root.crl",
    )
    return Holder(pki.load_private_key(issued.key_pem, PASSPHRASE), issued.certificate)


@pytest.fixture(scope="module")
def keys() -> Pki:
    ca = pki.create_ca(
        "Congvan Test Root CA", "Ban Cơ yếu (thử nghiệm)", passphrase=PASSPHRASE,
        valid_from=NOW - 30 * DAY, valid_days=3650,
    )  # fmt: skip
    crl = pki.make_crl(ca, PASSPHRASE, [], this_update=NOW - DAY, next_update=NOW + DAY, number=1)
    return Pki(
        root=ca.certificate,
        root_pem=ca.cert_pem,
        crl=crl,
        signer=_holder(ca, "Nguyễn Văn Phương", "CCCD:046090001234"),
        other=_holder(ca, "Trần Thị Bích", "CCCD:046090005678"),
    )


@pytest.fixture(scope="module")
def letter() -> bytes:
    return sample_pdf()


def stamp(pdf: bytes, who: Holder, keys: Pki, **kw: object) -> bytes:
    """Signed as congvan signs on the server: a stamp on page 1."""
    return pades.sign_pdf(
        pdf,
        key=who.key,
        cert=who.cert,
        chain=[keys.root],
        signer_name="Nguyễn Văn Phương",
        position="Phó Chủ tịch",
        agency_name="UBND tỉnh Thừa Thiên Huế",
        signing_time=NOW,
        **kw,  # type: ignore[arg-type]
    )


def token(pdf: bytes, who: Holder, keys: Pki, **kw: object) -> bytes:
    """Signed by a signer's own tool (pyHanko directly)."""
    return token_sign(
        pdf, key=who.key, cert=who.cert, chain=[keys.root], signing_time=NOW, **kw  # type: ignore[arg-type]
    )  # fmt: skip


def refused(original: bytes, signed: bytes) -> dict[str, object]:
    with pytest.raises(PdfModified) as caught:
        check_only_a_signature_added(original, signed)
    assert caught.value.code == "pdf_modified"
    return caught.value.details


# -- accepted ----------------------------------------------------------------------------


def test_a_stamp_signature_on_page_one_is_all_that_was_added(keys: Pki, letter: bytes) -> None:
    check_only_a_signature_added(letter, stamp(letter, keys.signer, keys))


def test_a_token_signature_with_its_widget_on_page_two_is_accepted(
    keys: Pki, letter: bytes
) -> None:
    # Given the letter signed by another tool, its widget on the second page
    signed = token(letter, keys.signer, keys, page=1)

    # Then only a signature was added, and congvan's verification agrees
    check_only_a_signature_added(letter, signed)
    verdict = pades.verify_pdf(signed, trust_roots=[keys.root], crls=[keys.crl], at=NOW + DAY / 24)
    assert (verdict.signature_count, verdict.field_name) == (1, "TokenSignature")


def test_an_invisible_token_signature_is_accepted(keys: Pki, letter: bytes) -> None:
    check_only_a_signature_added(letter, token(letter, keys.signer, keys, box=(0, 0, 0, 0)))


def test_a_signature_the_reviewed_file_already_carried_stays_and_one_is_added(
    keys: Pki, letter: bytes
) -> None:
    # Given a reviewed file that was signed before review (the flow expected it)
    reviewed = stamp(letter, keys.other, keys)

    # Then our signature after it, its stamp beside the first, is all that was added
    beside = (42.5, 4.0, 292.5, 54.0)
    check_only_a_signature_added(reviewed, token(reviewed, keys.signer, keys, box=beside))


def test_a_signature_added_to_a_file_with_a_filled_form_is_accepted(
    keys: Pki, letter: bytes
) -> None:
    reviewed = with_text_field(letter, "so_ky_hieu", "1227/UBND-TDKT")
    check_only_a_signature_added(reviewed, stamp(reviewed, keys.signer, keys))


def test_a_signature_in_the_field_the_reviewed_file_prepared_is_accepted(
    keys: Pki, letter: bytes
) -> None:
    reviewed = add_signature_field(letter, "ChuKyLanhDao")
    signed = stamp(reviewed, keys.signer, keys, field_name="ChuKyLanhDao")
    check_only_a_signature_added(reviewed, signed)


# -- refused -----------------------------------------------------------------------------


def test_page_one_painted_over_before_signing_is_refused(keys: Pki, letter: bytes) -> None:
    # Given the letter with a white box and other words drawn over page 1, then signed
    painted = paint_over(letter)
    signed = stamp(painted, keys.signer, keys)
    assert signed.startswith(letter)

    # Then it is refused, naming the revision that changed the page
    details = refused(letter, signed)
    assert details["revision"] == 1
    assert details["modification_level"] == "OTHER"
    assert "unexplained" in str(details["reason"])


@pytest.mark.parametrize("subtype", ["/Square", "/FreeText"])
def test_an_annotation_that_draws_added_before_signing_is_refused(
    keys: Pki, letter: bytes, subtype: str
) -> None:
    signed = stamp(add_annotation(letter, subtype), keys.signer, keys)
    details = refused(letter, signed)
    assert (details["revision"], details["modification_level"]) == (1, "OTHER")


def test_a_form_value_changed_before_signing_is_refused(keys: Pki, letter: bytes) -> None:
    # Given a reviewed file with a filled text field, changed before it was signed
    reviewed = with_text_field(letter, "so_ky_hieu", "1227/UBND-TDKT")
    signed = stamp(change_text_field(reviewed, "so_ky_hieu", "9999/UBND-TDKT"), keys.signer, keys)

    # Then it is refused
    details = refused(reviewed, signed)
    assert (details["revision"], details["modification_level"]) == (2, "OTHER")


def test_a_form_added_beside_the_signature_is_refused(keys: Pki, letter: bytes) -> None:
    # A text field is not what a signature needs, even where the file had no form
    signed = stamp(with_text_field(letter, "ghi_chu", "Mat"), keys.signer, keys)
    assert refused(letter, signed)["modification_level"] == "OTHER"


def test_two_new_signatures_are_refused(keys: Pki, letter: bytes) -> None:
    signed = stamp(stamp(letter, keys.signer, keys), keys.signer, keys)
    details = refused(letter, signed)
    assert details["new_signatures"] == ["Signature1", "Signature2"]
    assert (details["signatures_before"], details["signatures_after"]) == (0, 2)


def test_a_signature_by_another_before_the_new_one_is_refused(keys: Pki, letter: bytes) -> None:
    # Another signer's signature the reviewed file did not carry, then the signer's own
    signed = token(stamp(letter, keys.other, keys), keys.signer, keys)
    details = refused(letter, signed)
    assert details["new_signatures"] == ["Signature1", "TokenSignature"]


def test_an_empty_signature_field_added_beside_the_signature_is_refused(
    keys: Pki, letter: bytes
) -> None:
    # An unsigned field's widget can show a stamp as well as a signed one's
    signed = stamp(add_signature_field(letter, "ChuKyGia"), keys.signer, keys)
    details = refused(letter, signed)
    assert (details["new_signatures"], details["new_fields"]) == (
        ["Signature1"],
        ["ChuKyGia", "Signature1"],
    )


def test_a_signature_pyhanko_cannot_validate_still_counts(keys: Pki, letter: bytes) -> None:
    # A signature with a /SubFilter pyHanko does not list among the file's signatures
    other = stamp(letter, keys.other, keys)
    at = other.index(b"/ETSI.CAdES.detached", len(letter))
    unknown = other[:at] + b"/ETSI.CAdES.detacheX" + other[at + len(b"/ETSI.CAdES.detacheX") :]
    details = refused(letter, token(unknown, keys.signer, keys))
    assert details["new_signatures"] == ["Signature1", "TokenSignature"]
    assert (details["signatures_before"], details["signatures_after"]) == (0, 2)


def test_a_change_after_the_signature_is_refused(keys: Pki, letter: bytes) -> None:
    signed = paint_over(stamp(letter, keys.signer, keys), page=1)
    details = refused(letter, signed)
    assert (details["signature_field"], details["revision"]) == ("Signature1", 1)
    assert details["coverage"] == "ENTIRE_REVISION"


def test_an_update_without_a_signature_is_refused(letter: bytes) -> None:
    details = refused(letter, paint_over(letter))
    assert (details["signatures_before"], details["signatures_after"]) == (0, 0)


def test_bytes_appended_without_a_revision_are_refused(letter: bytes) -> None:
    with pytest.raises(PdfModified, match="no revision"):
        check_only_a_signature_added(letter, letter + b"\n%\n")


def test_a_signature_widget_over_the_whole_page_is_refused(keys: Pki, letter: bytes) -> None:
    # A stamp is a form field's appearance to pyHanko, whatever it draws: bounded here
    signed = token(letter, keys.signer, keys, box=(0, 0, 595, 842))
    details = refused(letter, signed)
    assert details["signature_field"] == "TokenSignature"
    assert details["widget_area"] == 595 * 842


@pytest.mark.parametrize(
    "make",
    [
        lambda letter, signed: letter[:-1] + b"#" + signed[len(letter) :],
        lambda letter, signed: letter,
    ],
    ids=["other-prefix", "nothing-appended"],
)
def test_a_file_that_is_not_the_main_file_plus_updates_is_a_manifest_mismatch(
    keys: Pki, letter: bytes, make: Callable[[bytes, bytes], bytes]
) -> None:
    signed = stamp(letter, keys.signer, keys)
    with pytest.raises(ManifestMismatch) as caught:
        check_only_a_signature_added(letter, make(letter, signed))
    assert type(caught.value) is ManifestMismatch


# -- pdfsig (poppler): what it can judge -------------------------------------------------


@pytest.fixture(scope="module")
def nss_db(keys: Pki, tmp_path_factory: pytest.TempPathFactory) -> str:
    directory = tmp_path_factory.mktemp("nssdb")
    db = f"sql:{directory}"
    (directory / "root.pem").write_bytes(keys.root_pem)
    (directory / "root.crl").write_bytes(keys.crl)
    certutil, crlutil = _tool("certutil"), _tool("crlutil")
    for command in (
        [certutil, "-N", "-d", db, "--empty-password"],
        [certutil, "-A", "-d", db, "-n", "root", "-t", "C,C,C", "-i", f"{directory}/root.pem"],
        [crlutil, "-I", "-d", db, "-t", "1", "-i", f"{directory}/root.crl"],
    ):
        subprocess.run(command, check=True, capture_output=True)
    return db


def pdfsig(pdf: bytes, db: str, tmp_path: Path) -> list[list[str]]:
    """pdfsig's lines for each signature, in order."""
    path = tmp_path / "signed.pdf"
    path.write_bytes(pdf)
    result = subprocess.run(
        [_tool("pdfsig"), "-nssdir", db, "-no-ocsp", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert 0 == result.returncode, result.stderr
    blocks: list[list[str]] = []
    for line in result.stdout.splitlines():
        if line.startswith("Signature #"):
            blocks.append([])
        elif blocks:
            blocks[-1].append(line.strip(" -"))
    return blocks


def test_pdfsig_agrees_the_token_signature_on_page_two_covers_the_whole_file(
    keys: Pki, letter: bytes, nss_db: str, tmp_path: Path
) -> None:
    (lines,) = pdfsig(token(letter, keys.signer, keys, page=1), nss_db, tmp_path)
    assert "Total document signed" in lines
    assert "Signature Validation: Signature is Valid." in lines


def test_pdfsig_counts_the_two_new_signatures_too(
    keys: Pki, letter: bytes, nss_db: str, tmp_path: Path
) -> None:
    blocks = pdfsig(stamp(stamp(letter, keys.signer, keys), keys.signer, keys), nss_db, tmp_path)
    assert len(blocks) == 2
    assert "Total document signed" not in blocks[0]
    assert "Total document signed" in blocks[1]


def test_pdfsig_agrees_a_change_after_the_signature_leaves_it_partial(
    keys: Pki, letter: bytes, nss_db: str, tmp_path: Path
) -> None:
    (lines,) = pdfsig(paint_over(stamp(letter, keys.signer, keys), page=1), nss_db, tmp_path)
    assert "Total document signed" not in lines
    assert "Signature Validation: Signature is Valid." in lines


def test_pdfsig_cannot_see_a_page_painted_over_before_signing(
    keys: Pki, letter: bytes, nss_db: str, tmp_path: Path
) -> None:
    # Why this check exists: to pdfsig the painted-over letter is signed, whole and valid
    (lines,) = pdfsig(stamp(paint_over(letter), keys.signer, keys), nss_db, tmp_path)
    assert "Total document signed" in lines
    assert "Signature Validation: Signature is Valid." in lines


# -- the page tree -----------------------------------------------------------------------


def test_the_widgets_page_is_found_in_one_walk_of_the_page_tree(
    keys: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a letter of 300 pages, signed by a signer's tool on its last page
    many = blank_pages(300)
    signed = token(many, keys.signer, keys, page=299)
    # When the signed file is compared with it, pages are never looked up one by one
    # from the root (a walk per page: minutes for a letter of thousands of pages)
    looked_up = []
    original = PdfFileReader.find_page_for_modification
    monkeypatch.setattr(
        PdfFileReader,
        "find_page_for_modification",
        lambda self, index: looked_up.append(index) or original(self, index),
    )
    check_only_a_signature_added(many, signed)
    assert looked_up == []
    # And the walk finds every page, in order, however the tree nests them
    reader = PdfFileReader(io.BytesIO(signed), strict=False)
    leaves = page_leaves(reader)
    assert len(leaves) == 300
    for index in (0, 1, 150, 299):
        page = reader.find_page_for_modification(index)[0].get_object()
        assert leaves[index] is page or leaves[index] == page, index


def test_a_page_tree_that_loops_or_holds_more_than_asked_is_refused() -> None:
    reader = PdfFileReader(io.BytesIO(blank_pages(3)), strict=False)
    with pytest.raises(ValueError, match="more than 2 pages"):
        page_leaves(reader, most=2)
    # a node listed twice in the tree (a loop, or one page shown twice) is no page tree
    tree = reader.root["/Pages"]
    kids = tree["/Kids"]
    kids.append(kids.raw_get(0))
    with pytest.raises(ValueError, match="twice"):
        page_leaves(reader)


# -- what a signature needs and no more ----------------------------------------------------


def _action(kind: str, **entries: generic.PdfObject) -> generic.DictionaryObject:
    return generic.DictionaryObject(
        {pdf_name("/S"): pdf_name(kind), **{pdf_name(f"/{k}"): v for k, v in entries.items()}}
    )


@pytest.mark.parametrize(
    ("field_keys", "found"),
    [
        # a script run as page 1 opens, a program launched, a file on another machine
        ({"/AA": generic.DictionaryObject({pdf_name("/PO"): _action("/JavaScript",
          JS=pdf_string("app.alert(1)"))})}, ["/AA", "/JS", "/JavaScript"]),
        ({"/A": _action("/Launch", F=pdf_string("cmd.exe"))}, ["/A", "/Launch"]),
        ({"/A": _action("/GoToR", F=pdf_string("\\\\x.example\\share\\x.pdf"))},
         ["/A", "/GoToR"]),
        # and what clicking the stamp would open, whatever it is, however its /Type reads
        ({"/A": _action("/URI", URI=pdf_string("https://x.example"))}, ["/A"]),
        ({"/Type": pdf_name("/Widget"), "/A": _action("/Named", N=pdf_name("/Print"))},
         ["/A"]),
    ],
)  # fmt: skip
def test_a_signature_field_that_acts_is_more_than_a_signature(
    keys: Pki, letter: bytes, field_keys: dict[str, generic.PdfObject], found: list[str]
) -> None:
    # Given the letter signed by a signer's tool whose field carries an action
    signed = token(letter, keys.signer, keys, field_keys=field_keys)
    # Then it is refused, naming what acts
    details = refused(letter, signed)
    assert details["found"] == found
    # while the same field without it is a signature
    check_only_a_signature_added(letter, token(letter, keys.signer, keys, field_keys={}))


def test_a_stamp_no_page_lists_is_measured_all_the_same(keys: Pki, letter: bytes) -> None:
    # Given a signer's tool whose widget covers page 1 whole, left out of its annotations
    whole = (0.0, 0.0, 595.0, 842.0)
    signed = token(letter, keys.signer, keys, box=whole, field_keys={}, listed=False)
    # Then it is refused: a reader that repairs the form would show it over the letter
    details = refused(letter, signed)
    assert details["widget_area"] == 595 * 842
    # as is one of a stamp's size (no page shows it where it stands), which listed is one
    small = (302.78, 4.0, 552.78, 54.0)  # where page 1 shows nothing
    refused(letter, token(letter, keys.signer, keys, box=small, field_keys={}, listed=False))
    check_only_a_signature_added(letter, token(letter, keys.signer, keys, box=small))
