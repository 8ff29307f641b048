"""PAdES in the letter's PDF: signs with a visible stamp, verifies, agrees with pdfsig."""

from __future__ import annotations

import io
import subprocess
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pypdf
import pytest
from cryptography import x509
from pyhanko.pdf_utils.generic import pdf_string
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pypdf.generic import DictionaryObject, NameObject, StreamObject

from congvan.actions.signing import pades, pki
from congvan.actions.signing.cms import SigningKey
from congvan.states.errors import (
    CertificateRevoked,
    ChainUntrusted,
    InvalidInput,
    ManifestMismatch,
    SignatureError,
)
from congvan.workflow.letters import sample_pdf
from tests.pdf_edits import with_page_box, with_page_entries
from tests.tools import require

NOW = datetime.now(UTC).replace(microsecond=0)
LATER = NOW + timedelta(minutes=1)
DAY = timedelta(days=1)
PASSPHRASE = "mật khẩu thử nghiệm"
AGENCY_ID = "000.00.00.H57"
AGENCY = "UBND tỉnh Thừa Thiên Huế"
NAME = "Nguyễn Văn Phương"
POSITION = "Phó Chủ tịch"
CRL_URL = "http://ca.congvan.test/root.crl"


@dataclass(frozen=True)
class Signer:
    key: SigningKey
    cert: x509.Certificate


@dataclass(frozen=True)
class Pki:
    root: x509.Certificate
    root_pem: bytes
    crl: bytes
    signer: Signer
    revoked: Signer
    rogue: Signer  # issued by a root nobody trusts


def _issue(ca: pki.Issued, name: str, user_id: str) -> Signer:
    issued = pki.issue_signer_certificate(
        ca,
        PASSPHRASE,
        full_name=name,
        position=POSITION,
        agency_id=AGENCY_ID,
        agency_name=AGENCY,
        user_id=user_id,
        passphrase=PASSPHRASE,
        valid_from=NOW - DAY,
        valid_days=365,
        crl_url=CRL_URL,
    )
    return Signer(pki.load_private_key(issued.key_pem, PASSPHRASE), issued.certificate)


@pytest.fixture(scope="module")
def test_pki() -> Pki:
    ca = pki.create_ca(
        "Congvan Test Root CA",
        "Ban Cơ yếu Chính phủ (thử nghiệm)",
        passphrase=PASSPHRASE,
        valid_from=NOW - 30 * DAY,
        valid_days=3650,
    )
    signer = _issue(ca, NAME, "CCCD:046090001234")
    revoked = _issue(ca, "Trần Thị Bích", "CCCD:046090005678")
    crl = pki.make_crl(
        ca,
        PASSPHRASE,
        [(revoked.cert.serial_number, NOW - timedelta(hours=2), x509.ReasonFlags.key_compromise)],
        this_update=NOW - timedelta(hours=1),
        next_update=NOW + 7 * DAY,
        number=1,
    )
    other = pki.create_ca(
        "Rogue CA", "Không tin cậy", passphrase=PASSPHRASE, valid_from=NOW - DAY, valid_days=3650
    )
    return Pki(
        root=ca.certificate,
        root_pem=ca.cert_pem,
        crl=crl,
        signer=signer,
        revoked=revoked,
        rogue=_issue(other, NAME, "CCCD:046090001234"),
    )


def sign(
    pdf: bytes, who: Signer, chain: list[x509.Certificate], name: str = NAME, **kw: object
) -> bytes:
    return pades.sign_pdf(
        pdf,
        key=who.key,
        cert=who.cert,
        chain=chain,
        signer_name=name,
        position=POSITION,
        agency_name=AGENCY,
        signing_time=NOW,
        **kw,  # type: ignore[arg-type]
    )


def verify(pdf: bytes, p: Pki) -> pades.PdfVerdict:
    return pades.verify_pdf(pdf, trust_roots=[p.root], crls=[p.crl], at=LATER)


@pytest.fixture(scope="module")
def letter() -> bytes:
    return sample_pdf()


@pytest.fixture(scope="module")
def signed(test_pki: Pki, letter: bytes) -> bytes:
    return sign(letter, test_pki.signer, [test_pki.root])


def tamper(pdf: bytes) -> bytes:
    """Flip one bit inside the first signed byte range: a digit of /CreationDate."""
    at = pdf.index(b"/CreationDate (D:") + len(b"/CreationDate (D:") + 3
    return pdf[:at] + bytes([pdf[at] ^ 1]) + pdf[at + 1 :]


