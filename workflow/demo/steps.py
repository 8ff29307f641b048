"""The province's scenes: a clean letter, refused signatures, format errors, a duplicate."""

from __future__ import annotations

import base64
from datetime import date, timedelta
from typing import Any

from cryptography import x509

from congvan.actions.signing import keystore, pki
from congvan.actions.signing.cms import sign_manifest
from congvan.actions.signing.pades import sign_pdf
from congvan.states.policy import written_notation
from congvan.storage.signatures import CertificateRow

from ..letters import reissued_pdf
from .cast import PROVINCE, SIGNER, issue_signer
from .client import Demo, DemoFailed, clock_time

GRANTED_FROM = "2021-01-01"


def letter_pdf(meta: dict[str, Any], variant: str = "", notation: str | None = None) -> bytes:
    """The letter's PDF as its metadata says: its notation (or ``notation``, where the
    clerk mistyped it), subject, day of issue and signer."""
    return reissued_pdf(
        date.fromisoformat(str(meta["issued_on"])),
        str(meta["signer_name"]),
        variant,
        notation=notation or written_notation(meta),
        subject=str(meta["subject"]),
    )


def clean_letter(demo: Demo, meta: dict[str, Any], pdf: bytes) -> str:
    # Granted years ago, or on the letter's day where the demo plays further back.
    granted_from = min(GRANTED_FROM, str(meta["issued_on"]))
    demo.step("The chánh văn phòng grants the Phó Chủ tịch authority to sign (KT. CHỦ TỊCH)")
    grant = demo.call(
        "chánh văn phòng",
        "POST",
        "/v1/authorities",
        expect=201,
        json={"signer": SIGNER[0], "competence": "KT. CHỦ TỊCH", "valid_from": granted_from},
    )
    print(f"   {grant['signer']} signs {grant['doc_types']} from {grant['valid_from']}")

    demo.step("Văn thư creates letter 1227/UBND-TĐKT with its PDF (safe to retry: Idempotency-Key)")
    doc = demo.create(meta, pdf, key="demo-1227")
    again = demo.create(meta, pdf, key="demo-1227")
    if again["id"] != doc["id"]:
        raise DemoFailed("an idempotent retry created a second document")
    doc_id = doc["id"]
    print(
        f"   {doc['notation']} is {doc['state']} v{doc['version']}; the retry answered "
        "with the same document"
    )

    demo.step("A stale If-Match loses: two clerks cannot both win")
    demo.fire("văn thư", doc_id, "edit", fields={"urgency": 1})  # khẩn; moves to v2
    conflict = demo.call(
        "văn thư",
        "POST",
        f"/v1/documents/{doc_id}/events/edit",
        expect=409,
        headers={"If-Match": '"1"'},
        json={"fields": {"place": "Huế"}},
    )
    print(f"   409 {conflict['code']}: {conflict['message']}")

    demo.step("Văn thư submits it; the review checks run as background jobs")
    result = demo.fire("văn thư", doc_id, "submit")
    print(f"   submit → {len(result['jobs'])} job queued")
    view = demo.checks(doc_id)
    demo.show_checks(view)
    if not view["cleared"]:
        raise DemoFailed("the clean letter did not pass its checks")

    demo.step("Roles and agencies are enforced")
    refused = demo.fire("văn thư", doc_id, "approve", expect=403)
    print(f"   văn thư approving → 403 {refused['code']}")
    hidden = demo.call("văn thư Văn phòng", "GET", f"/v1/documents/{doc_id}", expect=404)
    print(f"   the province's office reading the province's draft → 404 {hidden['code']}")

    demo.step("Chuyên viên approves it: every check passed on the current revision")
    result = demo.fire("chuyên viên", doc_id, "approve")
    print(f"   approve: {result['from_state']} → {result['to_state']}, v{result['version']}")

    demo.step("The Phó Chủ tịch signs: a detached CMS over the manifest, with his key")
    result = demo.fire("lãnh đạo", doc_id, "sign")
    print(f"   sign: {result['from_state']} → {result['to_state']}, v{result['version']}")
    signature = demo.call("văn thư", "GET", f"/v1/documents/{doc_id}/signature", expect=200)
    verdict = signature["verdict"]
    if not verdict["ok"]:
        raise DemoFailed(f"the signature does not verify: {verdict}")
    print(
        f"   signed by {verdict['signer']['common_name']} ({verdict['signer']['title']}), "
        f"manifest sha256 {signature['manifest_sha256'][:16]}…"
    )
    points = (
        "intact",
        "valid",
        "trusted",
        "not_revoked",
        "key_usage_ok",
        "valid_at_signing_time",
        "signer_matches",
    )
    print("   verified: " + ", ".join(f"{p} ✓" for p in points if verdict[p]))
    signed_pdf = demo.download("văn thư", f"/v1/documents/{doc_id}/signed-pdf")
    if not signed_pdf.startswith(b"%PDF"):
        raise DemoFailed("the signed PDF is missing")
    print(
        f"   the main PDF now carries a visible PAdES stamp ({len(signed_pdf):,} "
        "bytes, GET …/signed-pdf)"
    )

    return str(doc_id)


