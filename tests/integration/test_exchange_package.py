"""A package from one agency to another: written, opened, verified, and every way it is refused."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import string
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from congvan.actions.exchange.acceptance import Accepted, verify_package
from congvan.actions.exchange.archive import Limits
from congvan.actions.exchange.names import safe_step
from congvan.actions.exchange.package import Package, open_package
from congvan.actions.exchange.writing import write_package
from congvan.actions.signing import keystore, keywrap
from congvan.actions.signing.cms import sign_manifest
from congvan.actions.signing.manifest import build_manifest
from congvan.states.errors import (
    AgencyMismatch,
    AgencySignatureInvalid,
    DocumentSignatureInvalid,
    ExchangeRefused,
    MessageMalformed,
    Misaddressed,
    PackageTampered,
    PeerUnknown,
)
from congvan.workflow.letters import sample_pdf
from tests.exchange_world import (
    APPENDIX,
    MAIN_NAME,
    MAIN_PDF,
    NOW,
    SENT_AT,
    A,
    B,
    C,
    World,
    build_world,
    listed,
    members,
    resigned,
    zipped,
)
from tests.tools import verify_with_openssl

LIMITS = Limits(max_total_size=10_000_000, max_parts=50)
MAIN = "files/1227-UBND-TĐKT.pdf"


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with pytest.MonkeyPatch.context() as patch:  # the keys are made before the session's
        patch.setattr(keywrap, "KDF_ITERATIONS", 1_000)
        yield build_world()


@pytest.fixture(scope="module")
def sent(world: World) -> bytes:
    return world.write()[0]


def accept(
    data: bytes, world: World, *, us: str = B, known: frozenset[str] = frozenset({A, C})
) -> Accepted:
    with open_package(io.BytesIO(data), LIMITS) as package:
        return verify_package(
            package,
            world.trust,
            expected_recipient=us,
            now=NOW,
            directory_lookup=known.__contains__,
        )


def refusal(data: bytes, world: World, **options: Any) -> ExchangeRefused:
    with pytest.raises(ExchangeRefused) as caught:
        accept(data, world, **options)
    return caught.value


# -- what is sent arrives ----------------------------------------------------------------


def test_a_package_written_by_one_agency_is_accepted_by_its_recipient(world: World) -> None:
    # Given the province's package of letter 1227 for the department
    data, written = world.write()

    # When the department opens and verifies it
    accepted = accept(data, world)

    # Then it is the province's signed letter, as the province wrote it
    manifest, _cms = world.document()
    assert (accepted.header.sender, accepted.header.recipient) == (A, B)
    assert (accepted.header.message_id, accepted.header.document_id) == ("dispatch-7f3a", "doc-1")
    assert accepted.header.sent_at == SENT_AT
    assert accepted.manifest == manifest
    assert accepted.package_sha256 == written.sha256 == hashlib.sha256(data).hexdigest()
    assert accepted.manifest_sha256 == written.manifest_sha256
    assert accepted.agency.signer.organizational_unit == A
    assert accepted.agency.signer.profile == "agency"
    assert accepted.signer.signer.profile == "signer"
    assert accepted.header.signed_pdf is None and accepted.signed_pdf is None
    with open_package(io.BytesIO(data), LIMITS) as package:
        files = {p.name: package.open_part(p.name).read() for p in package.header.parts}
    assert files[MAIN] == MAIN_PDF
    assert files[f"files/{APPENDIX}"] == world.files[APPENDIX]


def test_the_same_dispatch_written_again_is_the_same_bytes(world: World) -> None:
    # A retry after an unknown outcome carries the same message id; it is the same package.
    assert world.write()[0] == world.write()[0]


def test_every_member_is_stored_and_package_json_comes_first(sent: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(sent)) as archive:
        infos = archive.infolist()

    assert [i.filename for i in infos[:4]] == [
        "package.json",
        "agency.p7s",
        "manifest.json",
        "signature.p7s",
    ]
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}


def test_openssl_verifies_the_agency_signature_over_package_json(
    world: World, sent: bytes, tmp_path: Path
) -> None:
    parts = members(sent)
    (tmp_path / "package.json").write_bytes(parts["package.json"])
    (tmp_path / "sig.p7s").write_bytes(parts["agency.p7s"])
    (tmp_path / "ca.pem").write_bytes(world.root.certificate.public_bytes(Encoding.PEM))

    done = verify_with_openssl(tmp_path, "-purpose", "any", content="package.json")

    assert done.returncode == 0, done.stderr
    assert b"Verification successful" in done.stderr


# -- the agency signature ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("signed_by", "error", "reason", "status"),
    [
        ("person_of_a", AgencySignatureInvalid, "certificate_profile_invalid", 401),
        ("a_naming_c", AgencyMismatch, "certificate", 403),
        ("unpinned_a", AgencySignatureInvalid, "chain_untrusted", 401),
        ("revoked_a", AgencySignatureInvalid, "certificate_revoked", 401),
    ],
)
def test_package_json_signed_by_anything_but_the_senders_agency_key_is_refused(
    world: World,
    sent: bytes,
    signed_by: str,
    error: type[ExchangeRefused],
    reason: str,
    status: int,
) -> None:
    # Given the package with package.json signed by another key than the province's
    forged = zipped(resigned(members(sent), by=getattr(world, signed_by)))

    # When the department verifies it
    refused = refusal(forged, world)

    # Then it is refused with the reason the province can record
    assert (type(refused), refused.reason, refused.http_status) == (error, reason, status)


def test_package_json_changed_after_the_agency_signed_it_is_refused(
    world: World, sent: bytes
) -> None:
    parts = members(sent)
    signed = resigned(parts, lambda c: c.update(message_id="dispatch-other"), by=world.agencies[A])

    refused = refusal(zipped({**signed, "agency.p7s": parts["agency.p7s"]}), world)

    assert (type(refused), refused.reason) == (AgencySignatureInvalid, "manifest_mismatch")


def test_a_sender_missing_from_the_directory_is_refused(sent: bytes, world: World) -> None:
    refused = refusal(sent, world, known=frozenset({C}))

    assert (type(refused), refused.reason, refused.http_status) == (
        PeerUnknown,
        "unknown_agency",
        401,
    )


def test_a_sender_in_no_directory_is_refused_not_deferred(sent: bytes, world: World) -> None:
    # Given a receiver that lists certificates for C only: A, whose certificate chains to a
    # pinned root, is in no directory entry here
    listing = dataclasses.replace(world.trust, listed={C: frozenset({"0" * 64})})

    refused = refusal(sent, dataclasses.replace(world, trust=listing), known=frozenset({C}))

    # Then it is refused as unknown (a refusal), not deferred as a certificate still to be
    # imported (503: its sender would try again for nothing)
    assert (type(refused), refused.reason, refused.http_status) == (
        PeerUnknown,
        "unknown_agency",
        401,
    )


def test_a_package_for_another_agency_is_refused(sent: bytes, world: World) -> None:
    refused = refusal(sent, world, us=C)

    assert (type(refused), refused.reason, refused.http_status) == (Misaddressed, "recipient", 403)


# -- the contents --------------------------------------------------------------------------


def test_a_file_changed_in_the_archive_is_refused(world: World, sent: bytes) -> None:
    parts = members(sent)
    tampered = zipped({**parts, MAIN: MAIN_PDF.replace(b"1227", b"1228")})

    refused = refusal(tampered, world)

    assert (type(refused), refused.reason, refused.details["part"]) == (
        PackageTampered,
        "part_digest",
        MAIN,
    )


def test_a_file_cut_short_is_refused(world: World, sent: bytes) -> None:
    refused = refusal(zipped({**members(sent), MAIN: MAIN_PDF[:-1]}), world)

    assert (refused.code, refused.reason) == ("package_tampered", "part_size")


def test_a_part_added_to_the_archive_is_refused(world: World, sent: bytes) -> None:
    refused = refusal(zipped({**members(sent), "files/extra.pdf": b"%PDF-1.4"}), world)

    assert (type(refused), refused.reason) == (MessageMalformed, "extra_part")


def test_a_part_removed_from_the_archive_is_refused(world: World, sent: bytes) -> None:
    parts = {k: v for k, v in members(sent).items() if k != "signature.p7s"}

    assert refusal(zipped(parts), world).reason == "missing_part"


def test_another_documents_manifest_and_signature_swapped_in_are_refused(
    world: World, sent: bytes
) -> None:
    # Given another letter of the province, validly signed, put in this package's place
    other, other_cms = world.document(document_id="doc-2")
    swapped = zipped({**members(sent), "manifest.json": other, "signature.p7s": other_cms})

    # Then what the agency signed no longer matches
    refused = refusal(swapped, world)

    assert (refused.reason, refused.details["part"]) == ("part_digest", "manifest.json")


def test_a_manifest_whose_signature_does_not_verify_is_refused(world: World, sent: bytes) -> None:
    # Given the sender signs (as agency) a package whose signer's CMS is of another manifest
    _other, other_cms = world.document(document_id="doc-2")
    parts = {**members(sent), "signature.p7s": other_cms}

    def relist(content: dict[str, Any]) -> None:
        content["parts"][1] = listed(
            "signature.p7s", "signature", "application/pkcs7-signature", other_cms
        )

    refused = refusal(zipped(resigned(parts, relist, by=world.agencies[A])), world)

    assert (type(refused), refused.reason) == (DocumentSignatureInvalid, "manifest_mismatch")


def test_a_file_the_manifest_does_not_list_is_refused_even_if_package_json_lists_it(
    world: World, sent: bytes
) -> None:
    extra = b"%PDF-1.4 not signed"

    def add(content: dict[str, Any]) -> None:
        content["parts"].append(listed("files/extra.pdf", "appendix", "application/pdf", extra))

    parts = resigned({**members(sent), "files/extra.pdf": extra}, add, by=world.agencies[A])

    assert refusal(zipped(parts), world).reason == "attachment_extra"


def test_a_file_listed_under_another_role_than_the_manifests_is_refused(
    world: World, sent: bytes
) -> None:
    def demote(content: dict[str, Any]) -> None:
        content["parts"][2]["role"] = "appendix"

    parts = resigned(members(sent), demote, by=world.agencies[A])

    assert refusal(zipped(parts), world).reason == "attachment_mismatch"


def test_a_document_of_another_agency_sent_by_the_province_is_refused(
    world: World, sent: bytes
) -> None:
    # Given the city's letter, signed by its signer, packed and signed by the province
    manifest, cms = world.document(agency_id=C)

    def relist(content: dict[str, Any]) -> None:
        content["manifest_sha256"] = hashlib.sha256(manifest).hexdigest()
        content["parts"][0] = listed("manifest.json", "manifest", "application/json", manifest)
        content["parts"][1] = listed(
            "signature.p7s", "signature", "application/pkcs7-signature", cms
        )

    parts = {**members(sent), "manifest.json": manifest, "signature.p7s": cms}
    refused = refusal(zipped(resigned(parts, relist, by=world.agencies[A])), world)

    assert (type(refused), refused.reason, refused.http_status) == (
        AgencyMismatch,
        "manifest_agency",
        403,
    )


def test_package_json_re_serialised_and_signed_again_is_still_refused(
    world: World, sent: bytes
) -> None:
    def pretty(content: dict[str, Any]) -> bytes:
        return json.dumps(content, indent=1, ensure_ascii=False).encode()

    parts = resigned(members(sent), by=world.agencies[A], body=pretty)

    refused = refusal(zipped(parts), world)

    assert (type(refused), refused.reason) == (MessageMalformed, "non_canonical")


# -- the signed PDF ------------------------------------------------------------------------

SIGNED = f"signed/{MAIN_NAME}"


def test_a_package_with_the_signed_pdf_is_accepted_and_lists_it(world: World) -> None:
    # Given the province's package of the letter as a real PDF, with the signer's signed PDF
    signed = world.signed()
    data = world.write_signed(signed)

    # When the department verifies it
    accepted = accept(data, world)

    # Then the signed PDF is the last part, listed like every part, and verified
    last = accepted.header.parts[-1]
    assert (last.name, last.role, last.media_type) == (SIGNED, "signed_pdf", "application/pdf")
    assert (last.size, last.sha256) == (len(signed), hashlib.sha256(signed).hexdigest())
    assert accepted.header.signed_pdf == last and last.filename is None
    assert members(data)[SIGNED] == signed
    assert accepted.signed_pdf is not None
    assert accepted.signed_pdf.signer.sha256 == keystore.fingerprint(world.signer.cert)
    assert accepted.signed_pdf.signature_count == 1


def _flip_in_signature(pdf: bytes) -> bytes:
    """``pdf`` with one hex digit of its signature value changed (in ``/Contents``)."""
    start = pdf.rindex(b"/Contents <") + len(b"/Contents <")
    end = pdf.index(b">", start)
    # The CMS ends with the signature value, then zeros fill the room reserved for it.
    at = len(pdf[:end].rstrip(b"0")) - 40
    return pdf[:at] + (b"0" if pdf[at : at + 1] != b"0" else b"1") + pdf[at + 1 :]


def test_a_signed_pdf_changed_on_the_way_is_refused_as_any_part(world: World) -> None:
    data = world.write_signed()
    parts = members(data)

    refused = refusal(zipped({**parts, SIGNED: _flip_in_signature(parts[SIGNED])}), world)

    assert (type(refused), refused.reason, refused.details["part"]) == (
        PackageTampered,
        "part_digest",
        SIGNED,
    )


@pytest.mark.parametrize(
    ("make", "error", "reason", "underneath"),
    [
        # a signature that no longer verifies, sealed as it is by the sender
        (
            lambda w: _flip_in_signature(w.signed()),
            DocumentSignatureInvalid,
            "signed_pdf_invalid",
            None,
        ),
        # signed by another signer of the province than the one of signature.p7s
        (
            lambda w: w.signed(by=w.other_signer),
            DocumentSignatureInvalid,
            "signed_pdf_signer",
            "signer_mismatch",
        ),
        # the signer's signature over another PDF than the manifest's main file
        (
            lambda w: w.signed(sample_pdf("Bản khác")),
            PackageTampered,
            "signed_pdf_mismatch",
            "manifest_mismatch",
        ),
        # the main file signed, then more than the signature added after it
        (
            lambda w: w.signed() + b"\n% appended after signing\n",
            PackageTampered,
            "signed_pdf_mismatch",
            "pdf_modified",
        ),
    ],
    ids=["tampered", "another-signer", "another-pdf", "changed-after-signing"],
)
def test_a_signed_pdf_that_does_not_hold_is_refused_with_its_reason(
    world: World,
    make: Any,
    error: type[ExchangeRefused],
    reason: str,
    underneath: str | None,
) -> None:
    # Given the province's package whose signed PDF (listed and signed by the agency) is bad
    data = world.write_signed(make(world))

    # When the department verifies it
    refused = refusal(data, world)

    # Then it is refused with the reason the province records, naming what is underneath
    assert (type(refused), refused.reason, refused.http_status) == (error, reason, 422)
    assert refused.details["part"] == SIGNED
    if underneath is not None:
        assert refused.details["error"] == underneath
    if reason == "signed_pdf_signer":
        assert refused.details["pdf_certificate"] == keystore.fingerprint(world.other_signer.cert)


def test_a_signed_pdf_under_another_name_than_the_main_file_is_refused(world: World) -> None:
    parts = members(world.write_signed())
    signed = parts.pop(SIGNED)
    parts["signed/other.pdf"] = signed

    def rename(content: dict[str, Any]) -> None:
        content["parts"][-1]["name"] = "signed/other.pdf"

    refused = refusal(zipped(resigned(parts, rename, by=world.agencies[A])), world)

    assert (type(refused), refused.reason) == (PackageTampered, "signed_pdf_mismatch")


def _twice(content: dict[str, Any]) -> None:
    content["parts"].append({**content["parts"][-1], "name": "signed/again.pdf"})


@pytest.mark.parametrize(
    ("change", "added"),
    [
        # signed/ holds the signed PDF only, as application/pdf
        (lambda c: c["parts"][-1].update(role="appendix"), None),
        (lambda c: c["parts"][-1].update(media_type="application/octet-stream"), None),
        # a file of the manifest is not the signed PDF
        (lambda c: c["parts"][2].update(role="signed_pdf"), None),
        # one signed PDF at most
        (_twice, "signed/again.pdf"),
    ],
    ids=["role", "media-type", "file-with-its-role", "two"],
)
def test_a_signed_pdf_listed_against_the_format_is_malformed(
    world: World, change: Any, added: str | None
) -> None:
    parts = members(world.write_signed())
    if added is not None:
        parts[added] = parts[SIGNED]

    refused = refusal(zipped(resigned(parts, change, by=world.agencies[A])), world)

    assert (type(refused), refused.reason) == (MessageMalformed, "member")


def test_the_writer_refuses_a_signed_pdf_without_a_main_pdf(world: World) -> None:
    manifest, cms = world.document()
    content = json.loads(manifest)
    content["attachments"][0]["media_type"] = "application/msword"

    with pytest.raises(ValueError, match="main file is a PDF"):
        write_package(
            io.BytesIO(),
            message_id="dispatch-1",
            recipient=B,
            manifest=build_manifest(
                {"id": "doc-w", "revision": 1, "agency_id": A}, content["attachments"]
            ),
            signature=cms,
            files={n: io.BytesIO(d) for n, d in world.file_bytes().items()},
            agency=world.agencies[A],
            sent_at=SENT_AT,
            signed_pdf=world.signed(),
        )


# -- what the writer refuses to send --------------------------------------------------------


def test_the_writer_refuses_a_file_that_is_not_the_one_the_manifest_names(world: World) -> None:
    manifest, cms = world.document()
    files = {name: io.BytesIO(data) for name, data in world.file_bytes().items()}
    files[APPENDIX] = io.BytesIO(b"%PDF-1.4 another appendix")

    with pytest.raises(ValueError, match="not the file the manifest names"):
        write_package(
            io.BytesIO(),
            message_id="dispatch-1",
            recipient=B,
            manifest=manifest,
            signature=cms,
            files=files,
            agency=world.agencies[A],
            sent_at=SENT_AT,
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"agency": C}, "not a document of"),
        ({"business_type": "sideways"}, "not sent in"),
        ({"business_type": "recall"}, "names its original and a reason"),
        ({"drop": APPENDIX}, "files missing"),
    ],
)
def test_the_writer_refuses_what_a_receiver_would_refuse(
    world: World, change: dict[str, str], message: str
) -> None:
    manifest, cms = world.document()
    files = {n: io.BytesIO(d) for n, d in world.file_bytes().items() if n != change.get("drop")}

    with pytest.raises(ValueError, match=message):
        write_package(
            io.BytesIO(),
            message_id="dispatch-1",
            recipient=B,
            manifest=manifest,
            signature=cms,
            files=files,
            agency=world.agencies[change.get("agency", A)],
            sent_at=SENT_AT,
            business_type=change.get("business_type", "new"),
        )


# -- whatever the files, what is written is what is read -------------------------------------

NAME_CHARACTERS = string.ascii_letters + string.digits + " -_.()" + "ạăâđêôơườĐỦỹ"
# (any name that can travel: what names can is test_exchange_archive's)
file_names = st.text(NAME_CHARACTERS, min_size=1, max_size=40).filter(safe_step)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    files=st.dictionaries(
        file_names,
        st.binary(max_size=3000),
        min_size=1,
        max_size=5,
        dict_class=dict,
    ).filter(lambda f: len({n.casefold() for n in f}) == len(f))
)
def test_a_package_written_then_read_gives_back_the_same_parts(
    world: World, files: dict[str, bytes]
) -> None:
    # Given a document whose files are any safe names and any bytes
    attachments = [
        {
            "role": "main" if i == 0 else "appendix",
            "filename": name,
            "media_type": "application/octet-stream",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        for i, (name, data) in enumerate(files.items())
    ]
    manifest = build_manifest({"id": "doc-p", "revision": 1, "agency_id": A}, attachments)
    sink = io.BytesIO()

    # When the province writes it and the department opens it
    write_package(
        sink,
        message_id="dispatch-p",
        recipient=B,
        manifest=manifest,
        signature=b"not judged here",
        files={name: io.BytesIO(data) for name, data in files.items()},
        agency=world.agencies[A],
        sent_at=SENT_AT,
    )
    sink.seek(0)
    with open_package(sink, LIMITS) as package:
        read = _files(package)

    # Then every file comes back under its name with its bytes, and nothing else
    assert read == files


def _files(package: Package) -> dict[str, bytes]:
    return {
        p.filename: package.open_part(p.name).read()
        for p in package.header.parts
        if p.filename is not None
    }


def test_a_manifest_size_of_another_json_type_than_a_number_is_refused(world: World) -> None:
    # Given a manifest, signed, whose one-byte main file's size is JSON's true (== 1 in Python)
    parts = members(world.write(main=b"x")[0])
    manifest = parts["manifest.json"].replace(b'"size":1}', b'"size":true}')
    assert manifest != parts["manifest.json"]
    signer = world.signer
    cms = sign_manifest(
        manifest, key=signer.key, cert=signer.cert, chain=[world.root.certificate], signing_time=NOW
    )

    def relisted(content: dict[str, Any]) -> None:
        content["manifest_sha256"] = hashlib.sha256(manifest).hexdigest()
        for part in content["parts"]:
            data = {"manifest.json": manifest, "signature.p7s": cms}.get(part["name"])
            if data is not None:
                part.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())

    changed = {**parts, "manifest.json": manifest, "signature.p7s": cms}
    data = zipped(resigned(changed, relisted, by=world.agencies[A]))

    # Then the inbox refuses it: the file is not the one the manifest names
    assert refusal(data, world).reason == "attachment_mismatch"


# -- the manifest is a document as review would pass it ------------------------------------


def _package_of(world: World, change: Any, *, recipient: str = B) -> bytes:
    """A's package for ``recipient`` of the sample manifest as ``change`` leaves it (a
    function of the parsed manifest), signed by A's signer and sealed by A."""
    manifest, _cms = world.document()
    content = json.loads(manifest)
    change(content)
    manifest = rfc8785.dumps(content)
    signer = world.signer
    cms = sign_manifest(
        manifest, key=signer.key, cert=signer.cert, chain=[world.root.certificate], signing_time=NOW
    )
    files = world.file_bytes()
    listed_files = {
        a["filename"]: io.BytesIO(files[a["filename"]])
        for a in content.get("attachments", [])
        if isinstance(a, dict) and a.get("filename") in files
    }
    sink = io.BytesIO()
    write_package(
        sink,
        message_id="dispatch-m1",
        recipient=recipient,
        manifest=manifest,
        signature=cms,
        files=listed_files,
        agency=world.agencies[A],
        sent_at=SENT_AT,
    )
    return sink.getvalue()