def signature_widgets(pdf: bytes) -> list[DictionaryObject]:
    page = pypdf.PdfReader(io.BytesIO(pdf)).pages[0]
    annotations = [a.get_object() for a in page.get("/Annots", [])]
    return [a for a in annotations if a.get("/FT") == "/Sig"]


def stamp_text(widget: DictionaryObject) -> str:
    """The text the widget's appearance stream draws, extracted by pypdf."""
    writer = pypdf.PdfWriter()
    page = writer.add_blank_page(300, 100)
    appearance = widget["/AP"]["/N"].get_object().clone(writer)
    page[NameObject("/Resources")] = DictionaryObject(
        {
            NameObject("/XObject"): DictionaryObject(
                {NameObject("/Stamp"): appearance.indirect_reference}
            )
        }
    )
    content = StreamObject()
    content.set_data(b"q /Stamp Do Q")
    page[NameObject("/Contents")] = writer._add_object(content)
    return page.extract_text()


# -- in-process ------------------------------------------------------------------------


def test_a_signed_letter_verifies_and_says_what_was_checked(
    test_pki: Pki, letter: bytes, signed: bytes
) -> None:
    assert signed.startswith(letter)  # an incremental update: the letter is untouched
    verdict = verify(signed, test_pki)
    assert (verdict.intact, verdict.valid, verdict.trusted) == (True, True, True)
    assert verdict.covers_entire_file and "ENTIRE_FILE" == verdict.coverage
    assert "/ETSI.CAdES.detached" == verdict.subfilter
    assert "Signature1" == verdict.field_name
    assert 1 == verdict.signature_count
    assert NOW == verdict.signing_time
    assert timedelta(hours=7) == verdict.signing_time.utcoffset()  # /M is written at +07:00
    assert LATER == verdict.checked_at
    assert NAME == verdict.signer.common_name
    assert POSITION == verdict.signer.title
    assert AGENCY == verdict.signer.organization
    assert AGENCY_ID == verdict.signer.organizational_unit


def test_a_stamp_with_letters_its_font_cannot_draw_is_refused_not_cut(
    letter: bytes, test_pki: Pki
) -> None:
    # Vietnamese in every form is drawn; a letter of another script or a symbol is not
    assert [] == pades.unshown("Nguyễn Văn Phương, PHÓ CHỦ TỊCH, Ủy ban nhân dân tỉnh Huế")
    assert ["阮", "★"] == pades.unshown("Nguyễn 阮 ★ 阮")
    # and signing refuses a stamp that would leave them out
    with pytest.raises(InvalidInput, match="cannot show 阮"):
        sign(letter, test_pki.signer, [test_pki.root], name="Nguyễn Văn 阮")


def test_the_stamp_goes_where_page_one_is_shown_or_nowhere(letter: bytes) -> None:
    # Given the letter (A4, its MediaBox on the page) with a CropBox its page tree gives it,
    # showing the top of the page only
    a4 = pades.default_box(letter)
    top = with_page_entries(letter, pages={"/CropBox": [0, 300, 595.28, 841.89]})
    # Then the stamp stands inside what is shown, not under the crop: at its top right,
    # as its bottom right (y 304-354) shows the letter's text
    _, _, x1, y1 = pades.default_box(top)
    assert (x1, y1) == pytest.approx((a4[2], 841.89 - a4[1]))
    # And a CropBox larger than the page is clipped to it: the stamp stays on the page
    larger = with_page_entries(letter, page={"/CropBox": [-100, -100, 2000, 2000]})
    assert pades.default_box(larger) == pytest.approx(a4)
    # But a CropBox beside the page shows nothing, and a turned page would show the
    # stamp sideways: neither is signed (review says why)
    beside = with_page_entries(letter, page={"/CropBox": [1000, 1000, 1600, 1900]})
    turned = with_page_entries(letter, pages={"/Rotate": 90})
    assert "outside its /MediaBox" in (pades.stamp_problem(beside) or "")
    assert "/Rotate 90" in (pades.stamp_problem(turned) or "")
    assert pades.stamp_problem(with_page_entries(letter, page={"/Rotate": 360})) is None
    # However the turn is written: a real number, past a whole turn, backwards
    for rotate, said in ((90.0, "/Rotate 90"), (450, "/Rotate 450"), (-270, "/Rotate -270")):
        turned = with_page_entries(letter, page={"/Rotate": rotate})
        assert said in (pades.stamp_problem(turned) or ""), rotate
    assert pades.stamp_problem(with_page_entries(letter, page={"/Rotate": 720.0})) is None
    # and a /Rotate that is no number is no page to stamp either
    named = with_page_entries(letter, page={"/Rotate": "/Ninety"})
    assert "/Rotate is not a number" in (pades.stamp_problem(named) or "")


