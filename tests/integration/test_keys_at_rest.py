"""Stored private keys: their KDF cost, re-encryption (rewrap) and the CA's own passphrase."""

from __future__ import annotations

import logging
from dataclasses import astuple
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from congvan.actions.signing import keystore, keywrap, pki
from congvan.actions.signing.cms import sign_manifest
from congvan.actions.signing.rewrap import Rewrapped, rewrap_keys, stored_keys
from congvan.actions.signing.verification import verify_manifest_signature
from congvan.states.errors import InvalidInput
from congvan.storage.signatures import CertificateRow
from congvan.workflow import directory
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.settings import Settings

AGENCY = "000.00.00.H57"
CA_PASS = "ca passphrase kept by the issuer"
KEY_PASS = "signer passphrase on the servers"
NEW_CA_PASS = "next ca passphrase"
NEW_KEY_PASS = "next signer passphrase"
CRL_URL = "http://127.0.0.1:8000/v1/pki/crl"
SECRETS = (CA_PASS, KEY_PASS, NEW_CA_PASS, NEW_KEY_PASS, "PRIVATE KEY")


def setup_keys(runtime: Runtime) -> dict[str, CertificateRow]:
    """Our CA under its own passphrase, a signer and the agency under the key passphrase."""
    with runtime.uow() as uow:
        now = runtime.clock()
        directory.add_agency(uow, AGENCY, "Ủy ban nhân dân tỉnh Thừa Thiên Huế", "UBND", now)
        directory.ensure_user(
            uow,
            AGENCY,
            "pct",
            ["signer"],
            now,
            full_name="Nguyễn Văn Phương",
            position="Phó Chủ tịch",
        )
        ca = keystore.init_ca(
            uow, "congvan test CA", "UBND tỉnh", passphrase=CA_PASS, now=now, store=runtime.trust
        )
        signer = keystore.issue_signer(
            uow,
            AGENCY,
            "pct",
            passphrase=KEY_PASS,
            ca_passphrase=CA_PASS,
            crl_url=CRL_URL,
            now=now,
        )
        agency = keystore.issue_agency(
            uow, AGENCY, passphrase=KEY_PASS, ca_passphrase=CA_PASS, crl_url=CRL_URL, now=now
        )
        uow.commit()
    return {"ca": ca, "signer": signer, "agency": agency}


def stored(runtime: Runtime) -> dict[str, str]:
    """Every stored key PEM by certificate fingerprint."""
    with runtime.uow(readonly=True) as uow:
        return {r.fingerprint: r.key_pem for r in stored_keys(uow)}


def weaken(runtime: Runtime, fingerprint: str, passphrase: str) -> bytes:
    """Store a key as cryptography's BestAvailableEncryption writes it (2,048 iterations)."""
    with runtime.uow() as uow:
        row = uow.signatures.certificate(fingerprint)
        assert row is not None
        key = pki.load_private_key(row.key_pem.encode(), passphrase)
        old = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode()),
        )
        uow.signatures.set_key_pem(fingerprint, old.decode())
        uow.commit()
    return old


def rewrap(runtime: Runtime, **kwargs: Any) -> Rewrapped:
    with runtime.uow() as uow:
        done = rewrap_keys(uow, **{"passphrase": KEY_PASS, "ca_passphrase": CA_PASS, **kwargs})
        uow.commit()
    return done


def test_keys_in_the_old_format_are_read_and_rewrapped_at_the_full_cost(
    runtime: Runtime, full_kdf_cost: int
) -> None:
    # Given a key store whose agency and CA keys were written by an older congvan
    keys = setup_keys(runtime)
    weak_agency = weaken(runtime, keys["agency"].fingerprint, KEY_PASS)
    weaken(runtime, keys["ca"].fingerprint, CA_PASS)
    old = keywrap.protection(weak_agency)
    assert ("pbkdf2", "sha256", 2048) == (old.kdf, old.hmac, old.iterations)
    assert not old.meets_guidance and not old.current
    pki.load_private_key(weak_agency, KEY_PASS)  # still readable

    # When the keys are rewrapped
    done = rewrap(runtime)

    # Then the two weak ones are re-encrypted at the full cost, the signer's is left alone
    assert (1, 1, 1) == (done.ca, done.keys, done.unchanged)
    after = stored(runtime)
    for fingerprint in (keys["agency"].fingerprint, keys["ca"].fingerprint):
        protection = keywrap.protection(after[fingerprint].encode())
        assert protection.current and protection.meets_guidance
        assert full_kdf_cost == protection.iterations
    assert keys["signer"].key_pem == after[keys["signer"].fingerprint]
    same = pki.load_private_key(after[keys["agency"].fingerprint].encode(), KEY_PASS)
    original = pki.load_private_key(weak_agency, KEY_PASS)
    assert original.private_numbers() == same.private_numbers()  # type: ignore[union-attr]


