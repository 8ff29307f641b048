"""Audit anchors against someone with SQL access: a root of their own, a key of the wrong kind.

An anchor must be signed by the agency's organisational certificate, chained to a root the
trust store pins. Someone who can write SQL can add a root row and sign with it, or re-sign
an anchor with a person's certificate they hold; both are caught, by ``verify_anchors`` and
by ``congvan audit verify``, which also says that the database holds a root nobody pinned.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from sqlalchemy import text

from congvan.actions.signing import keystore, pki
from congvan.actions.signing.cms import sign_manifest
from congvan.workflow import cli, directory
from congvan.workflow.bootstrap import Runtime
from tests.conftest import MakeRuntime
from tests.factories import AGENCY_ID, AGENCY_NAME, add_agency, create_document
from tests.integration.test_anchoring import anchor

PASS = "anchor test passphrase"


@pytest.fixture
def keyed(make_runtime: MakeRuntime) -> Iterator[Runtime]:
    """congvan with a CA, the agency's organisational certificate and a signer's."""
    runtime = make_runtime(key_passphrase=PASS)
    add_agency(runtime)
    now = runtime.clock()
    with runtime.uow() as uow:
        keystore.init_ca(
            uow, "Anchor CA", "UBND tỉnh", passphrase=PASS, now=now, store=runtime.trust
        )
        keystore.issue_agency(uow, AGENCY_ID, passphrase=PASS, crl_url="http://x/crl", now=now)
        directory.ensure_user(
            uow, AGENCY_ID, "pct", ["signer"], now, full_name="Nguyễn Văn Phương", position="PCT"
        )
        keystore.issue_signer(
            uow, AGENCY_ID, "pct", passphrase=PASS, crl_url="http://x/crl", now=now
        )
        uow.commit()
    yield runtime


def resign_latest_anchor(
    runtime: Runtime, key: Any, cert: x509.Certificate, chain: list[Any]
) -> None:
    """Replace the newest anchor's signature with one made by ``key`` (SQL access only)."""
    with runtime.uow() as uow:
        latest = uow.anchors.latest(AGENCY_ID)
        assert latest is not None
        cms = sign_manifest(
            bytes(latest.body), key=key, cert=cert, chain=chain, signing_time=runtime.clock()
        )
        uow.conn.execute(
            text("UPDATE audit_anchors SET cms = :cms WHERE id = :id"),
            {"cms": cms, "id": latest.id},
        )
        uow.commit()


def anchor_problems(runtime: Runtime) -> list[Any]:
    from congvan.actions.anchoring import verify_anchors

    with runtime.uow(readonly=True) as uow:
        return [p for _s, p in verify_anchors(uow, runtime.trust, AGENCY_ID) if p is not None]


def audit_verify(runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    settings = runtime.settings
    code = cli.main(
        ["--data-dir", str(settings.data_dir), "--database-url", settings.db_url, "audit", "verify"]
    )
    return code, capsys.readouterr().out


def test_an_anchor_signed_under_a_root_written_with_sql_is_refused(
    keyed: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an anchored document
    create_document(keyed)
    anchor(keyed)
    assert anchor_problems(keyed) == []

    # When someone with SQL access adds a root of their own and re-signs the anchor with an
    # "agency certificate" it issued
    now = keyed.clock()
    forged_ca = pki.create_ca("Forged CA", "x", passphrase=PASS, valid_from=now, valid_days=30)
    forged = pki.issue_agency_certificate(
        forged_ca,
        PASS,
        agency_id=AGENCY_ID,
        agency_name=AGENCY_NAME,
        passphrase=PASS,
        valid_from=now,
        valid_days=30,
        crl_url="http://forged/crl",
    )
    with keyed.uow() as uow:
        keystore._store(uow, "root", forged_ca, now)  # the row SQL would write
        uow.commit()
    resign_latest_anchor(
        keyed,
        pki.load_private_key(forged.key_pem, PASS),
        forged.certificate,
        [forged_ca.certificate],
    )

    # Then the anchor's signature is refused as untrusted
    (problem,) = anchor_problems(keyed)
    assert (problem.problem, problem.detail.split(":")[0]) == ("signature", "chain_untrusted")

    # And `congvan audit verify` says so, and names the root nobody pinned
    code, out = audit_verify(keyed, capsys)
    assert code == 1, out
    assert "BROKEN anchor 1" in out
    assert "chain_untrusted" in out
    fingerprint = keystore.fingerprint(forged_ca.certificate)
    assert f"root {fingerprint[:16]}… is in the database but not pinned" in out


def test_an_anchor_resigned_with_a_persons_certificate_is_refused(keyed: Runtime) -> None:
    # Given an anchored document
    create_document(keyed)
    anchor(keyed)

    # When the anchor is re-signed with the signer's personal certificate (same CA, same
    # agency, a key someone in the agency holds)
    with keyed.uow(readonly=True) as uow:
        row = uow.signatures.signing_certificate(AGENCY_ID, "pct", keyed.clock())
        assert row is not None
    resign_latest_anchor(
        keyed,
        pki.load_private_key(row.key_pem.encode(), PASS),
        x509.load_pem_x509_certificate(row.cert_pem.encode()),
        keyed.trust.roots(),
    )

    # Then the anchor is refused: anchors are the agency's, not a person's
    (problem,) = anchor_problems(keyed)
    assert problem.problem == "signature"
    assert problem.detail.startswith("certificate_profile_invalid")


def test_unpinning_our_root_makes_every_anchor_untrusted(keyed: Runtime) -> None:
    # Given an anchored document, and our root removed from the trust store
    create_document(keyed)
    anchor(keyed)
    (root,) = keyed.trust.pinned()
    assert keyed.trust.unpin(root.fingerprint)

    # Then the anchor no longer verifies, though the root is still in the database
    (problem,) = anchor_problems(keyed)
    assert problem.detail.startswith("chain_untrusted")
    with keyed.uow(readonly=True) as uow:
        assert keystore.trust_material(uow, keyed.trust, noting_ignored=True).ignored == (
            root.fingerprint,
        )


def test_an_anchor_is_judged_at_the_moment_its_signed_body_states(keyed: Runtime) -> None:
    # Given an anchored document
    create_document(keyed)
    anchor(keyed)

    # When its row's created_at is moved in SQL, far before the certificates existed
    with keyed.uow() as uow:
        uow.conn.execute(text("UPDATE audit_anchors SET created_at = '2001-01-01 00:00:00'"))
        uow.commit()

    # Then nothing changes: the moment is the one the signed body states
    assert anchor_problems(keyed) == []