def _roles(*roles: str, main_type: str = "application/pdf") -> Any:
    def change(content: dict[str, Any]) -> None:
        for attachment, role in zip(content["attachments"], roles, strict=True):
            attachment["role"] = role
            if role == "main":
                attachment["media_type"] = main_type

    return change


def _without(name: str) -> Any:
    return lambda content: content.pop(name)


def _set(name: str, value: Any) -> Any:
    return lambda content: content.__setitem__(name, value)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_roles("appendix", "appendix"), "main_file"),
        (_roles("main", "main"), "main_file"),
        (_roles("main", "appendix", main_type="image/png"), "main_file"),
        (_roles("main", "annex"), "attachment_role"),
        (_without("subject"), "members"),
        (_without("recipients"), "members"),
        (_set("evil", 1), "members"),
        (_set("legal_normative", False), "member"),
        (_set("revision", "1"), "member"),
        (_set("revision", 0), "member"),
        (_set("recipients", "000.00.01.H57"), "member"),
        (_set("recipients", []), "member"),
        (_set("number", None), "metadata"),
        (_set("signer_position", None), "metadata"),
        (_set("signer_name", ""), "metadata"),  # blank: no signer named, none compared
        (_set("signer_position", "   "), "metadata"),
        (_set("subject", "\u200b"), "metadata"),  # shows nothing
        (_set("number", 0), "metadata"),
        (_set("symbol", "ubnd-tđkt"), "metadata"),
        (_set("symbol", "UBND-TĐKT "), "metadata"),
        (_set("symbol", "UBND\u2013TĐKT"), "metadata"),  # an en dash
        (_set("recipients", [B, B]), "member"),
        (_set("appointed_at", None), "member"),  # named only when set
        (_set("appointed_at", "2021-02-06T15:00:00+07:00"), "metadata"),  # urgency 0
        (_set("urgency", 4), "metadata"),  # hỏa tốc hẹn giờ without its time
        (_set("subject", "V/v te\u0302\u0301t"), "metadata"),  # NFD: ê + acute, decomposed
        (_set("subject", "V/v một\u2028hai"), "metadata"),  # a line separator in one line
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_a_manifest_review_would_not_pass_is_malformed(
    world: World, change: Any, reason: str
) -> None:
    # Given a package of a manifest the sender's own review would refuse, signed anyway
    refused = refusal(_package_of(world, change), world)

    # Then the inbox refuses it, saying what is wrong
    assert (type(refused), refused.reason) == (MessageMalformed, reason), refused.details


