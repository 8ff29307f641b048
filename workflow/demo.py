"""``congvan demo``: letter 1227/UBND-TĐKT and its siblings driven through review over HTTP."""

from __future__ import annotations

import base64
import json
import secrets
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from pydantic import SecretStr

from congvan.actions.anchoring import verify_anchors
from congvan.actions.signing import keystore, pki
from congvan.actions.signing.cms import sign_manifest
from congvan.actions.signing.pades import sign_pdf
from congvan.states.timeliness import VIETNAM
from congvan.storage.database import make_engine
from congvan.storage.schema import migrate

from .api import create_app
from .bootstrap import bootstrap
from .directory import add_agency, create_token, ensure_user
from .letters import sample_pdf
from .serving import serve_in_thread
from .settings import Settings

PROVINCE = ("000.00.00.H57", "Ủy ban nhân dân tỉnh Thừa Thiên Huế", "UBND")
DEPARTMENT = ("000.00.11.H57", "Sở Nội vụ tỉnh Thừa Thiên Huế", "SNV")
CITY = ("000.00.31.H57", "Ủy ban nhân dân thành phố Huế", "UBND")
SIGNER = ("pct", "Nguyễn Văn Phương", "Phó Chủ tịch")


def letter_1227(today: str) -> dict[str, Any]:
    """The sample letter's metadata as a clerk enters it (Decree 30 format fields).

    The demo re-issues it today: a letter dated years ago would (rightly) draw the
    timeliness warning.
    """
    return {
        "number": 1227,
        "symbol": "UBND-TĐKT",
        "doc_type": "CV",
        "subject": "V/v tăng cường gửi, nhận văn bản điện tử giữa các cơ quan hành chính "
        "nhà nước nhằm phòng, chống dịch COVID-19",
        "place": "Thừa Thiên Huế",
        "issued_on": today,
        "signer_name": SIGNER[1],
        "signer_position": "PHÓ CHỦ TỊCH",
        "signer_competence": "KT. CHỦ TỊCH",
        "signer_user": SIGNER[0],
        "urgency": 0,
        "recipients": [
            {"organ_id": DEPARTMENT[0], "name": DEPARTMENT[1]},
            {"organ_id": CITY[0], "name": CITY[1]},
        ],
    }


class DemoFailed(Exception):
    pass


