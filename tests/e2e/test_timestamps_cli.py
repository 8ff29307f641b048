"""``congvan verify`` says which time a document's signature rests on: a timestamp or a claim."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from congvan.actions.signing import pki
from congvan.storage.clock import utcnow
from congvan.workflow.bootstrap import bootstrap
from congvan.workflow.settings import Settings
from tests.e2e.test_verify_cli import PASS, Installation, congvan
from tests.e2e.test_verify_cli import installation as installation  # the fixture
from tests.tsa import closed_port_url, issue_tsa, start_tsa


def stamp_signature(data_dir: Path, document_id: str, tsa_url: str) -> str:
    """Ask for the signature's timestamp and run the job as a worker would; its outcome."""
    runtime = bootstrap(Settings(data_dir=data_dir, key_passphrase=PASS, tsa_url=tsa_url))
    try:
        with runtime.uow() as uow:
            signature = uow.signatures.latest_signature(document_id)
            assert signature is not None
            runtime.timestamping.request(
                uow, "signature", signature.id, runtime.clock(), agency_id=None
            )
            uow.commit()
        with runtime.uow(readonly=True) as uow:
            jobs = [
                r[0]
                for r in uow.conn.exec_driver_sql(
                    "SELECT id FROM outbox WHERE action = 'timestamp_signature'"
                )
            ]
        return runtime.runner.run(jobs[-1])
    finally:
        runtime.stop()


def ca_material(data_dir: Path) -> tuple[x509.Certificate, pki.PrivateKey]:
    runtime = bootstrap(Settings(data_dir=data_dir))
    try:
        with runtime.uow(readonly=True) as uow:
            (root,) = [r for r in uow.signatures.roots() if r.key_pem]
    finally:
        runtime.stop()
    return (
        x509.load_pem_x509_certificate(root.cert_pem.encode()),
        pki.load_private_key(root.key_pem.encode(), PASS),
    )


def test_without_a_token_the_time_is_the_one_the_signer_claims(
    installation: Installation,
) -> None:
    done = congvan("verify", installation.signed, data_dir=installation.data_dir)

    assert 0 == done.returncode, done.stdout + done.stderr
    assert "(time claimed by the signer)" in done.stdout
    assert "timestamp     " not in done.stdout


def test_with_a_token_the_timestamp_and_its_authority_are_shown(
    installation: Installation,
) -> None:
    ca_cert, ca_key = ca_material(installation.data_dir)
    material = issue_tsa(ca_cert, ca_key, now=utcnow())  # type: ignore[arg-type]
    with start_tsa(material, utcnow) as tsa:
        assert "done" == stamp_signature(installation.data_dir, installation.signed, tsa.url)

    done = congvan("verify", installation.signed, data_dir=installation.data_dir)

    assert 0 == done.returncode, done.stdout + done.stderr
    assert "VERIFIED" in done.stdout
    assert "by congvan test TSA (RFC 3161" in done.stdout
    assert "(time claimed by the signer)" in done.stdout


def test_a_timestamp_that_could_not_be_had_is_shown_with_its_error(
    installation: Installation,
) -> None:
    assert "failed" == stamp_signature(
        installation.data_dir, installation.signed, closed_port_url()
    )

    done = congvan("verify", installation.signed, data_dir=installation.data_dir)

    assert 0 == done.returncode, done.stdout + done.stderr
    assert "timestamp     pending: " in done.stdout
    assert "unreachable" in done.stdout
