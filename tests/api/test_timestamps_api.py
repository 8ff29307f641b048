"""Timestamps over HTTP: signatures (ours and uploaded ones) and anchors stamped after
commit, an uploaded token kept.

A timestamp authority runs on 127.0.0.1 (``tests.tsa``) with a certificate of the CA the
key store made, on the test's clock. Nothing runs in the background: each test drives the
``timestamp_signature`` job through the runner, as a worker would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from sqlalchemy import text

from congvan.actions.anchoring import verify_anchors
from congvan.actions.signing import keystore, pki
from congvan.actions.signing.timestamps import (
    embedded_token,
    request_token,
    signature_value,
    with_timestamp,
)
from congvan.actions.timestamping import JOB
from congvan.storage.clock import utcnow
from congvan.storage.outbox import FAILED, Job
from tests.api.conftest import A, Api, MakeApi, assert_error
from tests.api.test_signing_api import (
    PASS,
    history,
    issue,
    own_tool,
    reviewed_letter,
    sign,
    signature_rows,
    signing_api,
    upload_by_token,
)
from tests.tsa import LoopbackTsa, closed_port_url, issue_tsa, self_signed_ca, start_tsa


@pytest.fixture
def tsa() -> Iterator[LoopbackTsa]:
    """A TSA on loopback; ``stamping_api`` gives it a certificate and the test's clock."""
    with start_tsa(None, utcnow) as server:
        yield server


def stamping_api(make: MakeApi, tsa: LoopbackTsa, **settings: Any) -> Api:
    """The signing app with the TSA configured and certified by the key store's CA."""
    api = signing_api(make, tsa_url=tsa.url, **settings)
    tsa.clock = api.clock
    with api.runtime.uow() as uow:
        (root,) = [r for r in uow.signatures.roots() if r.key_pem]
    ca_cert = x509.load_pem_x509_certificate(root.cert_pem.encode())
    ca_key = pki.load_private_key(root.key_pem.encode(), PASS)
    tsa.use(issue_tsa(ca_cert, ca_key, now=api.clock()))  # type: ignore[arg-type]
    return api


def timestamp_jobs(api: Api) -> list[Job]:
    """The outbox's timestamp jobs, oldest first."""
    with api.runtime.uow(readonly=True) as uow:
        rows = uow.conn.execute(
            text("SELECT id FROM outbox WHERE action = :a ORDER BY created_at"), {"a": JOB}
        )
        jobs = [uow.outbox.get(r.id) for r in rows]
    return [job for job in jobs if job is not None]


def run_timestamp_jobs(api: Api) -> list[str]:
    """Run every timestamp job once, as a worker would; what each run answered."""
    return [api.runtime.runner.run(job.id) for job in timestamp_jobs(api)]


