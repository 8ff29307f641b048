"""A large stored file is hashed and served a slice at a time, never held whole: however
many download it at once, each holds about a slice; changed bytes are still never served."""

from __future__ import annotations

import hashlib
import os
import threading
import tracemalloc
from typing import Any

import httpx
from sqlalchemy import text

from congvan.storage.blobreader import SLICE
from congvan.workflow.api import create_app
from congvan.workflow.serving import serve_in_thread
from tests.api.conftest import MAIN_PDF, Api, assert_error, sha256
from tests.factories import A, arrival

BIG = os.urandom(40 * SLICE + 12345)  # 40 slices and a piece (10 MiB)
DIGEST = sha256(BIG)


def _with_big_appendix(api: Api) -> str:
    files = [
        ("main", ("1227-UBND-TDKT.pdf", MAIN_PDF, "application/pdf")),
        ("appendix", ("phu-luc.bin", BIG, "application/octet-stream")),
    ]
    created = api.create(files=files)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_a_large_attachment_is_served_whole_a_slice_at_a_time(api_any_db: Api) -> None:
    api = api_any_db
    doc_id = _with_big_appendix(api)
    path = f"/v1/documents/{doc_id}/attachments/{DIGEST}"

    got = api.get(path)
    head = api.client.head(path, headers=api.auth())

    assert got.status_code == 200 and got.content == BIG
    assert got.headers["content-length"] == str(len(BIG))
    assert got.headers["ETag"] == f'"{DIGEST}"'
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(BIG))


def test_a_large_attachment_changed_in_storage_is_not_served(api_any_db: Api) -> None:
    api = api_any_db
    # Given the stored bytes of a large appendix changed in the database, past the first slice
    doc_id = _with_big_appendix(api)
    changed = BIG[: 3 * SLICE] + bytes([BIG[3 * SLICE] ^ 1]) + BIG[3 * SLICE + 1 :]
    with api.runtime.db.begin() as conn:
        conn.execute(
            text("UPDATE blobs SET data = :d WHERE sha256 = :s"), {"d": changed, "s": DIGEST}
        )

    # Then it is refused, by GET and HEAD alike, before a byte is sent
    path = f"/v1/documents/{doc_id}/attachments/{DIGEST}"
    assert_error(api.get(path), 422, "manifest_mismatch")
    assert api.client.head(path, headers=api.auth()).status_code == 422


def test_downloads_of_a_large_file_hold_a_slice_each_not_the_file(api_any_db: Api) -> None:
    api = api_any_db
    # Given a large appendix, served over a real server, and four clients downloading it at
    # once, each reading what comes and keeping only its digest
    doc_id = _with_big_appendix(api)
    url_path = f"/v1/documents/{doc_id}/attachments/{DIGEST}"
    digests: list[str] = []

    def download(base: str) -> None:
        digest = hashlib.sha256()
        with httpx.stream("GET", base + url_path, headers=api.auth(), timeout=60) as answer:
            assert answer.status_code == 200
            for chunk in answer.iter_raw():
                digest.update(chunk)
        digests.append(digest.hexdigest())

    with serve_in_thread(create_app(api.runtime)) as base:
        download(base)  # once first: what is made once per process is not counted
        digests.clear()
        tracemalloc.start()
        try:
            clients = [threading.Thread(target=download, args=(base,)) for _ in range(4)]
            for client in clients:
                client.start()
            for client in clients:
                client.join()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    # Then each got the file, and all of them together held less than the file once
    assert digests == [DIGEST] * 4
    assert peak < len(BIG), _mib(peak)


def _mib(size: Any) -> str:
    return f"peak {size / (1 << 20):.1f} MiB"


def _received_with_big_appendix(api: Api) -> str:
    files = (
        ("files/1227-UBND-TĐKT.pdf", "main", "application/pdf", b"%PDF-1.4 1227/UBND-TDKT"),
        ("files/phu-luc.bin", "appendix", "application/octet-stream", BIG),
    )
    doc, _stored = api.runtime.engine.receive(arrival("msg-big", agency_id=A, files=files))
    return doc.id


def test_a_large_received_package_is_read_a_slice_at_a_time(api_any_db: Api) -> None:
    # Given a received document whose package holds a large appendix
    api = api_any_db
    doc = _received_with_big_appendix(api)

    # Then its view lists it and its download is the file, while the package, read whole
    # before, is held a slice at a time
    tracemalloc.start()
    try:
        view = api.get(f"/v1/received/{doc}")
        _, viewing = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert view.status_code == 200, view.text
    assert {f["sha256"] for f in view.json()["files"]} >= {DIGEST}
    assert viewing < len(BIG) / 2, _mib(viewing)
    got = api.get(f"/v1/received/{doc}/files/phu-luc.bin")
    assert got.status_code == 200 and got.content == BIG
    assert got.headers["content-length"] == str(len(BIG))
    head = api.client.head(f"/v1/received/{doc}/files/phu-luc.bin", headers=api.auth())
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(BIG))


def test_a_received_package_changed_in_storage_is_not_served(api_any_db: Api) -> None:
    # Given a received package's stored bytes changed deep inside its large appendix
    api = api_any_db
    doc = _received_with_big_appendix(api)
    with api.runtime.db.begin() as conn:
        [(digest, data)] = conn.execute(
            text("SELECT sha256, data FROM blobs WHERE size > :n"), {"n": len(BIG)}
        ).all()
        middle = len(data) // 2
        changed = bytes(data[:middle]) + bytes([data[middle] ^ 1]) + bytes(data[middle + 1 :])
        conn.execute(
            text("UPDATE blobs SET data = :d WHERE sha256 = :s"), {"d": changed, "s": digest}
        )

    # Then neither its view nor a file of it is served
    assert_error(api.get(f"/v1/received/{doc}"), 422, "manifest_mismatch")
    assert_error(api.get(f"/v1/received/{doc}/files/phu-luc.bin"), 422, "manifest_mismatch")