def test_keys_at_the_current_cost_are_rewrapped_only_when_forced(runtime: Runtime) -> None:
    keys = setup_keys(runtime)
    assert (0, 0, 3) == astuple(rewrap(runtime))
    assert all(keys[k].key_pem in stored(runtime).values() for k in keys)
    assert (1, 2, 0) == astuple(rewrap(runtime, force=True))
    assert not any(keys[k].key_pem in stored(runtime).values() for k in keys)


@pytest.mark.parametrize("wrong", ["key", "ca"])
def test_a_rewrap_with_nothing_to_redo_still_refuses_a_passphrase_that_opens_no_key(
    runtime: Runtime, wrong: str
) -> None:
    # Given the keys, each already at today's cost
    setup_keys(runtime)
    before = stored(runtime)

    # When a rewrap with nothing to redo is given a wrong passphrase (the keys' or the CA's)
    passes = {"passphrase": KEY_PASS, "ca_passphrase": CA_PASS}
    passes["ca_passphrase" if wrong == "ca" else "passphrase"] = "a passphrase of nothing here"
    with runtime.uow() as uow, pytest.raises(keywrap.KeyUndecryptable) as caught:
        rewrap_keys(uow, **passes)

    # Then it is refused, naming the setting: not "left as they were", as if it were right
    setting = "CONGVAN_CA_KEY_PASSPHRASE" if wrong == "ca" else "CONGVAN_KEY_PASSPHRASE"
    assert setting in caught.value.message
    assert before == stored(runtime)


def test_rewrap_under_new_passphrases_signs_with_the_new_and_not_the_old(
    runtime: Runtime,
) -> None:
    # Given the keys, under the CA passphrase and the key passphrase
    keys = setup_keys(runtime)

    # When they are rewrapped under new passphrases (all, though already at today's cost)
    done = rewrap(runtime, new_passphrase=NEW_KEY_PASS, new_ca_passphrase=NEW_CA_PASS)

    # Then each key opens with its new passphrase only
    assert (1, 2, 0) == (done.ca, done.keys, done.unchanged)
    after = stored(runtime)
    signer_pem = after[keys["signer"].fingerprint].encode()
    with pytest.raises(keywrap.KeyUndecryptable):
        pki.load_private_key(signer_pem, KEY_PASS)
    key = pki.load_private_key(signer_pem, NEW_KEY_PASS)
    with pytest.raises(keywrap.KeyUndecryptable):
        pki.load_private_key(after[keys["ca"].fingerprint].encode(), CA_PASS)

    # And the signer's key still signs a manifest that verifies
    with runtime.uow(readonly=True) as uow:
        trust = keystore.trust_material(uow, runtime.trust)
    cert = pki.Issued(keys["signer"].cert_pem.encode(), signer_pem).certificate
    now = runtime.clock()
    cms = sign_manifest(b"{}", key=key, cert=cert, chain=trust.roots, signing_time=now)
    verify_manifest_signature(b"{}", cms, trust_roots=trust.roots, crls=trust.crls, at=now)

    # And the CA issues and publishes with the new CA passphrase only
    with runtime.uow() as uow:
        with pytest.raises(keywrap.KeyUndecryptable, match="CONGVAN_CA_KEY_PASSPHRASE"):
            keystore.publish_crl(uow, passphrase=CA_PASS, now=now)
        keystore.publish_crl(uow, passphrase=NEW_CA_PASS, now=now + timedelta(seconds=1))