def refused_signatures(demo: Demo, runtime: Any, doc_id: str, passphrase: str) -> None:
    """The signer's own token signs with an expired, then a revoked certificate."""
    manifest = demo.download("lãnh đạo", f"/v1/documents/{doc_id}/manifest")
    now = runtime.clock()
    with runtime.uow() as uow:
        expired = issue_signer(
            uow, runtime, passphrase, now, valid_from=now - timedelta(days=400), valid_days=365
        )
        current = uow.signatures.signing_certificate(PROVINCE[0], SIGNER[0], now)
        uow.commit()
    assert current is not None

    def token_signs(row: CertificateRow) -> str:
        cert = x509.load_pem_x509_certificate(row.cert_pem.encode())
        key = pki.load_private_key(row.key_pem.encode(), passphrase)
        roots = runtime.trust.roots()
        cms = sign_manifest(manifest, key=key, cert=cert, chain=roots, signing_time=runtime.clock())
        return base64.b64encode(cms).decode()

    demo.step("A signature made with an expired certificate is refused")
    refused = demo.fire("lãnh đạo", doc_id, "sign", expect=422, cms=token_signs(expired))
    print(f"   422 {refused['code']}: {refused['message']}")

    demo.step("The signer's certificate is revoked (key compromise): its signature is refused")
    with runtime.uow() as uow:
        keystore.revoke(
            uow,
            current.fingerprint,
            reason="key_compromise",
            passphrase=passphrase,
            now=runtime.clock(),
        )
        uow.commit()
    refused = demo.fire("lãnh đạo", doc_id, "sign", expect=422, cms=token_signs(current))
    print(f"   422 {refused['code']}: {refused['message']}")

    demo.step("A new certificate is issued; the signer's token signs and it is accepted")
    with runtime.uow() as uow:
        fresh = issue_signer(uow, runtime, passphrase, runtime.clock())
        uow.commit()
    # The token signs the main PDF too (PAdES, visible stamp), with the same certificate.
    view = demo.call("lãnh đạo", "GET", f"/v1/documents/{doc_id}", expect=200)
    (main,) = [a for a in view["attachments"] if a["role"] == "main"]
    original = demo.download("lãnh đạo", f"/v1/documents/{doc_id}/attachments/{main['sha256']}")
    with runtime.uow(readonly=True) as uow:
        roots = runtime.trust.roots()
        province = uow.agencies.agency(PROVINCE[0])
        agency = province.name if province else ""
    stamped = sign_pdf(
        original,
        key=pki.load_private_key(fresh.key_pem.encode(), passphrase),
        cert=x509.load_pem_x509_certificate(fresh.cert_pem.encode()),
        chain=roots,
        signer_name=SIGNER[1],
        position=SIGNER[2],
        agency_name=agency,
        signing_time=runtime.clock(),
    )
    result = demo.fire(
        "lãnh đạo",
        doc_id,
        "sign",
        cms=token_signs(fresh),
        signed_pdf=base64.b64encode(stamped).decode(),
    )
    print(
        f"   sign (uploaded CMS and PAdES-signed PDF): {result['from_state']} → "
        f"{result['to_state']}"
    )


