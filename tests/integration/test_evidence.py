"""Evidence bundles: a delivered and acknowledged letter exported, verified offline, tampered.

The letter travels between two installations (``tests.installations``); the bundle is
written from the sender's database and judged with nothing but its bytes and a root.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from congvan.actions.exchange.evidence import open_bundle, role_of, write_bundle
from congvan.actions.exchange.evidence_checks import _Judge, verify_bundle
from congvan.actions.exchange.evidence_report import Report, anchoring_root
from congvan.actions.exchange.status import make_status
from congvan.actions.signing import issuers, keystore, pki
from congvan.actions.signing.agencykeys import AgencyKey
from congvan.actions.signing.cms import sign_manifest
from congvan.actions.signing.truststore import fingerprint
from congvan.storage.audit import make_entry, timestamp
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.evidence import gather
from congvan.workflow.letters import sample_pdf
from tests.exchange_world import NOW, build_world, members, zipped
from tests.factories import (
    FAKE_GUARDS,
    MAIN_PDF,
    actor,
    add_agency,
    create_document,
    job_done,
    sample_file,
)
from tests.installations import PASS, A, B, Pair, issue_keys, serving_inbox
from tests.integration.test_delivery import _failed_with_every_answer_lost
from tests.integration.test_peers import PASS as THEIR_PASS
from tests.integration.test_peers import _issuing_ca
from tests.tools import verify_with_openssl

STATUS = f"dispatches/{B}/status-03.json"
ANCHOR = f"anchors/{A}/1.json"
ELSEWHERE = "dispatches/000.00.99.H57/receipt.json"  # a recipient the letter never went to


def acknowledged(pair: Pair, make_document: Callable[..., str]) -> str:
    """A's letter with its main file, delivered to B, registered by B's clerk (status 03),
    and anchored."""

    def with_a_file(runtime: Runtime, **given: Any) -> str:
        return make_document(runtime, **{**given, "files": [sample_file(MAIN_PDF)]})

    with serving_inbox(pair) as url:
        pair.point_b_at(url)
        doc, job = pair.sent(with_a_file)
        assert pair.sender.runner.run(job) == "done"
    [received] = pair.received()
    pair.answer(received.id, "register")
    pair.sender.clock.advance(minutes=1)
    pair.sender.anchoring.anchor(pair.sender.uow, pair.sender.clock())
    return doc


def export(pair: Pair, doc: str, *, with_files: bool = True) -> bytes:
    with pair.sender.uow(readonly=True) as uow:
        evidence = gather(uow, pair.sender.trust, doc, with_files=with_files)
    sink = io.BytesIO()
    write_bundle(sink, evidence, pair.sender.clock(), issuing_key(pair.sender))
    return sink.getvalue()


def issuing_key(runtime: Runtime, agency: str = A) -> AgencyKey:
    """The issuing agency's key, which signs a bundle's index."""
    with runtime.uow(readonly=True) as uow:
        return runtime.anchoring.keys.require(uow, agency, runtime.clock())


def judged(bundle: bytes, pair: Pair | None = None) -> Report:
    pinned = None if pair is None else pair.sender.trust.roots()
    return verify_bundle(io.BytesIO(bundle), pinned)


def failures(report: Report) -> set[tuple[str, str | None]]:
    return {(c.code, c.member) for c in report.checks if not c.ok}


def test_an_acknowledged_letters_bundle_verifies_offline_against_a_pinned_root(
    pair: Pair, make_document: Callable[..., str], tmp_path: Path
) -> None:
    # Given A's letter delivered to B, registered there, and anchored
    doc = acknowledged(pair, make_document)

    # When its bundle is exported and judged with A's root pinned
    bundle = export(pair, doc)
    report = judged(bundle, pair)

    # Then every item holds, and the pinned root anchored the signatures
    assert [] == [c for c in report.checks if not c.ok]
    assert report.verified and report.trust_source == "pinned"
    [root] = pair.sender.trust.roots()
    assert {fingerprint(root)} == report.anchored_by
    # (a root given twice counts, and is listed, once)
    assert verify_bundle(io.BytesIO(bundle), [root, root]).roots == [fingerprint(root)]
    items = [c.item for c in report.checks]
    for item in ("signature", "files", f"dispatch {B}", f"receipt {B}", f"status {B} 03"):
        assert item in items
    assert "audit" in items and "anchored" in items
    assert any(i.startswith("anchor ") for i in items)
    receipt = next(c for c in report.checks if c.item == f"receipt {B}")
    assert "re-assembled, same" in receipt.detail
    assert "files/1227-UBND-TDKT.pdf" in members(bundle)

    # And without a pinned root it verifies against its own, and says so
    own = judged(bundle)
    assert own.verified and own.trust_source == "bundle"

    # But against a root the signatures do not chain to, nothing signed verifies
    elsewhere = verify_bundle(io.BytesIO(bundle), [build_world().root.certificate])
    assert not elsewhere.verified and not elsewhere.anchored_by
    assert ("chain_untrusted", "signature.p7s") in failures(elsewhere)
    # each signed item saying so by the same code, whatever message it signs
    signed = ("index", "signature", f"dispatch {B}", f"receipt {B}", f"status {B} 03")
    assert {c.code for c in elsewhere.checks if c.item in signed} == {"chain_untrusted"}
    assert {c.code for c in elsewhere.checks if c.item.startswith("anchor ")} == {"chain_untrusted"}
    [unanchored] = [c for c in elsewhere.checks if c.item == "anchored"]
    assert "none of the bundle's 1 anchor(s) holds" in unanchored.detail

    # And without the CRLs (a bundle whose CRLs were taken out, its index signed again),
    # revocation is unknown for each signed item alike: never the wire's deferral
    no_crls = verify_bundle(
        io.BytesIO(zipped(_dropped(members(bundle), "trust/crl"))), pair.sender.trust.roots()
    )
    codes = {c.code for c in no_crls.checks if not c.ok and c.item in signed}
    assert "revocation_unknown" in codes and "verification_deferred" not in codes
    # nor its words: offline, nothing comes "later"
    details = [c.detail for c in no_crls.checks if c.code == "revocation_unknown"]
    assert details and not any("again later" in d for d in details)

    # And with only the digests of the files it verifies too, the package not re-assembled
    lean = judged(export(pair, doc, with_files=False), pair)
    assert lean.verified
    assert not any(
        name.startswith("files/") for name in members(export(pair, doc, with_files=False))
    )


def test_a_ca_held_at_export_travels_as_a_link_of_paths_never_as_a_root(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter acknowledged, and a CA A's installation holds but does not pin (an
    # intermediate of another party's root, imported with `keys import --kind root`)
    doc = acknowledged(pair, make_document)
    root = pki.create_ca(
        "CA of Quảng Trị", "Ủy ban nhân dân tỉnh Quảng Trị", passphrase=THEIR_PASS,
        valid_from=pair.sender.clock() - timedelta(days=30), valid_days=3650, path_length=1,
    )  # fmt: skip
    held = _issuing_ca(root)
    with pair.sender.uow() as uow:
        keystore.import_certificate(uow, held.cert_pem, kind="root", now=pair.sender.clock())
        uow.commit()

    # When its bundle is exported and opened to be judged
    bundle = export(pair, doc)
    ca = x509.load_pem_x509_certificate(held.cert_pem)
    with open_bundle(io.BytesIO(bundle)) as opened:
        judge = _Judge(opened, Report(), pair.sender.trust.roots(), {})
        judge.roots()

    # Then the CA travels in it, is taken as a link a path may pass through, not a root,
    # and the bundle verifies as before
    assert f"trust/cas/{fingerprint(ca)}.pem" in members(bundle)
    assert (ca,) == judge.trust.intermediates and ca not in judge.trust.roots
    assert judged(bundle, pair).verified


def test_a_root_bound_to_an_agency_alone_speaks_for_it(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter registered by B, anchored, its bundle, and the root that issued
    # both agencies' certificates; and another party's root
    bundle = export(pair, acknowledged(pair, make_document))
    [root] = pair.sender.trust.roots()
    ours, theirs = fingerprint(root), build_world().root.certificate
    elsewhere, ours_only = frozenset([fingerprint(theirs)]), frozenset([ours])

    def failed(bound: dict[str, frozenset[str]]) -> set[str]:
        report = verify_bundle(io.BytesIO(bundle), [root, theirs], bound)
        return {c.item for c in report.checks if not c.ok}

    # When each agency is bound to the root that issued its certificates: all holds
    assert failed({A: frozenset([ours]), B: frozenset([ours])}) == set()
    # When B is bound to another party's root: what B signed does not hold, nothing else
    assert failed({B: elsewhere}) == {f"receipt {B}", f"status {B} 03"}
    # When A is: neither does anything A signed (its index, anchors, package, signer)
    of_a = failed({A: elsewhere})
    assert {"index", "signature", f"dispatch {B}"} <= of_a
    assert any(item.startswith("anchor ") for item in of_a)
    assert f"receipt {B}" not in of_a
    # When only A is bound, to its root: that root speaks for A alone, not for B
    assert failed({A: frozenset([ours])}) == {f"receipt {B}", f"status {B} 03"}

    # And with both roots pinned and none bound, it holds with a warning that says so
    report = verify_bundle(io.BytesIO(bundle), [root, theirs])
    [trust] = [c for c in report.checks if c.item == "trust"]
    assert report.verified and "--trust-for" in trust.warning
    # But A's root bound to an agency the bundle never names speaks for that one alone
    report = verify_bundle(io.BytesIO(bundle), [root, theirs], {"000.00.99.H57": ours_only})
    [trust] = [c for c in report.checks if c.item == "trust"]
    assert not report.verified and "--trust-for" in trust.warning


def test_the_root_named_for_a_signature_is_the_root_of_its_signers_path() -> None:
    # Given a CMS made under another party's root, carrying our root besides (any signer
    # may put any certificate in its CMS), and both roots pinned
    world = build_world()
    forged = world.unpinned_a
    [theirs] = forged.chain
    ours = world.root.certificate
    cms = sign_manifest(
        b"index", key=forged.key, cert=forged.cert, chain=[ours, theirs], signing_time=NOW
    )

    # When the report names the root it rested on, then it is theirs, whichever comes first
    assert anchoring_root(cms, [ours, theirs]) == fingerprint(theirs)
    assert anchoring_root(cms, [theirs, ours]) == fingerprint(theirs)
    # And a signer of no pinned root rests on none, whatever it carries
    assert anchoring_root(cms, [ours]) is None
    # While our signer, carrying their root too, rests on ours
    agency = world.agencies[A]
    ours_signed = sign_manifest(
        b"index", key=agency.key, cert=agency.cert, chain=[theirs, ours], signing_time=NOW
    )
    assert anchoring_root(ours_signed, [theirs, ours]) == fingerprint(ours)


def test_a_bundle_cut_short_or_relisted_fails_the_index_its_agency_signed(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter registered by B, anchored, then more of its history (a second
    # anchor over B's later report), and its bundle
    doc = acknowledged(pair, make_document)
    bundle = export(pair, doc)
    parts = members(bundle)
    assert "index" in [c.item for c in judged(bundle, pair).checks if c.ok]

    # When the newest anchor and B's status are left out, the index relisted to match
    cut = _dropped(parts, "anchors/", f"dispatches/{B}/status-")
    # Then the index no longer holds as A signed it, whatever else still does
    assert any(c.item == "index" and not c.ok for c in judged(zipped(cut), pair).checks)

    # When the audit trail is cut back a version and relisted
    entries = json.loads(parts["audit/entries.json"])
    entries["entries"] = entries["entries"][:-1]
    shorter = _relisted(parts, "audit/entries.json", rfc8785.dumps(entries))
    report = judged(zipped(shorter), pair)
    assert not report.verified
    assert any(c.item == "index" and not c.ok for c in report.checks)

    # When the index is damaged past reading (not JSON, not canonical, a member malformed)
    for damaged in (b"{", parts["index.json"][:-1], parts["index.json"].replace(b"{", b"[", 1)):
        broken = judged(zipped({**parts, "index.json": damaged}), pair)
        # Then the bundle fails, naming the index as what is wrong
        assert not broken.verified
        assert [c.member for c in broken.checks if not c.ok] == ["index.json"], broken.checks

    # When the index's signature is left out, or made by another agency's key
    unsigned = {n: d for n, d in parts.items() if n != "index.p7s"}
    assert ("index_unsigned", "index.p7s") in failures(judged(zipped(unsigned), pair))
    with pair.receiver.uow(readonly=True) as uow:
        b_key = pair.receiver.anchoring.keys.require(uow, B, pair.receiver.clock())
    resigned = {**parts, "index.p7s": b_key.sign(parts["index.json"], pair.sender.clock())}
    refused = judged(zipped(resigned), pair)
    assert any(c.item == "index" and not c.ok for c in refused.checks)
    assert not refused.verified


@pytest.mark.parametrize(
    "off", [timedelta(hours=-2), timedelta(minutes=-30), timedelta(minutes=30), timedelta(hours=2)]
)
def test_an_index_or_anchor_signed_at_another_moment_than_it_names_is_refused(
    pair: Pair, make_document: Callable[..., str], off: timedelta
) -> None:
    # Given a bundle of a letter sent hours after the keys were issued, and the issuing
    # agency's own key (an insider's re-signing)
    pair.sender.clock.advance(hours=3)
    parts = members(export(pair, acknowledged(pair, make_document)))
    key = issuing_key(pair.sender)
    exported = datetime.fromisoformat(json.loads(parts["index.json"])["exported_at"])
    anchored = datetime.fromisoformat(json.loads(parts[ANCHOR])["at"])
    # (signed at the moments they name, they hold)
    same = {**parts, "index.p7s": key.sign(parts["index.json"], exported)}
    assert judged(zipped(same), pair).verified

    # When the index is signed, by that key, at another moment than its exported_at
    index_off = {**parts, "index.p7s": key.sign(parts["index.json"], exported + off)}
    # Then it is not the index exported then
    assert ("moment", "index.p7s") in failures(judged(zipped(index_off), pair))

    # When an anchor is signed at another moment than its at (the index re-signed to match)
    signature = ANCHOR.removesuffix("json") + "p7s"
    moved = _relisted(parts, signature, key.sign(parts[ANCHOR], anchored + off))
    moved["index.p7s"] = key.sign(moved["index.json"], exported)
    report = judged(zipped(moved), pair)
    # Then that anchor does not hold
    assert not report.verified
    assert any(c.item == f"anchor {A} 1" and not c.ok for c in report.checks), report.checks
    assert ("moment", ANCHOR) in failures(report), failures(report)


def test_openssl_verifies_the_signer_and_agency_cms_in_a_bundle(
    pair: Pair, make_document: Callable[..., str], tmp_path: Path
) -> None:
    # Given a bundle, taken apart in a folder with the root as the only CA
    parts = members(export(pair, acknowledged(pair, make_document)))
    [root] = pair.sender.trust.roots()
    (tmp_path / "ca.pem").write_bytes(root.public_bytes(Encoding.PEM))
    for name in ("manifest.json", f"dispatches/{B}/package.json", f"dispatches/{B}/receipt.json"):
        (tmp_path / Path(name).name).write_bytes(parts[name])

    # Then openssl accepts the signer's CMS over the manifest, and each agency's CMS
    for signature, content in (
        ("signature.p7s", "manifest.json"),
        (f"dispatches/{B}/agency.p7s", "package.json"),
        (f"dispatches/{B}/receipt.p7s", "receipt.json"),
    ):
        (tmp_path / "sig.p7s").write_bytes(parts[signature])
        done = verify_with_openssl(tmp_path, "-purpose", "any", content=content)
        assert done.returncode == 0, (signature, done.stderr)


def test_a_signers_key_revoked_after_signing_is_said_beside_a_signature_that_stands(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter acknowledged, then its signer's key reported compromised
    doc = acknowledged(pair, make_document)
    pair.sender.clock.advance(hours=2)
    with pair.sender.uow() as uow:
        keystore.revoke(
            uow,
            keystore.fingerprint(pair.signer_cert),
            reason="key_compromise",
            passphrase=PASS,
            now=pair.sender.clock(),
        )
        uow.commit()

    # When its bundle (holding the new CRL) is judged
    report = judged(export(pair, doc), pair)

    # Then the signature stands, made before, and the verdict says the key was revoked since
    assert report.verified
    signature = next(c for c in report.checks if c.item == "signature")
    assert "acceptance, as the audit trail records it" in signature.detail
    assert "revoked after that" in signature.warning and "key_compromise" in signature.warning
    assert "revoked after that" in json.dumps(report.as_dict(), ensure_ascii=False)
    # Where no revocation came later, nothing is said
    assert all(not c.warning for c in report.checks if c.item != "signature")


def test_a_crl_issued_after_the_export_is_not_taken(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given a bundle, and a CRL its exporter's CA published a day after the export
    bundle = export(pair, acknowledged(pair, make_document))
    parts = members(bundle)
    pair.sender.clock.advance(days=1)
    with pair.sender.uow() as uow:
        later = keystore.publish_crl(uow, passphrase=PASS, now=pair.sender.clock())
        uow.commit()

    # When it takes the place of the bundle's CRL (a later one may leave a revocation out)
    name = f"trust/crls/{hashlib.sha256(later).hexdigest()}.crl"
    swapped = _added(_dropped(parts, _crl(parts)), name, later)
    report = judged(zipped(swapped), pair)

    # Then the verdict refuses it, naming it
    assert not report.verified
    assert ("crl_after_export", name) in failures(report)


def test_an_agency_key_revoked_later_is_said_beside_every_signature_it_made(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter acknowledged by B and anchored, then B's organisational key
    # reported compromised (the exchange CA, which A runs here, revokes it)
    doc = acknowledged(pair, make_document)
    pair.sender.clock.advance(hours=2)
    with pair.sender.uow() as uow:
        [b_cert] = [c for c in uow.signatures.certificates(B) if c.kind == "agency"]
        keystore.revoke(
            uow, b_cert.fingerprint, reason="key_compromise", passphrase=PASS,
            now=pair.sender.clock(),
        )  # fmt: skip
        uow.commit()

    # When its bundle (holding the new CRL) is judged
    report = judged(export(pair, doc), pair)

    # Then what B signed stands, made before, with the revocation said beside each
    assert report.verified
    warned = {c.item for c in report.checks if "revoked after that" in c.warning}
    assert warned == {f"receipt {B}", f"status {B} 03"}


def test_a_status_signed_with_a_key_compromised_before_it_was_taken_fails_whatever_it_claims(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter delivered to B
    with serving_inbox(pair) as url:
        pair.point_b_at(url)
        doc, job = pair.sent(make_document)
        assert pair.sender.runner.run(job) == "done"
    dispatch, _ = pair.dispatch(doc)
    sent = pair.sender.clock()
    # and B's organisational key stolen two hours later, then used an hour after that to
    # sign a 03 dated (and signed) ten minutes after the package left; A takes it, as no
    # CRL lists the key yet
    compromised = pair.sender.clock.advance(hours=2)
    pair.sender.clock.advance(hours=1)
    with pair.receiver.uow(readonly=True) as uow:
        stolen = pair.receiver.inbox.keys.require(uow, B, pair.receiver.clock())
    backdated = sent + timedelta(minutes=10)
    forged = make_status(
        message_id=dispatch.message_id, document_id=doc, to=A, code="03",
        description="Đã vào sổ", at=backdated, signed_at=backdated, agency=stolen,
    )  # fmt: skip
    assert pair.sender.statuses.accept(forged.body, forged.cms).state == "acknowledged"
    # When B's certificate is revoked for key compromise from the moment of the theft
    # (RFC 5280's invalidity date), A holds that CRL, anchors and exports
    revoked = pair.sender.clock.advance(hours=1)
    _revoked_since(pair, B, compromised, revoked)
    pair.sender.clock.advance(minutes=1)
    pair.sender.anchoring.anchor(pair.sender.uow, pair.sender.clock())
    report = judged(export(pair, doc), pair)

    # Then the 03 is judged as of when A took it, which its trail records (after the theft),
    # not the moment its signer wrote: it does not hold
    assert not report.verified
    assert ("certificate_revoked", f"dispatches/{B}/status-03.json") in failures(report)
    # while the receipt, taken before the theft, stands (the revocation said beside it)
    receipt = next(c for c in report.checks if c.item == f"receipt {B}")
    assert receipt.ok and "its acceptance, as the audit trail records it" in receipt.detail
    assert "revoked after that" in receipt.warning


def _revoked_since(pair: Pair, agency: str, compromised: datetime, now: datetime) -> None:
    """``agency``'s certificate revoked at ``now`` by the exchange CA A runs, for key
    compromise since ``compromised`` (the CRL entry's invalidity date); both hold the CRL."""
    with pair.sender.uow(readonly=True) as uow:
        ca_row, ca = keystore._ca(uow)
        [row] = [c for c in uow.signatures.certificates(agency) if c.kind == "agency"]
        number = uow.signatures.next_crl_number(ca_row.fingerprint)
    cert, key = pki._ca_material(ca, PASS)
    entry = (
        x509.RevokedCertificateBuilder()
        .serial_number(x509.load_pem_x509_certificate(row.cert_pem.encode()).serial_number)
        .revocation_date(now)
        .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
        .add_extension(x509.InvalidityDate(compromised), critical=False)
        .build()
    )
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(cert.subject)
        .last_update(now)
        .next_update(now + timedelta(days=7))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(pki._authority_key_id(cert), critical=False)
        .add_revoked_certificate(entry)
        .sign(key, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )
    for runtime in (pair.sender, pair.receiver):
        with runtime.uow() as uow:
            issuers.import_crl(uow, runtime.trust, crl, now=runtime.clock())
            uow.commit()


def test_a_report_of_handling_the_trail_records_cannot_be_dropped_from_the_bundle(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter registered at B, then assigned there (status 04 back to A)
    doc = acknowledged(pair, make_document)
    [received] = pair.received()
    with serving_inbox(pair):
        pair.answer(received.id, "assign", role="supervisor")
    bundle = export(pair, doc)
    assigned = f"dispatches/{B}/status-04."

    # Then the bundle holds the report, and verifies
    assert judged(bundle, pair).verified
    assert f"{assigned}json" in members(bundle)
    # But with the report dropped, the trail that records it says so
    cut = zipped(_dropped(members(bundle), assigned))
    assert ("evidence_missing", f"{assigned}json") in failures(judged(cut, pair))


def test_a_refusal_that_settled_a_failed_dispatch_cannot_be_left_out_of_the_bundle(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter failed for good at B, every answer lost though B stored it; then
    # B's clerk refused it, and B's signed 02 settled the dispatch
    with serving_inbox(pair) as url:
        pair.point_b_at(url)
        doc, job = pair.sent(make_document)
        _failed_with_every_answer_lost(pair, doc, job)
        [received] = pair.received()
        pair.answer(received.id, "refuse", {"reason": "Sai thẩm quyền"})
    assert pair.dispatch(doc)[0].state == "rejected"
    pair.sender.clock.advance(minutes=1)
    pair.sender.anchoring.anchor(pair.sender.uow, pair.sender.clock())

    # When A exports a bundle leaving that 02 out, its index signed over what is left
    with pair.sender.uow(readonly=True) as uow:
        evidence = gather(uow, pair.sender.trust, doc)
    [sent_to_b] = [d for d in evidence.dispatches if d.recipient == B]
    assert "02" in {s[0] for s in sent_to_b.statuses}
    without = dataclasses.replace(
        evidence,
        dispatches=tuple(
            dataclasses.replace(d, statuses=tuple(s for s in d.statuses if s[0] != "02"))
            for d in evidence.dispatches
        ),
    )
    sink = io.BytesIO()
    write_bundle(sink, without, pair.sender.clock(), issuing_key(pair.sender))

    # Then the trail, which says a status message refused it, says what is missing
    missing = ("evidence_missing", f"dispatches/{B}/status-02.json")
    assert missing in failures(judged(sink.getvalue(), pair))
    assert missing not in failures(judged(export(pair, doc), pair))


def _relisted(parts: dict[str, bytes], name: str, data: bytes) -> dict[str, bytes]:
    """``parts`` with member ``name`` replaced and index.json updated to match it."""
    index = json.loads(parts["index.json"])
    for member in index["members"]:
        if member["name"] == name:
            member.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    return {**parts, name: data, "index.json": rfc8785.dumps(index)}


def _added(parts: dict[str, bytes], name: str, data: bytes) -> dict[str, bytes]:
    """``parts`` with member ``name`` added and listed in index.json (it is not signed)."""
    index = json.loads(parts["index.json"])
    digest = hashlib.sha256(data).hexdigest()
    index["members"].append(
        {"name": name, "role": role_of(name), "size": len(data), "sha256": digest}
    )
    return {**parts, name: data, "index.json": rfc8785.dumps(index)}


def _forged_crl(parts: dict[str, bytes]) -> dict[str, bytes]:
    """The bundle's CRL replaced by one naming the same issuer, signed by another key."""
    name = _crl(parts)
    real = x509.load_der_x509_crl(parts[name])
    forged = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(real.issuer)
        .last_update(real.last_update_utc)
        .next_update(real.next_update_utc or real.last_update_utc + timedelta(days=7))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
        .public_bytes(Encoding.DER)
    )
    kept = _dropped(parts, name)
    return _added(kept, f"trust/crls/{hashlib.sha256(forged).hexdigest()}.crl", forged)


def _crl(parts: dict[str, bytes]) -> str:
    return next(n for n in sorted(parts) if n.startswith("trust/crls/"))


def _dropped(parts: dict[str, bytes], *prefixes: str) -> dict[str, bytes]:
    """``parts`` without the members under ``prefixes``, index.json relisted without them
    (it is not signed: anyone can)."""
    index = json.loads(parts["index.json"])
    index["members"] = [m for m in index["members"] if not m["name"].startswith(prefixes)]
    kept = {n: d for n, d in parts.items() if not n.startswith(prefixes)}
    return {**kept, "index.json": rfc8785.dumps(index)}


def _files_said_left_out(parts: dict[str, bytes]) -> dict[str, bytes]:
    """The index says "digests", and the file beside it is a forgery, relisted."""
    [name] = [n for n in parts if n.startswith("files/")]
    forged = _relisted(parts, name, parts[name].replace(b"%PDF", b"%PDF forged", 1))
    index = json.loads(forged["index.json"])
    index["files"] = "digests"
    return {**forged, "index.json": rfc8785.dumps(index)}


def _flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def _audit_rewritten(parts: dict[str, bytes]) -> dict[str, bytes]:
    content = json.loads(parts["audit/entries.json"])
    content["entries"][1]["actor"] = "someone-else"
    return _relisted(parts, "audit/entries.json", rfc8785.dumps(content))


def _audit_version(value: int) -> Callable[[dict[str, bytes]], dict[str, bytes]]:
    """An entry's version set to ``value`` (past JSON's integers: no canonical writer
    takes it, so written as json.dumps writes it)."""

    def change(parts: dict[str, bytes]) -> dict[str, bytes]:
        content = json.loads(parts["audit/entries.json"])
        content["entries"][1]["version"] = value
        return _relisted(parts, "audit/entries.json", json.dumps(content).encode())

    return change


def _receipt_rewritten(parts: dict[str, bytes]) -> dict[str, bytes]:
    name = f"dispatches/{B}/receipt.json"
    content = json.loads(parts[name])
    content["received_document_id"] = "another-document"
    return _relisted(parts, name, rfc8785.dumps(content))


def _index_digest_changed(parts: dict[str, bytes]) -> dict[str, bytes]:
    index = json.loads(parts["index.json"])
    listed = next(m for m in index["members"] if m["name"] == f"dispatches/{B}/agency.p7s")
    listed["sha256"] = "0" * 64
    return {**parts, "index.json": rfc8785.dumps(index)}


def _appended(parts: dict[str, bytes], event: str, payload: dict[str, Any]) -> dict[str, bytes]:
    """``parts`` with an entry appended to the audit chain after its last anchor, its hash
    computed as the chain's (anyone can: only an anchor is keyed)."""
    content = json.loads(parts["audit/entries.json"])
    last = content["entries"][-1]
    entry = make_entry(
        prev_hash=last["hash"],
        document_id=content["document_id"],
        version=last["version"] + 1,
        actor=last["actor"],
        event=event,
        from_state=last["to_state"],
        to_state=last["to_state"],
        at=datetime.fromisoformat(last["at"]),
        payload=payload,
    )
    content["entries"].append(
        {
            **{k: getattr(entry, k) for k in ("version", "actor", "event", "payload", "hash")},
            **{k: getattr(entry, k) for k in ("from_state", "to_state", "payload_digest")},
            "at": timestamp(entry.at),
            "prev_hash": entry.prev_hash,
        }
    )
    return _relisted(parts, "audit/entries.json", rfc8785.dumps(content))


def _send_appended_without_b(parts: dict[str, bytes]) -> dict[str, bytes]:
    """A second ``send`` after the anchor naming another dispatch for B, and B's status 03
    dropped: the anchored ``send`` still says what must be there."""
    content = json.loads(parts["audit/entries.json"])
    sent = next(e for e in content["entries"] if e["event"] == "send")
    payload = json.loads(sent["payload"])
    payload["dispatches"][B] = "00000000-0000-7000-8000-000000000000"
    return _dropped(_appended(parts, "send", payload), STATUS.removesuffix("json"))


def _manifest_byte(parts: dict[str, bytes], relist: bool) -> dict[str, bytes]:
    changed = parts["manifest.json"].replace(b"UBND-T", b"UBND-X", 1)
    return (
        _relisted(parts, "manifest.json", changed)
        if relist
        else {**parts, "manifest.json": changed}
    )


# Each case: how the bundle is changed, and a (code, member) its verdict must name.
TAMPERINGS: dict[
    str, tuple[Callable[[dict[str, bytes]], dict[str, bytes]], tuple[str, str | None]]
] = {
    "manifest byte": (lambda p: _manifest_byte(p, False), ("member_digest", "manifest.json")),
    "manifest byte, index updated": (
        lambda p: _manifest_byte(p, True),
        ("manifest_mismatch", "manifest.json"),
    ),
    "signer cms": (
        lambda p: _relisted(p, "signature.p7s", _flip_last(p["signature.p7s"])),
        ("signature_invalid", "signature.p7s"),
    ),
    "agency cms": (
        lambda p: _relisted(
            p, f"dispatches/{B}/agency.p7s", _flip_last(p[f"dispatches/{B}/agency.p7s"])
        ),
        ("signature_invalid", f"dispatches/{B}/agency.p7s"),
    ),
    "receipt": (_receipt_rewritten, ("manifest_mismatch", f"dispatches/{B}/receipt.json")),
    "audit entry": (_audit_rewritten, ("chain_altered", "audit/entries.json")),
    # a report, never a crash: no chain holds a version JSON cannot carry
    "audit version past JSON's integers": (
        _audit_version(10**30),
        ("audit_malformed", "audit/entries.json"),
    ),
    "audit version below zero": (
        _audit_version(-(2**63)),
        ("audit_malformed", "audit/entries.json"),
    ),
    "audit not json": (
        lambda p: _relisted(p, "audit/entries.json", b"[[[["),
        ("audit_malformed", "audit/entries.json"),
    ),
    "anchor body": (
        lambda p: _relisted(p, ANCHOR, p[ANCHOR].replace(b'"seq":1', b'"seq":1 ')),
        ("unanchored", None),
    ),
    "index entry": (_index_digest_changed, ("member_digest", f"dispatches/{B}/agency.p7s")),
    "missing member": (
        lambda p: {n: d for n, d in p.items() if n != STATUS},
        ("member_missing", STATUS),
    ),
    "extra member": (
        lambda p: {**p, "files/extra.pdf": b"%PDF-1.4"},
        ("member_extra", "files/extra.pdf"),
    ),
    "unsafe name": (lambda p: {**p, "../evil.json": b"{}"}, ("unsafe_name", "../evil.json")),
    # What the audit trail records cannot be dropped, however index.json is rewritten
    "a recipient's dispatch dropped": (
        lambda p: _dropped(p, f"dispatches/{B}/"),
        ("dispatch_missing", f"dispatches/{B}/"),
    ),
    "its receipt dropped": (
        lambda p: _dropped(p, f"dispatches/{B}/receipt."),
        ("evidence_missing", f"dispatches/{B}/receipt.json"),
    ),
    "its status 03 dropped": (
        lambda p: _dropped(p, STATUS.removesuffix("json")),
        ("evidence_missing", STATUS),
    ),
    "a send appended after the anchor, B's status 03 dropped": (
        _send_appended_without_b,
        ("evidence_missing", STATUS),
    ),
    "a receipt where no package was sent": (
        lambda p: _added(
            p, "dispatches/000.00.99.H57/receipt.json", p[f"dispatches/{B}/receipt.json"]
        ),
        ("member_unplaced", "dispatches/000.00.99.H57/receipt.json"),
    ),
    "an anchor's signature with no anchor": (
        lambda p: _added(p, f"anchors/{A}/99.p7s", p[ANCHOR.removesuffix("json") + "p7s"]),
        ("member_unplaced", f"anchors/{A}/99.p7s"),
    ),
    "a CRL that is not one": (
        lambda p: _relisted(p, _crl(p), b"not a CRL"),
        ("crl_unreadable", "trust/crls/"),
    ),
    "a CRL its issuer did not sign": (_forged_crl, ("crl_invalid", "trust/crls/")),
    # its bytes changed, index.json not: the file is not the manifest's, beside member_digest
    "a file's byte": (
        lambda p: {**p, "files/1227-UBND-TDKT.pdf": _flip_last(p["files/1227-UBND-TDKT.pdf"])},
        ("file_mismatch", "files/1227-UBND-TDKT.pdf"),
    ),
    "files said left out, a forged one kept": (
        _files_said_left_out,
        ("file_unexpected", "files/1227-UBND-TDKT.pdf"),
    ),
}


def _names(report: Report, expected: tuple[str, str | None]) -> bool:
    """Whether the verdict fails with the code on the member (or one under a folder)."""
    code, member = expected
    return any(
        c == code
        and (m == member or (member and member.endswith("/") and (m or "").startswith(member)))
        for c, m in failures(report)
    )


def test_every_tampering_fails_verification_naming_the_member(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given a bundle that verifies
    bundle = export(pair, acknowledged(pair, make_document))
    parts = members(bundle)
    assert judged(bundle, pair).verified

    for case, (tamper, expected) in TAMPERINGS.items():
        # When it is changed so
        report = judged(zipped(tamper(dict(parts))), pair)

        # Then it does not verify, and the verdict names the member
        assert not report.verified, case
        assert _names(report, expected), (case, failures(report))

    # And a member whose stored bytes no longer match their CRC is named, not read
    damaged = bytearray(bundle)
    damaged[bundle.index(parts["manifest.json"]) + 10] ^= 1
    assert ("member_damaged", "manifest.json") in failures(judged(bytes(damaged), pair))
    # whichever it is, the index and its signature too: a verdict, never an error raised
    for name, data in parts.items():
        damaged = bytearray(bundle)
        damaged[bundle.index(data) + len(data) // 2] ^= 1
        report = judged(bytes(damaged), pair)
        assert not report.verified, name
        assert name in {m for _code, m in failures(report)}, (name, failures(report))

    # And a compressed bundle (a possible bomb) is refused before any member is read
    deflated = judged(zipped(parts, compression=zipfile.ZIP_DEFLATED), pair)
    assert {("compressed", "index.json")} == failures(deflated)


def test_a_package_that_carried_the_signed_pdf_is_re_assembled_with_it(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter whose signed PDF travelled in its package to B
    main = sample_pdf()
    signed = pair.sign_pdf(main)
    doc = pair.signed(make_document, pdf=("1227-UBND-TĐKT.pdf", main), signed_pdf=signed)
    with serving_inbox(pair) as url:
        pair.point_b_at(url)
        pair.sender.engine.fire(doc, "send", actor("clerk"))
        [job] = pair.jobs(doc)
        assert pair.sender.runner.run(job) == "done"

    # When its bundle is exported and judged
    bundle = export(pair, doc)
    report = judged(bundle, pair)

    # Then B's receipt names the package re-assembled with the signed PDF from signed.pdf
    receipt = next(c for c in report.checks if c.item == f"receipt {B}")
    assert receipt.ok and "re-assembled, same" in receipt.detail
    assert members(bundle)["signed.pdf"] == signed

    # And without signed.pdf the package cannot be re-assembled, and the receipt says so
    parts = {k: v for k, v in members(bundle).items() if k != "signed.pdf"}
    index = json.loads(parts["index.json"])
    index["members"] = [m for m in index["members"] if m["name"] != "signed.pdf"]
    parts["index.json"] = rfc8785.dumps(index)
    failed = {c.item: c.code for c in judged(zipped(parts), pair).checks if not c.ok}
    assert f"receipt {B}" in failed, failed

    # And with only the digests, the signed PDF (the main file's bytes) is left out too
    lean = export(pair, doc, with_files=False)
    assert not {"signed.pdf", "files/1227-UBND-TĐKT.pdf"} & set(members(lean))
    verdict = judged(lean, pair)
    assert failures(verdict) == {("unanchored", None)}  # this letter was never anchored
    # ...and a digests-only bundle carrying one anyway does not verify
    carrying = {**members(lean), "signed.pdf": signed}
    index = json.loads(carrying["index.json"])
    index["members"].append(
        {"name": "signed.pdf", "role": "signed_pdf", "size": len(signed),
         "sha256": hashlib.sha256(signed).hexdigest()}
    )  # fmt: skip
    carrying["index.json"] = rfc8785.dumps(index)
    assert ("file_unexpected", "signed.pdf") in failures(judged(zipped(carrying), pair))


def test_a_letter_signed_on_the_server_carries_its_signed_pdf(
    make_runtime: Callable[..., Runtime],
) -> None:
    # Given a letter with its main PDF, signed on the server (manifest CMS and PAdES)
    runtime = make_runtime(
        guards=FAKE_GUARDS, jobs={"run_review_checks": job_done}, key_passphrase=PASS
    )
    add_agency(runtime, A)
    issue_keys(runtime)
    doc = create_document(runtime, files=[sample_file(sample_pdf())], signer_user="pct")
    runtime.engine.fire(doc, "approve", actor("reviewer"))
    runtime.engine.fire(doc, "sign", actor("signer", name="pct"))
    runtime.clock.advance(minutes=1)
    runtime.anchoring.anchor(runtime.uow, runtime.clock())

    # When its bundle is exported and judged
    with runtime.uow(readonly=True) as uow:
        evidence = gather(uow, runtime.trust, doc)
    sink = io.BytesIO()
    write_bundle(sink, evidence, runtime.clock(), issuing_key(runtime))
    report = verify_bundle(io.BytesIO(sink.getvalue()), runtime.trust.roots())

    # Then the signed PDF is in it and verifies, as the one the audit trail recorded
    assert [] == [c for c in report.checks if not c.ok]
    assert "signed_pdf" in [c.item for c in report.checks]

    # And another PDF in its place is named
    parts = members(sink.getvalue())
    forged = _relisted(parts, "signed.pdf", parts["signed.pdf"] + b"\n% appended\n")
    changed = verify_bundle(io.BytesIO(zipped(forged)), runtime.trust.roots())
    assert ("signed_pdf_unrecorded", "signed.pdf") in failures(changed)

    # And with only the digests, it is left out with the files, its recorded digest named
    with runtime.uow(readonly=True) as uow:
        lean = gather(uow, runtime.trust, doc, with_files=False)
    sink = io.BytesIO()
    write_bundle(sink, lean, runtime.clock(), issuing_key(runtime))
    assert "signed.pdf" not in members(sink.getvalue())
    report = verify_bundle(io.BytesIO(sink.getvalue()), runtime.trust.roots())
    assert [] == [c for c in report.checks if not c.ok]
    [pdf] = [c for c in report.checks if c.item == "signed_pdf"]
    assert "left out with the files" in pdf.detail


def test_a_bundle_signed_past_its_crls_says_what_it_lacks_never_to_wait(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given A's letter acknowledged, its bundle exported long after the CRLs A holds ran
    # out: the index is signed at a moment no CRL in the bundle speaks for
    doc = acknowledged(pair, make_document)
    pair.sender.clock.advance(days=400)
    report = judged(export(pair, doc), pair)

    # Then the index's revocation is unknown, said as offline: nothing comes later
    [index] = [c for c in report.checks if c.item == "index"]
    assert (index.ok, index.code) == (False, "revocation_unknown"), index
    assert "again later" not in index.detail and "Offline" in index.detail


def test_a_bundle_whose_members_are_out_of_the_index_order_is_refused(
    pair: Pair, make_document: Callable[..., str]
) -> None:
    # Given a verified bundle, its members (each unchanged) written in reverse order
    bundle = export(pair, acknowledged(pair, make_document))
    assert judged(bundle, pair).verified
    reordered = zipped(dict(reversed(list(members(bundle).items()))))

    # Then it is refused as a package would be: one index, one archive
    report = judged(reordered, pair)
    assert not report.verified
    assert ("member_order", None) in failures(report)
    assert {c.code for c in report.checks if not c.ok} == {"member_order"}