def test_the_stamp_is_on_page_one_bottom_right_with_the_signers_details(
    letter: bytes, signed: bytes
) -> None:
    [widget] = signature_widgets(signed)
    assert "Signature1" == widget["/T"]
    x0, y0, x1, y1 = (float(v) for v in widget["/Rect"])
    width, height = 595.28, 841.89  # A4
    assert (x0, y0, x1, y1) == pytest.approx(pades.default_box(letter))
    assert (x1, y0) == pytest.approx((width - 42.5, 4.0))
    assert (x1 - x0, y1 - y0) == pytest.approx((250.0, 50.0))
    assert y1 < 56.7 < height / 2  # inside the letter's 2 cm bottom margin
    local = NOW.astimezone(pades.VIETNAM).strftime("%H:%M:%S %d/%m/%Y +07:00")  # as people read it
    assert [
        f"Ký bởi: {NAME}",
        f"Chức vụ: {POSITION}",
        f"Cơ quan: {AGENCY}",
        f"Thời gian ký: {local}",
    ] == stamp_text(widget).splitlines()


def test_the_stamp_text_is_nfc_normalised(test_pki: Pki, letter: bytes) -> None:
    decomposed = unicodedata.normalize("NFD", NAME)
    assert decomposed != NAME
    signed = sign(letter, test_pki.signer, [test_pki.root], name=f"  {decomposed} ")
    [widget] = signature_widgets(signed)
    assert f"Ký bởi: {NAME}" == stamp_text(widget).splitlines()[0]
    assert NAME == pypdf.PdfReader(io.BytesIO(signed)).get_fields()["Signature1"]["/V"]["/Name"]


def test_a_second_signature_keeps_the_first_valid(test_pki: Pki, signed: bytes) -> None:
    box = (42.5, 4.0, 250.0, 54.0)
    twice = sign(signed, test_pki.signer, [test_pki.root], box=box)
    verdict = verify(twice, test_pki)
    assert (2, "Signature2") == (verdict.signature_count, verdict.field_name)
    rects = {str(w["/T"]): [float(v) for v in w["/Rect"]] for w in signature_widgets(twice)}
    assert pytest.approx(list(box)) == rects["Signature2"]


def test_a_flipped_byte_in_the_signed_range_is_a_manifest_mismatch(
    test_pki: Pki, signed: bytes
) -> None:
    with pytest.raises(ManifestMismatch, match="signed bytes"):
        verify(tamper(signed), test_pki)


def test_an_update_appended_after_the_signature_is_refused(test_pki: Pki, signed: bytes) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    writer.root["/Lang"] = pdf_string("vi")  # any change after signing, however small
    writer.update_root()
    changed = io.BytesIO()
    writer.write(changed)
    with pytest.raises(ManifestMismatch, match="after its last signature") as caught:
        verify(changed.getvalue(), test_pki)
    assert "ENTIRE_REVISION" == caught.value.details["coverage"]


def test_a_revoked_certificate_is_named(test_pki: Pki, letter: bytes) -> None:
    signed = sign(letter, test_pki.revoked, [test_pki.root])
    with pytest.raises(CertificateRevoked) as caught:
        verify(signed, test_pki)
    assert "key_compromise" == caught.value.details["reason"]
    assert "Trần Thị Bích" == caught.value.details["signer"]


def test_a_certificate_from_an_untrusted_root_is_named(test_pki: Pki, letter: bytes) -> None:
    with pytest.raises(ChainUntrusted):
        verify(sign(letter, test_pki.rogue, []), test_pki)


def test_an_unsigned_or_unreadable_file_is_a_signature_error(test_pki: Pki, letter: bytes) -> None:
    with pytest.raises(SignatureError, match="no signature"):
        verify(letter, test_pki)
    with pytest.raises(SignatureError, match="not a readable PDF"):
        verify(b"%PDF-1.7 not really", test_pki)


