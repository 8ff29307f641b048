"""``congvan demo``: two agencies, their users, and letter 1227/UBND-TĐKT driven over HTTP."""

from __future__ import annotations

import json
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from congvan.storage.audit import verify_chains
from congvan.storage.database import make_engine
from congvan.storage.schema import migrate

from .api import create_app
from .bootstrap import bootstrap
from .directory import add_agency, create_token, ensure_user
from .serving import serve_in_thread
from .settings import Settings

PROVINCE = ("000.00.00.H57", "Ủy ban nhân dân tỉnh Thừa Thiên Huế", "UBND")
DEPARTMENT = ("000.00.11.H57", "Sở Nội vụ tỉnh Thừa Thiên Huế", "SNV")

# The sample letter, with the metadata a clerk enters for it (Decree 30 format fields).
LETTER_1227 = {
    "number": 1227,
    "symbol": "UBND-TĐKT",
    "doc_type": "CV",
    "subject": "V/v tăng cường gửi, nhận văn bản điện tử giữa các cơ quan hành chính nhà nước "
    "nhằm phòng, chống dịch COVID-19",
    "place": "Thừa Thiên Huế",
    "issued_on": "2021-02-06",
    "signer_name": "Nguyễn Văn Phương",
    "signer_position": "PHÓ CHỦ TỊCH",
    "signer_competence": "KT. CHỦ TỊCH",
    "urgency": 0,
    "recipients": [
        {"organ_id": DEPARTMENT[0], "name": DEPARTMENT[1]},
        {"organ_id": "000.00.31.H57", "name": "UBND thành phố Huế"},
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

    def step(self, text: str) -> None:
        self.step_no += 1
        print(f"\n{self.step_no}. {text}")


def _setup(runtime: Any) -> dict[str, str]:
    tokens = {}
    now = runtime.clock()
    with runtime.uow() as uow:
        for agency_id, name, abbreviation in (PROVINCE, DEPARTMENT):
            add_agency(uow, agency_id, name, abbreviation, now)
        people = {
            "văn thư": (PROVINCE[0], "vanthu", ["clerk"], "Trần Thị Lan", "Văn thư"),
            "chuyên viên": (
                PROVINCE[0],
                "chuyenvien",
                ["reviewer"],
                "Lê Văn Hùng",
                "Chuyên viên Ban Thi đua - Khen thưởng",
            ),
            "lãnh đạo": (PROVINCE[0], "pct", ["signer"], "Nguyễn Văn Phương", "Phó Chủ tịch"),
            "văn thư Sở": (DEPARTMENT[0], "vanthu", ["clerk"], "Phạm Thị Hoa", "Văn thư"),
        }
        for who, (agency, username, roles, full_name, position) in people.items():
            user_id = ensure_user(
                uow, agency, username, roles, now, full_name=full_name, position=position
            )
            tokens[who] = create_token(uow, user_id, now).token
        uow.commit()
    return tokens


def _drive(demo: Demo, letter: bytes) -> str:
    demo.step("Văn thư creates the draft of letter 1227/UBND-TĐKT with its file")
    meta = {**LETTER_1227, "subject": LETTER_1227["subject"].replace("COVID-19", "COVID")}
    doc = demo.call(
        "văn thư",
        "POST",
        "/v1/documents",
        expect=201,
        data={"metadata": json.dumps(meta, ensure_ascii=False)},
        files={"main": ("1227-UBND-TDKT.md", letter, "text/markdown")},
        headers={"Idempotency-Key": "demo-create-1227"},
    )
    doc_id = doc["id"]
    print(
        f"   {doc['notation']} is {doc['state']} at version {doc['version']}; "
        f"attachment sha256 {doc['attachments'][0]['sha256'][:16]}…"
    )

    demo.step("The same request again with the same Idempotency-Key creates nothing new")
    again = demo.call(
        "văn thư",
        "POST",
        "/v1/documents",
        expect=201,
        data={"metadata": json.dumps(meta, ensure_ascii=False)},
        files={"main": ("1227-UBND-TDKT.md", letter, "text/markdown")},
        headers={"Idempotency-Key": "demo-create-1227"},
    )
    if again["id"] != doc_id:
        raise DemoFailed("an idempotent retry created a second document")
    print(f"   answered with the same document {doc_id}")

    demo.step("Văn thư corrects the subject (trích yếu), naming the version it read")
    result = demo.call(
        "văn thư",
        "POST",
        f"/v1/documents/{doc_id}/events/edit",
        expect=200,
        headers={"If-Match": '"1"'},
        json={"fields": {"subject": LETTER_1227["subject"]}},
    )
    print(f"   edit: {result['from_state']} → {result['to_state']}, version {result['version']}")

    demo.step("A second edit based on the old version loses the race")
    conflict = demo.call(
        "văn thư",
        "POST",
        f"/v1/documents/{doc_id}/events/edit",
        expect=409,
        headers={"If-Match": '"1"'},
        json={"fields": {"place": "Huế"}},
    )
    print(f"   409 {conflict['code']}: {conflict['message']}")

    demo.step("Chuyên viên returns it with a reason")
    result = demo.call(
        "chuyên viên",
        "POST",
        f"/v1/documents/{doc_id}/events/reject",
        expect=200,
        json={"reason": "Bổ sung nơi nhận: Văn phòng UBND tỉnh"},
    )
    print(f"   reject: {result['from_state']} → {result['to_state']}, version {result['version']}")

    demo.step("Văn thư adds the missing recipient")
    result = demo.call(
        "văn thư",
        "POST",
        f"/v1/documents/{doc_id}/events/edit",
        expect=200,
        json={
            "recipients": [
                *LETTER_1227["recipients"],
                {"organ_id": "000.00.01.H57", "name": "Văn phòng UBND tỉnh"},
            ]
        },
    )
    print(f"   edit: version {result['version']}")

    demo.step("Events that are not allowed now are refused with the allowed ones")
    refused = demo.call("văn thư", "POST", f"/v1/documents/{doc_id}/events/send", expect=409)
    print(f"   409 {refused['code']}: allowed now {refused['details']['allowed']}")

    demo.step("Roles are enforced: văn thư may not approve")
    refused = demo.call("văn thư", "POST", f"/v1/documents/{doc_id}/events/approve", expect=403)
    print(f"   403 {refused['code']}: {refused['message']}")

    demo.step("Agencies are isolated: the Sở's văn thư cannot see the province's draft")
    hidden = demo.call("văn thư Sở", "GET", f"/v1/documents/{doc_id}", expect=404)
    print(f"   404 {hidden['code']}")

    demo.step("Submitting for review needs the review checks, which are not installed yet")
    missing = demo.call("văn thư", "POST", f"/v1/documents/{doc_id}/events/submit", expect=501)
    print(f"   501 {missing['code']}: {missing['message']}")
    return str(doc_id)


def _print_timeline(demo: Demo, doc_id: str) -> None:
    doc = demo.call("văn thư", "GET", f"/v1/documents/{doc_id}", expect=200)
    history = demo.call("văn thư", "GET", f"/v1/documents/{doc_id}/history", expect=200)
    print(f"\nTimeline of {doc['notation']} ({doc['state']}, version {doc['version']}):")
    for e in history["entries"]:
        payload = e["payload"]
        detail = payload.get("reason") or ", ".join(
            payload.get("changed", []) + (["recipients"] if "recipients" in payload else []))
        print(
            f"   v{e['version']:<3} {e['at'][:19]}  {e['event']:<8} {e['from_state'] or '—':>8}"
            f" → {e['to_state']:<8} {e['actor']:<28} {detail}"
        )
    print(f"   allowed now: {', '.join(doc['allowed_events'])}")
    print(f"   recipients: {', '.join(r['organ_id'] for r in doc['recipients'])}")


def run_demo(data_dir: Path | None = None) -> int:
    """Run the demo; non-zero exit when any step does not behave as it should."""
    tmp = None
    if data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="congvan-demo-")
        data_dir = Path(tmp.name)
    settings = Settings(data_dir=data_dir)
    print(f"congvan demo — embedded database in {data_dir}")
    engine = make_engine(settings.db_url)
    migrate(engine)
    runtime = bootstrap(settings, db=engine)
    letter = (
        resources.files("congvan.workflow")
        .joinpath("samples/cong-van-1227-UBND-TDKT.md")
        .read_bytes()
    )
    try:
        tokens = _setup(runtime)
        app = create_app(runtime, background=True)
        with (
            serve_in_thread(app) as base_url,
            httpx.Client(base_url=base_url, timeout=30) as client,
        ):
            print(f"API listening on {base_url}")
            demo = Demo(client, tokens)
            doc_id = _drive(demo, letter)
            _print_timeline(demo, doc_id)
        with runtime.uow(readonly=True) as uow:
            results = list(verify_chains(uow.conn))
        broken = [(d, p) for d, p in results if p is not None]
        print(f"\nAudit verification: {len(results)} chain(s) checked, {len(broken)} broken")
        for doc, problem in broken:
            print(f"   BROKEN {doc}: {problem}")
        if broken:
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