def test_an_attachment_with_a_member_too_many_is_malformed(world: World) -> None:
    def extra(content: dict[str, Any]) -> None:
        content["attachments"][1]["note"] = "x"

    refused = refusal(_package_of(world, extra), world)

    assert (type(refused), refused.reason) == (MessageMalformed, "members")


def test_a_package_for_an_agency_the_signer_did_not_address_is_misaddressed(
    world: World,
) -> None:
    # Given A's letter signed for B only, sealed by A's agency key for C
    refused = refusal(
        _package_of(world, _set("recipients", [B]), recipient=C), world, us=C, known=frozenset({A})
    )

    # Then C refuses it: the signer never sent it there
    assert (type(refused), refused.reason) == (Misaddressed, "not_a_recipient")


def test_the_sample_manifest_rewritten_unchanged_is_accepted(world: World) -> None:
    accepted = accept(_package_of(world, lambda _content: None), world)

    assert accepted.header.recipient == B


def test_a_main_file_declared_a_pdf_that_is_not_one_is_malformed(world: World) -> None:
    refused = refusal(world.write(main=b"hello, not a PDF")[0], world)

    assert (type(refused), refused.reason) == (MessageMalformed, "main_file")
    assert refused.details["part"] == MAIN


def test_a_hoa_toc_hen_gio_letter_with_its_appointed_time_is_accepted(world: World) -> None:
    def appointed(content: dict[str, Any]) -> None:
        content.update(urgency=4, appointed_at="2021-02-06T15:00:00+07:00")

    accepted = accept(_package_of(world, appointed), world)

    assert (accepted.document["urgency"], accepted.document["appointed_at"]) == (
        4,
        "2021-02-06T15:00:00+07:00",
    )