def signature_of(api: Api, doc_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/documents/{doc_id}/signature")
    assert 200 == response.status_code, response.text
    return dict(response.json())


# -- server signatures -------------------------------------------------------------------


def test_a_server_signature_is_stamped_after_commit_and_judged_at_the_stamp(
    make_api: MakeApi, tsa: LoopbackTsa
) -> None:
    # Given the TSA configured, our CA, a signer's certificate and an approved letter
    api = stamping_api(make_api, tsa)
    issue(api)
    doc_id = reviewed_letter(api)

    # When the signer signs on the server
    assert 200 == sign(api, doc_id).status_code

    # Then the transition asked for a timestamp without calling the TSA inside it
    assert [] == tsa.answered
    pending = signature_of(api, doc_id)
    assert ("pending", "claimed") == (
        pending["timestamp"]["status"],
        pending["verdict"]["time_source"],
    )
    assert "requested" == history(api, doc_id)[-1]["payload"]["timestamp"]

    # When the job runs, after commit
    assert ["done"] == run_timestamp_jobs(api)

    # Then the token is kept and the verdict rests on its time
    stamped = signature_of(api, doc_id)
    now = api.clock().isoformat()
    assert {
        "status": "stamped",
        "source": "tsa",
        "time": now,
        "authority": "congvan test TSA",
        "error": None,
        "attempts": 0,
    } == stamped["timestamp"]
    verdict = stamped["verdict"]
    assert (True, "timestamp", now, "congvan test TSA") == (
        verdict["ok"],
        verdict["time_source"],
        verdict["timestamp"],
        verdict["timestamp_authority"],
    )
    assert 1 == len(tsa.answered)
    # and the stored signature keeps the bytes that were accepted: the token is beside it
    (row,) = signature_rows(api, doc_id)
    assert embedded_token(bytes(row["cms"])) is None

    # And running the job again changes nothing
    assert ["skipped"] == run_timestamp_jobs(api)


def test_a_tsa_that_is_down_never_blocks_signing(make_api: MakeApi) -> None:
    # Given a TSA URL where nothing listens, and two attempts per job
    api = signing_api(make_api, tsa_url=closed_port_url(), job_max_attempts=2)
    issue(api)
    doc_id = reviewed_letter(api)

    # When the signer signs: it is signed
    assert 200 == sign(api, doc_id).status_code

    # When the first attempt fails, the error shows and the request is still pending
    assert ["failed"] == run_timestamp_jobs(api)
    first = signature_of(api, doc_id)["timestamp"]
    assert ("pending", 1) == (first["status"], first["attempts"])
    assert "unreachable" in first["error"]

    # When the last attempt fails, the signature is unavailable for stamping, and says why
    assert ["failed"] == run_timestamp_jobs(api)
    signature = signature_of(api, doc_id)
    assert ("unavailable", 2) == (
        signature["timestamp"]["status"],
        signature["timestamp"]["attempts"],
    )
    assert "unreachable" in signature["timestamp"]["error"]
    assert (True, "claimed", None) == (
        signature["verdict"]["ok"],
        signature["verdict"]["time_source"],
        signature["verdict"]["timestamp"],
    )
    assert [FAILED] == [job.status for job in timestamp_jobs(api)]


def test_without_a_tsa_nothing_is_asked_and_the_status_is_none(make_api: MakeApi) -> None:
    api = signing_api(make_api)
    issue(api)
    doc_id = reviewed_letter(api)

    assert 200 == sign(api, doc_id).status_code

    assert [] == timestamp_jobs(api)
    signature = signature_of(api, doc_id)
    assert ({"status": "none"}, "claimed") == (
        signature["timestamp"],
        signature["verdict"]["time_source"],
    )


# -- uploaded signatures -----------------------------------------------------------------


def test_an_uploaded_cms_carrying_a_token_is_verified_and_the_token_kept(
    make_api: MakeApi, tsa: LoopbackTsa
) -> None:
    # Given a signature made with the signer's own tool and stamped by the TSA
    api = stamping_api(make_api, tsa)
    row = issue(api)
    doc_id = reviewed_letter(api)
    cms = own_tool(api, doc_id, row)
    uploaded = with_timestamp(cms, request_token(tsa.url, signature_value(cms), timeout=10))

    # When it is uploaded
    assert 200 == upload_by_token(api, doc_id, row, uploaded).status_code

    # Then the CMS is kept as it came, its token recorded, and the verdict rests on it
    (stored,) = signature_rows(api, doc_id)
    assert uploaded == bytes(stored["cms"])
    signature = signature_of(api, doc_id)
    assert ("stamped", "embedded", api.clock().isoformat()) == (
        signature["timestamp"]["status"],
        signature["timestamp"]["source"],
        signature["timestamp"]["time"],
    )
    assert "timestamp" == signature["verdict"]["time_source"]
    # and no job asks the TSA again for it
    assert [] == timestamp_jobs(api)


def test_an_uploaded_cms_without_a_token_is_stamped_after_commit_as_ours_are(
    make_api: MakeApi, tsa: LoopbackTsa
) -> None:
    # Given a signature made with the signer's own tool, with no token of its own
    api = stamping_api(make_api, tsa)
    row = issue(api)
    doc_id = reviewed_letter(api)
    cms = own_tool(api, doc_id, row)

    # When it is uploaded, nothing is asked of the TSA in the transaction
    assert 200 == upload_by_token(api, doc_id, row, cms).status_code
    assert [] == tsa.answered
    assert "pending" == signature_of(api, doc_id)["timestamp"]["status"]
    assert "requested" == history(api, doc_id)[-1]["payload"]["timestamp"]

    # Then after commit its job stamps it, the CMS kept as it came, the token beside it
    assert ["done"] == run_timestamp_jobs(api)
    signature = signature_of(api, doc_id)
    assert ("stamped", "tsa") == (
        signature["timestamp"]["status"],
        signature["timestamp"]["source"],
    )
    assert (True, "timestamp") == (signature["verdict"]["ok"], signature["verdict"]["time_source"])
    (stored,) = signature_rows(api, doc_id)
    assert cms == bytes(stored["cms"])


def test_an_uploaded_cms_with_a_token_from_an_untrusted_tsa_is_refused(
    make_api: MakeApi, tsa: LoopbackTsa
) -> None:
    api = stamping_api(make_api, tsa)
    row = issue(api)
    doc_id = reviewed_letter(api)
    cms = own_tool(api, doc_id, row)
    outsider = self_signed_ca("Outsider TSA Root", api.clock())
    with start_tsa(issue_tsa(outsider.cert, outsider.key, now=api.clock()), api.clock) as other:
        uploaded = with_timestamp(cms, request_token(other.url, signature_value(cms), timeout=10))

    details = assert_error(sign(api, doc_id, cms=uploaded), 422, "timestamp_invalid")

    assert "cms" == details["field"]
    assert [] == signature_rows(api, doc_id)


# -- audit anchors -----------------------------------------------------------------------


def test_an_audit_anchor_gets_a_token_that_its_verification_uses(
    make_api: MakeApi, tsa: LoopbackTsa
) -> None:
    # Given an agency key, a signed letter, and an anchor of the agency's heads
    api = stamping_api(make_api, tsa)
    issue(api)
    assert 200 == sign(api, reviewed_letter(api)).status_code
    with api.runtime.uow() as uow:
        keystore.issue_agency(
            uow, A, passphrase=PASS, crl_url=api.runtime.settings.crl_url, now=api.clock()
        )
        uow.commit()
    api.runtime.anchoring.anchor(api.runtime.uow, api.clock())

    # When the timestamp jobs run (the signature's and the anchor's)
    assert ["done", "done"] == run_timestamp_jobs(api)

    # Then the anchor's token is stored and its verification still holds
    with api.runtime.uow(readonly=True) as uow:
        (anchor,) = list(uow.anchors.of_agency(A))
        row = uow.timestamps.get("anchor", anchor.id)
        assert row is not None
        assert ("stamped", "congvan test TSA") == (row.status, row.authority)
        assert [(1, None)] == list(verify_anchors(uow, api.runtime.trust, A))

    # And a token replaced by one over something else breaks it
    other = request_token(tsa.url, b"another signature", timeout=10)
    with api.runtime.db.begin() as conn:
        conn.execute(
            text("UPDATE timestamps SET token = :t WHERE subject = 'anchor'"), {"t": other}
        )
    with api.runtime.uow(readonly=True) as uow:
        ((_seq, problem),) = list(verify_anchors(uow, api.runtime.trust, A))
    assert problem is not None
    assert ("signature", True) == (problem.problem, problem.detail.startswith("timestamp_invalid"))