def test_signing_refuses_a_naive_time_and_a_non_pdf(test_pki: Pki, letter: bytes) -> None:
    s = test_pki.signer
    common = {"signer_name": NAME, "position": POSITION, "agency_name": AGENCY}
    with pytest.raises(ValueError, match="timezone-aware"):
        pades.sign_pdf(
            letter,
            key=s.key,
            cert=s.cert,
            chain=[],
            signing_time=NOW.replace(tzinfo=None),
            **common,
        )
    with pytest.raises(InvalidInput):
        pades.sign_pdf(b"hello", key=s.key, cert=s.cert, chain=[], signing_time=NOW, **common)


@pytest.mark.parametrize(
    ("box", "said"),
    [
        ((0, 0, 0, 0), "page 1 (0 x 0 pt) has no room for the signer's stamp"),
        ((0, 0, 10, 10), "page 1 (10 x 10 pt) has no room for the signer's stamp"),
        ((0, 0, "a", 5), "page 1's /MediaBox is not a rectangle of four numbers"),
        (None, "page 1 has no MediaBox"),
    ],
)
def test_a_page_with_no_room_for_the_stamp_is_not_a_pdf_that_can_be_signed(
    test_pki: Pki, letter: bytes, box: tuple[float | str, ...] | None, said: str
) -> None:
    # Given the letter whose page box is empty, too small, malformed or missing
    pdf = with_page_box(letter, box)
    # When the server signs it with its visible stamp
    # Then the file is refused as one that cannot be signed, saying why: nothing was
    # modified, so no pdf_modified
    with pytest.raises(InvalidInput, match="not a PDF that can be signed") as refused:
        sign(pdf, test_pki.signer, [test_pki.root])
    assert refused.value.code == "invalid_input"
    assert said in refused.value.message
    assert (pades.stamp_problem(pdf) or "").startswith(said)
    assert pades.stamp_problem(letter) is None


# -- pdfsig (poppler) with an NSS database trusting the test root ------------------------


def _tool(name: str) -> str:
    return require(name)  # a missing tool fails the test, naming the setup command


@pytest.fixture(scope="module")
def nss_db(test_pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> str:
    directory = tmp_path_factory.mktemp("nssdb")
    db = f"sql:{directory}"
    (directory / "root.pem").write_bytes(test_pki.root_pem)
    (directory / "root.crl").write_bytes(test_pki.crl)
    certutil, crlutil = _tool("certutil"), _tool("crlutil")

    def run(*command: str) -> None:
        subprocess.run(command, check=True, capture_output=True)

    run(certutil, "-N", "-d", db, "--empty-password")
    # "C,," is not enough: poppler checks the email-signer usage.
    run(certutil, "-A", "-d", db, "-n", "test-root", "-t", "C,C,C", "-i", f"{directory}/root.pem")
    # Offline revocation data; without it poppler 22.12 reports "Unknown issue ...".
    run(crlutil, "-I", "-d", db, "-t", "1", "-i", f"{directory}/root.crl")
    return db


def pdfsig(pdf: bytes, db: str, tmp_path: Path) -> dict[str, str]:
    """pdfsig's verdict lines. It exits 0 even on a digest mismatch, so read its output."""
    path = tmp_path / "document.pdf"
    path.write_bytes(pdf)
    result = subprocess.run(
        [_tool("pdfsig"), "-nssdir", db, "-no-ocsp", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert 0 == result.returncode, result.stderr
    lines = dict(
        line.strip(" -").split(": ", 1) for line in result.stdout.splitlines() if ": " in line
    )
    return lines


def test_pdfsig_accepts_the_signed_letter(signed: bytes, nss_db: str, tmp_path: Path) -> None:
    lines = pdfsig(signed, nss_db, tmp_path)
    assert "Signature is Valid." == lines["Signature Validation"]
    assert "Certificate is Trusted." == lines["Certificate Validation"]
    assert "ETSI.CAdES.detached" == lines["Signature Type"]
    assert NAME == lines["Signer Certificate Common Name"]


def test_pdfsig_finds_the_flipped_byte(signed: bytes, nss_db: str, tmp_path: Path) -> None:
    assert "Digest Mismatch." == pdfsig(tamper(signed), nss_db, tmp_path)["Signature Validation"]


def test_pdfsig_finds_the_revoked_certificate(
    test_pki: Pki, letter: bytes, nss_db: str, tmp_path: Path
) -> None:
    lines = pdfsig(sign(letter, test_pki.revoked, [test_pki.root]), nss_db, tmp_path)
    assert "Signature is Valid." == lines["Signature Validation"]
    assert "Certificate has been Revoked." == lines["Certificate Validation"]