class Demo:
    def __init__(self, client: httpx.Client, tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens
        self.step_no = 0

    def call(self, who: str, method: str, path: str, *, expect: int, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}", **kwargs.pop("headers", {})}
        response = self.client.request(method, path, headers=headers, **kwargs)
        body = response.json()
        if response.status_code != expect:
            raise DemoFailed(
                f"{method} {path} as {who}: expected {expect}, got "
                f"{response.status_code} {json.dumps(body, ensure_ascii=False)}"
            )
        return body

    def download(self, who: str, path: str) -> bytes:
        """The bytes of a binary answer (a PDF, a manifest), which must be 200."""
        response = self.client.get(path, headers={"Authorization": f"Bearer {self.tokens[who]}"})
        if response.status_code != 200:
            raise DemoFailed(f"GET {path} as {who}: expected 200, got {response.status_code}")
        return response.content

    def step(self, text: str) -> None:
        self.step_no += 1
        print(f"\n{self.step_no}. {text}")

    def create(self, meta: dict[str, Any], pdf: bytes, key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": key} if key else {}
        doc: dict[str, Any] = self.call(
            "văn thư",
            "POST",
            "/v1/documents",
            expect=201,
            headers=headers,
            data={"metadata": json.dumps(meta, ensure_ascii=False)},
            files={"main": (f"{meta['number']}.pdf", pdf, "application/pdf")},
        )
        return doc

    def fire(
        self, who: str, doc_id: str, event: str, *, expect: int = 200, **body: Any
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            who, "POST", f"/v1/documents/{doc_id}/events/{event}", expect=expect, json=body or None
        )
        return result

    def checks(self, doc_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait (polling, with a deadline) for the review job to record every check."""
        deadline = time.monotonic() + timeout
        while True:
            view: dict[str, Any] = self.call(
                "chuyên viên", "GET", f"/v1/documents/{doc_id}/checks", expect=200
            )
            if not view["pending"]:
                return view
            if time.monotonic() > deadline:
                raise DemoFailed(f"checks still pending after {timeout}s: {view['pending']}")
            time.sleep(0.05)

    def show_checks(self, view: dict[str, Any]) -> None:
        failed = [r for r in view["results"] if not r["cleared"]]
        print(
            f"   {len(view['results'])} checks on revision {view['revision']}: "
            f"{len(view['results']) - len(failed)} cleared, {len(failed)} not"
        )
        for r in failed:
            print(f"   ✗ {r['code']} ({r['severity']}): {r['message']['vi']}")


def _setup(runtime: Any, passphrase: str) -> dict[str, str]:
    tokens = {}
    now = runtime.clock()
    with runtime.uow() as uow:
        for agency_id, name, abbreviation in (PROVINCE, DEPARTMENT, CITY):
            add_agency(uow, agency_id, name, abbreviation, now)
        keystore.init_ca(
            uow,
            "congvan demo CA",
            PROVINCE[1],
            passphrase=passphrase,
            now=now,
            store=runtime.trust,
        )
        people = {
            "văn thư": (PROVINCE[0], "vanthu", ["clerk"], "Trần Thị Lan", "Văn thư"),
            "chuyên viên": (
                PROVINCE[0],
                "chuyenvien",
                ["reviewer"],
                "Lê Văn Hùng",
                "Chuyên viên Ban Thi đua - Khen thưởng",
            ),
            "lãnh đạo": (PROVINCE[0], SIGNER[0], ["signer"], SIGNER[1], SIGNER[2]),
            "chánh văn phòng": (
                PROVINCE[0],
                "chanhvp",
                ["supervisor"],
                "Hồ Thị Mai",
                "Chánh Văn phòng",
            ),
            "văn thư Sở": (DEPARTMENT[0], "vanthu", ["clerk"], "Phạm Thị Hoa", "Văn thư"),
        }
        for who, (agency, username, roles, full_name, position) in people.items():
            user_id = ensure_user(
                uow, agency, username, roles, now, full_name=full_name, position=position
            )
            tokens[who] = create_token(uow, user_id, now).token
        keystore.issue_signer(
            uow,
            PROVINCE[0],
            SIGNER[0],
            passphrase=passphrase,
            crl_url=runtime.settings.crl_url,
            now=now,
        )
        keystore.issue_agency(
            uow, PROVINCE[0], passphrase=passphrase, crl_url=runtime.settings.crl_url, now=now
        )
        uow.commit()
    print(
        "A test certification authority, the Phó Chủ tịch's certificate and the province's "
        "organisational certificate are ready"
    )
    return tokens


def _clean_letter(demo: Demo, meta: dict[str, Any], pdf: bytes) -> str:
    demo.step("The chánh văn phòng grants the Phó Chủ tịch authority to sign (KT. CHỦ TỊCH)")
    grant = demo.call(
        "chánh văn phòng",
        "POST",
        "/v1/authorities",
        expect=201,
        json={"signer": SIGNER[0], "competence": "KT. CHỦ TỊCH", "valid_from": "2021-01-01"},
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
    hidden = demo.call("văn thư Sở", "GET", f"/v1/documents/{doc_id}", expect=404)
    print(f"   the Sở reading the province's draft → 404 {hidden['code']}")

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

    demo.step("Sending needs delivery, which is not installed yet — never a silent no-op")
    missing = demo.fire("văn thư", doc_id, "send", expect=501)
    print(f"   501 {missing['code']}: needs {', '.join(missing['details']['missing'])}")
    return str(doc_id)


def _refused_signatures(demo: Demo, runtime: Any, doc_id: str, passphrase: str) -> None:
    """The signer's own token signs with an expired, then a revoked certificate."""
    manifest = demo.download("lãnh đạo", f"/v1/documents/{doc_id}/manifest")
    now = runtime.clock()
    with runtime.uow() as uow:
        expired = keystore.issue_signer(
            uow,
            PROVINCE[0],
            SIGNER[0],
            passphrase=passphrase,
            crl_url=runtime.settings.crl_url,
            now=now,
            valid_from=now - timedelta(days=400),
            valid_days=365,
        )
        current = uow.signatures.signing_certificate(PROVINCE[0], SIGNER[0], now)
        uow.commit()
    assert current is not None

    def token_signs(row: dict[str, Any]) -> str:
        cert = x509.load_pem_x509_certificate(row["cert_pem"].encode())
        key = pki.load_private_key(row["key_pem"].encode(), passphrase)
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
            current["fingerprint"],
            reason="key_compromise",
            passphrase=passphrase,
            now=runtime.clock(),
        )
        uow.commit()
    refused = demo.fire("lãnh đạo", doc_id, "sign", expect=422, cms=token_signs(current))
    print(f"   422 {refused['code']}: {refused['message']}")

    demo.step("A new certificate is issued; the signer's token signs and it is accepted")
    with runtime.uow() as uow:
        fresh = keystore.issue_signer(
            uow,
            PROVINCE[0],
            SIGNER[0],
            passphrase=passphrase,
            crl_url=runtime.settings.crl_url,
            now=runtime.clock(),
        )
        uow.commit()
    # The token signs the main PDF too (PAdES, visible stamp), with the same certificate.
    view = demo.call("lãnh đạo", "GET", f"/v1/documents/{doc_id}", expect=200)
    (main,) = [a for a in view["attachments"] if a["role"] == "main"]
    original = demo.download("lãnh đạo", f"/v1/documents/{doc_id}/attachments/{main['sha256']}")
    with runtime.uow(readonly=True) as uow:
        roots = runtime.trust.roots()
        agency = (uow.agencies.agency(PROVINCE[0]) or {}).get("name", "")
    stamped = sign_pdf(
        original,
        key=pki.load_private_key(fresh["key_pem"].encode(), passphrase),
        cert=x509.load_pem_x509_certificate(fresh["cert_pem"].encode()),
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


def _format_error(demo: Demo, meta: dict[str, Any], pdf: bytes) -> str:
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
    doc_id = str(demo.create(bad, sample_pdf("1228"))["id"])
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


def _duplicate(demo: Demo, meta: dict[str, Any], first_id: str) -> str:
    demo.step("A third draft reuses number 1227/UBND-TĐKT this year: a duplicate")
    dup = {**meta, "subject": "V/v tăng cường gửi, nhận văn bản điện tử (bản sao)"}
    doc_id = str(demo.create(dup, sample_pdf("bản sao"))["id"])
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


def _print_timeline(demo: Demo, doc_id: str) -> None:
    doc = demo.call("văn thư", "GET", f"/v1/documents/{doc_id}", expect=200)
    history = demo.call("văn thư", "GET", f"/v1/documents/{doc_id}/history", expect=200)
    print(
        f"\nTimeline of {doc['notation']} — {doc['subject'][:60]}… "
        f"({doc['state']}, v{doc['version']}):"
    )
    for e in history["items"]:
        payload = e["payload"]
        detail = (
            payload.get("reason")
            or payload.get("code")
            or ", ".join(
                payload.get("changed", []) + (["recipients"] if "recipients" in payload else [])
            )
        )
        print(
            f"   v{e['version']:<3} {e['at'][11:19]}  {e['event']:<8} "
            f"{e['from_state'] or '—':>8} → {e['to_state']:<8} {e['actor']:<26} {detail}"
        )


def run_demo(data_dir: Path | None = None) -> int:
    """Run the demo; non-zero exit when any step does not behave as it should."""
    tmp = None
    if data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="congvan-demo-")
        data_dir = Path(tmp.name)
    passphrase = secrets.token_urlsafe(24)  # this run's keys; never printed
    settings = Settings(
        data_dir=data_dir, relay_poll_seconds=0.05, key_passphrase=SecretStr(passphrase)
    )
    print(f"congvan demo — embedded database in {data_dir}")
    engine = make_engine(settings.db_url)
    migrate(engine)
    runtime = bootstrap(settings, db=engine)
    today = datetime.now(VIETNAM).date().isoformat()
    meta = letter_1227(today)
    try:
        tokens = _setup(runtime, passphrase)
        app = create_app(runtime, background=True)
        with (
            serve_in_thread(app) as base_url,
            httpx.Client(base_url=base_url, timeout=30) as client,
        ):
            print(f"API listening on {base_url}; worker threads, relay and scheduler running")
            demo = Demo(client, tokens)
            first = _clean_letter(demo, meta, sample_pdf())
            second = _format_error(demo, meta, sample_pdf())
            _refused_signatures(demo, runtime, second, passphrase)
            third = _duplicate(demo, meta, first)
            for doc_id in (first, second, third):
                _print_timeline(demo, doc_id)
        with runtime.uow() as uow:
            anchored = runtime.anchoring.anchor_all(uow, runtime.clock())
            uow.commit()
        print(
            f"\nAudit anchor: the province signed the heads of {anchored.get(PROVINCE[0], 0)} "
            "audit chain(s) with its organisational key (congvan audit anchor)"
        )
        with runtime.uow(readonly=True) as uow:
            results = list(uow.audit.verify())
            anchors = list(verify_anchors(uow, runtime.trust, PROVINCE[0]))
        broken = [(d, p) for d, p in results if p is not None]
        bad = [(seq, p) for seq, p in anchors if p is not None]
        print(f"Audit verification: {len(results)} chain(s) checked, {len(broken)} broken")
        print(f"                    {len(anchors)} anchor(s) checked, {len(bad)} broken")
        for doc, problem in broken:
            print(f"   BROKEN {doc}: {problem}")
        for seq, anchor_problem in bad:
            print(f"   BROKEN anchor {seq}: {anchor_problem}")
        if broken or bad or not anchored.get(PROVINCE[0]):
            return 1
        print("\nDemo finished: every step behaved as expected.")
        return 0
    except DemoFailed as exc:
        print(f"\nDEMO FAILED: {exc}")
        return 1
    finally:
        runtime.stop()
        if tmp is not None:
            tmp.cleanup()