def test_a_wrong_passphrase_for_any_key_changes_nothing(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the keys, one of which is under another passphrase than the rest
    keys = setup_keys(runtime)
    weaken(runtime, keys["agency"].fingerprint, KEY_PASS)
    with runtime.uow() as uow:
        held = uow.signatures.certificate(keys["signer"].fingerprint)
        assert held is not None
        other = keywrap.wrap(
            pki.load_private_key(held.key_pem.encode(), KEY_PASS), b"someone else's"
        )
        uow.signatures.set_key_pem(keys["signer"].fingerprint, other.decode())
        uow.commit()
    before = stored(runtime)

    # When a rewrap to new passphrases meets it
    caplog.set_level(logging.DEBUG)
    with runtime.uow() as uow, pytest.raises(keywrap.KeyUndecryptable) as caught:
        rewrap_keys(
            uow,
            passphrase=KEY_PASS,
            ca_passphrase=CA_PASS,
            new_passphrase=NEW_KEY_PASS,
            new_ca_passphrase=NEW_CA_PASS,
        )
        uow.commit()

    # Then it names the key and the setting, and every key is as it was
    assert keys["signer"].fingerprint[:16] == caught.value.details["fingerprint"]
    assert "CONGVAN_KEY_PASSPHRASE" in caught.value.message
    assert before == stored(runtime)
    shown = str(caught.value.to_dict()) + caplog.text
    assert not [s for s in SECRETS if s in shown]


def test_rewrap_logs_counts_and_no_secret(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    keys = setup_keys(runtime)
    weaken(runtime, keys["signer"].fingerprint, KEY_PASS)
    caplog.set_level(logging.DEBUG)

    rewrap(runtime, new_passphrase=NEW_KEY_PASS, new_ca_passphrase=NEW_CA_PASS)

    (record,) = [r for r in caplog.records if getattr(r, "action", "") == "keys.rewrap"]
    assert (1, 2, 0) == (record.ca, record.keys, record.unchanged)  # type: ignore[attr-defined]
    logged = caplog.text + " ".join(str(vars(r)) for r in caplog.records)
    assert not [s for s in SECRETS if s in logged]
    assert not [pem for pem in stored(runtime).values() if pem[40:80] in logged]


def test_the_ca_key_has_its_own_passphrase(runtime: Runtime) -> None:
    # Given our CA under its own passphrase and a signer
    keys = setup_keys(runtime)

    # When a certificate is issued with the signers' passphrase alone
    with runtime.uow() as uow, pytest.raises(keywrap.KeyUndecryptable) as caught:
        keystore.issue_agency(
            uow, AGENCY, passphrase=KEY_PASS, crl_url=CRL_URL, now=runtime.clock()
        )

    # Then the refusal names the CA passphrase setting, and quotes no passphrase
    assert "CONGVAN_CA_KEY_PASSPHRASE" in caught.value.message
    assert not [s for s in SECRETS if s in str(caught.value.to_dict())]

    # And the keys issued with both open with their own passphrase only
    pki.load_private_key(keys["agency"].key_pem.encode(), KEY_PASS)
    pki.load_private_key(keys["ca"].key_pem.encode(), CA_PASS)
    with pytest.raises(keywrap.KeyUndecryptable):
        pki.load_private_key(keys["agency"].key_pem.encode(), CA_PASS)


@pytest.mark.parametrize("kind", ["signer", "agency"])
def test_a_new_key_is_never_locked_under_another_passphrase_than_the_kept_ones(
    runtime: Runtime, kind: str
) -> None:
    # Given keys kept under the key passphrase (the CA under its own), one of them revoked
    keys = setup_keys(runtime)
    with runtime.uow() as uow:
        uow.signatures.revoke(keys["agency"].fingerprint, runtime.clock(), "superseded")
        uow.commit()
    before = stored(runtime)

    # When a key is issued with the CA's right passphrase but a mistyped key passphrase
    with runtime.uow() as uow, pytest.raises(InvalidInput) as caught:
        issue = keystore.issue_signer if kind == "signer" else keystore.issue_agency
        users = {"username": "pct"} if kind == "signer" else {}
        issue(
            uow, AGENCY, **users, passphrase="mistyped", ca_passphrase=CA_PASS,
            crl_url=CRL_URL, now=runtime.clock() + timedelta(seconds=1),
        )  # fmt: skip

    # Then it is refused naming the setting, quoting no passphrase, and nothing is stored
    assert caught.value.code == "invalid_input"
    assert "CONGVAN_KEY_PASSPHRASE does not unlock the keys already stored" in caught.value.message
    assert not [s for s in (*SECRETS, "mistyped") if s in str(caught.value.to_dict())]
    assert stored(runtime) == before


def test_the_ca_passphrase_setting_falls_back_to_the_key_passphrase() -> None:
    both = Settings(key_passphrase=KEY_PASS, ca_key_passphrase=CA_PASS)
    assert (KEY_PASS, CA_PASS) == (both.passphrase(), both.ca_passphrase())
    assert KEY_PASS == Settings(key_passphrase=KEY_PASS).ca_passphrase()
    with pytest.raises(Exception, match="CONGVAN_CA_KEY_PASSPHRASE"):
        Settings(key_passphrase=None, ca_key_passphrase=None).ca_passphrase()
    assert CA_PASS not in repr(both)


@pytest.mark.parametrize("short", ["x", "12345678901", "mật khẩu ô"])
def test_a_key_is_never_stored_under_a_short_passphrase(runtime: Runtime, short: str) -> None:
    # Given a CA made under a short passphrase: refused, nothing kept, the passphrase unsaid
    with runtime.uow() as uow, pytest.raises(InvalidInput) as caught:
        keystore.init_ca(
            uow, "CA", "UBND tỉnh", passphrase=short, now=runtime.clock(), store=runtime.trust
        )
    assert caught.value.details["field"] == "passphrase"
    assert "12 characters" in caught.value.message and short not in caught.value.message
    with runtime.uow(readonly=True) as uow:
        assert uow.signatures.roots() == []
    # A key kept under a short one before still opens
    key = pki.load_private_key(
        pki.create_ca(
            "CA", "UBND", passphrase=KEY_PASS, valid_from=runtime.clock(), valid_days=9
        ).key_pem,
        KEY_PASS,
    )
    assert pki.load_private_key(keywrap.wrap(key, short.encode()), short)
