"""How fast congvan reviews a document carrying a 1 MiB PDF, against a ceiling.

What is measured
  engine   documents per second through the review job (``Review.run_review_checks`` run
           by the job runner, exactly as a worker runs it): it loads the document, reads the
           file from the database, runs every registered check (SHA-256 of the bytes,
           type detection, opening the PDF with pypdf, duplicate and authority look-ups)
           and records one result per check, in one transaction per document.
  ceiling  the raw work no review can skip, on the same bytes in the same run:
           ``hashlib.sha256(data)`` plus ``pypdf.PdfReader(data)`` counting its pages.

The ratio engine / ceiling is printed (SQLite embedded default, synchronous=FULL).

Run: python bench/review.py [--documents N] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, and bench/transitions.py would shadow
# the `transitions` library that congvan imports.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]

from pypdf import PdfReader  # noqa: E402

from congvan.actions.context import Actor  # noqa: E402
from congvan.states.timeliness import VIETNAM  # noqa: E402
from congvan.storage.database import make_engine  # noqa: E402
from congvan.storage.schema import migrate  # noqa: E402
from congvan.workflow.bootstrap import bootstrap  # noqa: E402
from congvan.workflow.directory import add_agency, add_authority, ensure_user  # noqa: E402
from congvan.workflow.letters import render_pdf, sample_text  # noqa: E402
from congvan.workflow.settings import Settings  # noqa: E402

AGENCY, PEER = "000.00.00.H57", "000.00.11.H57"
SIGNER = "Nguyễn Văn Phương"


def one_mib_pdf() -> bytes:
    """The sample letter repeated (with numbered lines) until the PDF passes 1 MiB, signed
    by the signer its metadata names (whose name review finds on page 2)."""
    text = sample_text().replace("Nguyễn Thanh Bình", SIGNER)
    copies = 40
    while True:
        body = "\n".join(f"{text}\n-- bản {i} --" for i in range(copies))
        data = render_pdf(body, title="1227/UBND-TĐKT (bench)")
        if len(data) >= 1024 * 1024:
            return data
        copies = int(copies * 1.6 * 1024 * 1024 / len(data)) + 1


def ceiling(data: bytes, rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        hashlib.sha256(data).hexdigest()
        assert len(PdfReader(io.BytesIO(data)).pages) > 0
    return rounds / (time.perf_counter() - start)


def engine_rate(data: bytes, documents: int, workdir: Path) -> tuple[float, int]:
    settings = Settings(data_dir=workdir, max_attachment_bytes=8 * 1024 * 1024)
    migrate(make_engine(settings.db_url))
    runtime = bootstrap(settings)
    now = runtime.clock()
    today = datetime.now(VIETNAM).date()
    with runtime.uow() as uow:
        add_agency(uow, AGENCY, "Ủy ban nhân dân tỉnh Thừa Thiên Huế", "UBND", now)
        add_agency(uow, PEER, "Sở Nội vụ tỉnh Thừa Thiên Huế", "SNV", now)
        ensure_user(uow, AGENCY, "pct", ["signer"], now, full_name=SIGNER)
        add_authority(
            uow,
            AGENCY,
            "pct",
            ["*"],
            "KT. CHỦ TỊCH",
            today.replace(year=2020),
            None,
            by="bench",
            now=now,
        )
        uow.commit()
    clerk = Actor("vanthu@" + AGENCY, AGENCY, frozenset({"clerk"}))
    sha = hashlib.sha256(data).hexdigest()
    jobs = []
    for n in range(documents):
        fields = {
            "number": n + 1,
            "symbol": "UBND-TĐKT",
            "doc_type": "CV",
            "subject": "V/v tăng cường gửi, nhận văn bản điện tử",
            "place": "Huế",
            "issued_on": today.isoformat(),
            "signer_name": SIGNER,
            "signer_position": "PHÓ CHỦ TỊCH",
            "signer_competence": "KT. CHỦ TỊCH",
            "signer_user": "pct",
        }
        doc = runtime.engine.create_document(
            clerk,
            fields,
            [{"organ_id": PEER, "name": "Sở Nội vụ"}],
            [
                {
                    "sha256": sha,
                    "filename": "cv.pdf",
                    "media_type": "application/pdf",
                    "size": len(data),
                    "role": "main",
                    "data": data,
                }
            ],
        )
        jobs.extend(runtime.engine.fire(doc["id"], "submit", clerk).jobs)
    start = time.perf_counter()
    outcomes = [runtime.runner.run(job) for job in jobs]
    elapsed = time.perf_counter() - start
    assert outcomes == ["done"] * len(jobs), outcomes
    with runtime.uow() as uow:
        checks = len(uow.checks.for_revision(doc["id"], uow.documents.load(doc["id"]).revision))
    runtime.stop()
    return documents / elapsed, checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="20 documents")
    args = parser.parse_args()
    documents = 20 if args.quick else args.documents
    data = one_mib_pdf()
    print(
        f"main file: {len(data) / 1024 / 1024:.2f} MiB, "
        f"{len(PdfReader(io.BytesIO(data)).pages)} pages"
    )
    raw = ceiling(data, documents)
    with tempfile.TemporaryDirectory(prefix="congvan-bench-") as tmp:
        rate, checks = engine_rate(data, documents, Path(tmp))
    print(f"ceiling  sha256 + pypdf open     {raw:8.1f} documents/s")
    print(f"engine   review job, {checks} checks   {rate:8.1f} documents/s")
    print(f"ratio    {rate / raw:.2f}")


if __name__ == "__main__":
    main()