def format_error(demo: Demo, meta: dict[str, Any]) -> str:
    demo.step(
        "A second letter with format errors: a space in the symbol, a deputy signing "
        "without 'KT.', a subject without 'V/v'"
    )
    bad = {
        **meta,
        "number": 1228,
        "symbol": "UBND TĐKT",
        "signer_competence": "",
        "subject": "Đôn đốc gửi, nhận văn bản điện tử",
    }
    # (the file is right; the clerk mistyped its symbol into the metadata)
    doc_id = str(demo.create(bad, letter_pdf(bad, "1228", notation="1228/UBND-TĐKT"))["id"])
    demo.fire("văn thư", doc_id, "submit")
    demo.show_checks(demo.checks(doc_id))
    refused = demo.fire("chuyên viên", doc_id, "approve", expect=409)
    print(f"   approve → 409 {refused['code']}: {refused['details']['reasons']['checks_cleared']}")

    demo.step("Văn thư fixes the symbol and the signer block, then submits again")
    demo.fire(
        "văn thư",
        doc_id,
        "edit",
        fields={"symbol": "UBND-TĐKT", "signer_competence": "KT. CHỦ TỊCH"},
    )
    demo.fire("văn thư", doc_id, "submit")
    demo.show_checks(demo.checks(doc_id))

    demo.step("Chuyên viên accepts the remaining warning with a reason, then approves")
    demo.fire(
        "chuyên viên",
        doc_id,
        "waive",
        code="format.subject_prefix",
        reason="Trích yếu giữ nguyên theo chỉ đạo của lãnh đạo",
    )
    blocked = demo.fire(
        "chuyên viên", doc_id, "waive", code="format.recipients", reason="thử", expect=422
    )
    print(f"   a blocking check cannot be waived → 422 {blocked['code']}")
    result = demo.fire("chuyên viên", doc_id, "approve")
    print(f"   approve: {result['from_state']} → {result['to_state']}")
    return doc_id


def duplicate(demo: Demo, meta: dict[str, Any], first_id: str) -> str:
    demo.step("A third draft reuses number 1227/UBND-TĐKT this year: a duplicate")
    dup = {**meta, "subject": "V/v tăng cường gửi, nhận văn bản điện tử (bản sao)"}
    doc_id = str(demo.create(dup, letter_pdf(dup, "bản sao"))["id"])
    demo.fire("văn thư", doc_id, "submit")
    view = demo.checks(doc_id)
    demo.show_checks(view)
    caught = {r["code"]: r for r in view["results"]}["duplicates.number"]
    if caught["status"] != "failed" or caught["details"]["earlier_document"] != first_id:
        raise DemoFailed("the duplicate number was not caught")

    demo.step("Chuyên viên returns the duplicate with a reason")
    result = demo.fire(
        "chuyên viên", doc_id, "reject", reason="Trùng số 1227/UBND-TĐKT đã ban hành"
    )
    print(f"   reject: {result['from_state']} → {result['to_state']}")
    queue = demo.call("chuyên viên", "GET", "/v1/review-queue", expect=200)
    print(f"   review queue now holds {len(queue['items'])} document(s)")
    return doc_id


def print_timeline(demo: Demo, doc_id: str) -> None:
    doc = demo.call("văn thư", "GET", f"/v1/documents/{doc_id}", expect=200)
    history = demo.call("văn thư", "GET", f"/v1/documents/{doc_id}/history", expect=200)
    print(
        f"\nTimeline of {doc['notation']} — {doc['subject'][:60]}… "
        f"({doc['state']}, v{doc['version']}):"
    )
    width = max((len(e["event"]) for e in history["items"]), default=0)
    states = max((len(e["from_state"] or "—") for e in history["items"]), default=0)
    for e in history["items"]:
        payload = e["payload"]
        detail = (
            payload.get("reason")
            or payload.get("code")
            or payload.get("organ_id")  # a dispatch's event: its recipient
            or ", ".join(
                payload.get("changed", []) + (["recipients"] if "recipients" in payload else [])
            )
        )
        print(
            f"   v{e['version']:<3} {clock_time(e['at'])}  {e['event']:<{width}} "
            f"{e['from_state'] or '—':>{states}} → {e['to_state']:<12} {e['actor']:<26} {detail}"
        )
