"""The directory of peers: entries, their inbox URLs and certificates, the directory file."""

# Asserts read `expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from congvan.actions.exchange.envelope import verify_body
from congvan.actions.signing import issuers, keystore, pki
from congvan.actions.signing.certfiles import import_certificates
from congvan.actions.signing.cms import sign_manifest
from congvan.states.errors import (
    AlreadyExists,
    ChainUntrusted,
    InvalidInput,
    NotFound,
    UnknownPeer,
)
from congvan.storage.peers import Peer
from congvan.storage.signatures import CertificateRow
from congvan.workflow import directory, peers
from congvan.workflow.bootstrap import Runtime
from tests.conftest import Boot
from tests.databases import Databases
from tests.factories import peer_certificate

PEER = "000.00.00.H58"  # Ủy ban nhân dân tỉnh Quảng Trị, served by another instance
OTHER = "000.00.00.H59"
NAME = "Ủy ban nhân dân tỉnh Quảng Trị"
INBOX = "https://congvan.quangtri.gov.vn/v1/inbox/000.00.00.H58"
PASS = "correct horse battery staple"
CRL_URL = "http://127.0.0.1:8000/v1/pki/crl"


@dataclass(frozen=True)
class Elsewhere:
    """Certificates another instance's CA made: its agency's, another agency's, a person's."""

    agency: bytes
    second_agency: bytes
    other_agency: bytes
    person: bytes
    root: x509.Certificate  # their CA's, pinned here (a peer's certificates chain to it)
    ca: pki.Issued


@pytest.fixture(scope="module")
def elsewhere() -> Elsewhere:
    start = datetime(2025, 12, 1, tzinfo=UTC)
    ca = pki.create_ca(
        "CA of Quảng Trị", NAME, passphrase=PASS, valid_from=start, valid_days=3650, key_type="ec"
    )
    terms: Any = {
        "passphrase": PASS,
        "valid_from": start,
        "valid_days": 730,
        "crl_url": CRL_URL,
        "key_type": "ec",
    }

    def agency(agency_id: str) -> bytes:
        return pki.issue_agency_certificate(
            ca, PASS, agency_id=agency_id, agency_name=NAME, **terms
        ).cert_pem

    person = pki.issue_signer_certificate(
        ca,
        PASS,
        full_name="Lê Văn Tám",
        position="Chủ tịch",
        agency_id=PEER,
        agency_name=NAME,
        user_id=f"ct@{PEER}",
        **terms,
    ).cert_pem
    root = x509.load_pem_x509_certificate(ca.cert_pem)
    return Elsewhere(agency(PEER), agency(PEER), agency(OTHER), person, root, ca)


@pytest.fixture(autouse=True)
def pinned(runtime: Runtime, elsewhere: Elsewhere) -> None:
    """Their root is pinned here, as `congvan keys trust` pins it before `peers add`."""
    runtime.trust.pin(elsewhere.root)


def add(runtime: Runtime, agency_id: str = PEER, **overrides: Any) -> peers.PeerAdded:
    arguments: dict[str, Any] = {
        "name": NAME,
        "abbreviation": "UBND",
        "inbox_url": INBOX,
        "trust": runtime.trust,
        "timeout": 30,
        "concurrency": 4,
        "now": runtime.clock(),
        **overrides,
    }
    if "certificates" not in arguments:  # a peer is verified by one: another CA's, pinned here
        arguments["certificates"] = peer_certificate(runtime, agency_id, NAME)
    with runtime.uow() as uow:
        added = peers.add_peer(uow, agency_id, **arguments)
        uow.commit()
    return added


def listed(runtime: Runtime) -> list[Peer]:
    with runtime.uow() as uow:
        return peers.list_peers(uow)


def agency_certificates(runtime: Runtime, agency_id: str) -> list[CertificateRow]:
    with runtime.uow() as uow:
        return [r for r in uow.signatures.certificates(agency_id) if r.kind == "agency"]


def test_a_peer_is_added_listed_found_and_removed(runtime: Runtime, elsewhere: Elsewhere) -> None:
    # Given an agency not in the directory yet
    # When its peer entry is added with its organisational certificate
    added = add(runtime, certificates=elsewhere.agency)

    # Then the agency, its certificate (no key) and the entry are kept
    assert added.created and added.agency_created and 1 == len(added.certificates)
    expected = Peer(PEER, INBOX, "http", 30, 4, runtime.clock(), runtime.clock())
    assert [expected] == listed(runtime)
    with runtime.uow() as uow:
        assert expected == peers.peer_for(uow, PEER)
        agency = uow.agencies.agency(PEER)
        assert agency is not None and NAME == agency.name
    [cert] = agency_certificates(runtime, PEER)
    assert (added.certificates[0], "") == (cert.fingerprint, cert.key_pem)

    # When it is removed
    with runtime.uow() as uow:
        peers.remove_peer(uow, PEER)
        uow.commit()

    # Then deliveries have nowhere to go, but the agency and its certificate stay
    assert [] == listed(runtime)
    with runtime.uow() as uow:
        with pytest.raises(UnknownPeer) as caught:
            peers.peer_for(uow, PEER)
        assert uow.agencies.agency(PEER) is not None
        with pytest.raises(NotFound):
            peers.remove_peer(uow, PEER)
    assert ("unknown_peer", 422) == (caught.value.code, caught.value.http_status)
    assert PEER in caught.value.message
    assert 1 == len(agency_certificates(runtime, PEER))


def test_adding_again_updates_the_entry_and_keeps_its_certificates(
    runtime: Runtime, elsewhere: Elsewhere
) -> None:
    # Given a peer entry
    first = add(runtime, certificates=elsewhere.agency)

    # When it is added again later with a new URL, limits and one more certificate
    runtime.clock.advance(hours=1)  # type: ignore[attr-defined]
    url = "https://inbox.quangtri.gov.vn:8443/congvan/v1/inbox/000.00.00.H58?via=lgsp"
    again = add(
        runtime,
        inbox_url=url,
        timeout=90,
        concurrency=2,
        certificates=elsewhere.agency + elsewhere.second_agency,
    )

    # Then the one entry is updated, added when it was, and the new certificate joins
    assert not again.created and not again.agency_created
    assert 1 == len(again.certificates)
    expected = Peer(PEER, url, "http", 90, 2, first.peer.created_at, runtime.clock())
    assert [expected] == listed(runtime)
    assert 2 == len(agency_certificates(runtime, PEER))


def test_peers_are_listed_by_agency_id_whole_or_by_page(runtime: Runtime) -> None:
    for agency_id in (OTHER, PEER, "000.00.00.G01"):
        add(runtime, agency_id, inbox_url=f"https://{agency_id}.example.vn/inbox")

    with runtime.uow() as uow:
        whole = [p.agency_id for p in peers.list_peers(uow)]
        first = [p.agency_id for p in peers.list_peers(uow, limit=2)]
        rest = [p.agency_id for p in peers.list_peers(uow, after=first[-1], limit=2)]

    assert ["000.00.00.G01", PEER, OTHER] == whole
    assert whole == first + rest


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://congvan.quangtri.gov.vn/inbox", "http or https"),
        ("https://user:secret@congvan.quangtri.gov.vn/inbox", "user name or password"),
        ("https://congvan.quangtri.gov.vn/inbox#top", "fragment"),
        ("http://congvan.quangtri.gov.vn/inbox", "https"),
        ("https://congvan.quangtri.gov.vn/" + "x" * 2000, "longer than 2000"),
        ("https:///inbox", "host"),
        ("https://congvan.quangtri.gov.vn:99999/inbox", "not a valid URL"),
        ("https://congvan.quangtri.gov.vn/in box", "spaces"),
        ("https://congvan.quangtri.gov.vn:0/inbox", "port from 1 to 65535"),
        ("https://*.quangtri.gov.vn/inbox", "a DNS name"),
        ("https://-/inbox", "a DNS name"),
        ("https://_/inbox", "a DNS name"),
        ("https://congvan..quangtri.gov.vn/inbox", "a DNS name"),
        ("https://-congvan.quangtri.gov.vn/inbox", "a DNS name"),
        ("https://" + "a" * 64 + ".gov.vn/inbox", "a DNS name"),
        # a server's bare address: every delivery would go to / (404)
        ("https://congvan.quangtri.gov.vn", "names no path"),
        ("http://127.0.0.1:18102/", "/v1/inbox"),
    ],
)
def test_an_inbox_url_deliveries_may_not_go_to_is_refused(
    runtime: Runtime, url: str, says: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        add(runtime, inbox_url=url)

    assert "inbox_url" == caught.value.details["field"]
    assert says in caught.value.message
    assert [] == listed(runtime)
    with runtime.uow() as uow:
        assert uow.agencies.agency(PEER) is None


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8001/v1/inbox/x", "http://localhost/inbox", "http://[::1]:9000/inbox"],
)
def test_plain_http_is_taken_to_a_loopback_host(runtime: Runtime, url: str) -> None:
    assert url == add(runtime, inbox_url=url).peer.inbox_url


def test_plain_http_elsewhere_is_taken_when_the_operator_allows_it(runtime: Runtime) -> None:
    url = "http://10.0.0.8/v1/inbox/000.00.00.H58"

    assert url == add(runtime, inbox_url=url, allow_http=True).peer.inbox_url


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"timeout": 0}, "timeout_seconds"),
        ({"timeout": 601}, "timeout_seconds"),
        ({"concurrency": 0}, "max_concurrency"),
        ({"concurrency": True}, "max_concurrency"),
        ({"transport": "smtp"}, "transport"),
    ],
)
def test_limits_out_of_range_are_refused(
    runtime: Runtime, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        add(runtime, **overrides)

    assert field == caught.value.details["field"]


def test_a_persons_certificate_is_not_a_peers(runtime: Runtime, elsewhere: Elsewhere) -> None:
    with pytest.raises(InvalidInput) as caught:
        add(runtime, certificates=elsewhere.person)

    assert "certificates" == caught.value.details["field"]
    assert "a person's signing certificate" in caught.value.message
    assert [] == listed(runtime) and [] == agency_certificates(runtime, PEER)


def test_an_agency_certificate_naming_another_agency_is_refused(
    runtime: Runtime, elsewhere: Elsewhere
) -> None:
    with pytest.raises(InvalidInput) as caught:
        add(runtime, certificates=elsewhere.agency + elsewhere.other_agency)

    assert "certificates" == caught.value.details["field"]
    assert OTHER == caught.value.details["organizational_unit"]
    assert [] == listed(runtime) and [] == agency_certificates(runtime, PEER)


def test_a_certificate_held_for_someone_else_is_refused(
    runtime: Runtime, elsewhere: Elsewhere
) -> None:
    with runtime.uow() as uow:  # as a signer's, for no agency (an earlier version's row)
        cert = x509.load_pem_x509_certificate(elsewhere.agency)
        keystore._store(uow, "signer", cert, runtime.clock())
        uow.commit()

    with pytest.raises(AlreadyExists):
        add(runtime, certificates=elsewhere.agency)


@pytest.mark.parametrize("taking", ["a user", "a signer's key", "its organisational key"])
def test_an_agency_served_elsewhere_is_never_taken_over_here(runtime: Runtime, taking: str) -> None:
    # Given our CA, and a peer entry for an agency another instance serves
    with runtime.uow() as uow:
        keystore.init_ca(uow, "CA", "UBND", passphrase=PASS, now=runtime.clock(),
                         store=runtime.trust)  # fmt: skip
        uow.commit()
    add(runtime)

    # When a user or a key of its own is made for it here
    with runtime.uow() as uow, pytest.raises(InvalidInput) as caught:
        if taking == "a user":
            directory.ensure_user(uow, PEER, "vanthu", ["clerk"], runtime.clock())
        elif taking == "a signer's key":
            keystore.issue_signer(uow, PEER, "ky", passphrase=PASS, crl_url=CRL_URL,
                                  now=runtime.clock())  # fmt: skip
        else:
            keystore.issue_agency(uow, PEER, passphrase=PASS, crl_url=CRL_URL,
                                  now=runtime.clock())  # fmt: skip

    # Then it is refused, saying who serves it and how to serve it here instead
    assert "served by another instance" in caught.value.message
    assert INBOX in caught.value.message and "congvan peers remove" in caught.value.message
    with runtime.uow(readonly=True) as uow:
        assert not uow.agencies.has_users(PEER)
        assert uow.signatures.agency_certificate(PEER, runtime.clock()) is None


def test_an_agency_of_ours_gets_no_peer_entry(runtime: Runtime) -> None:
    with runtime.uow() as uow:
        directory.add_agency(uow, PEER, NAME, "UBND", runtime.clock())
        directory.ensure_user(uow, PEER, "vanthu", ["clerk"], runtime.clock())
        uow.commit()

    with pytest.raises(InvalidInput) as caught:
        add(runtime)

    assert "served by this instance" in caught.value.message


@pytest.mark.parametrize("served", ["a user", "its key"])
def test_an_agency_of_ours_takes_no_certificate_made_elsewhere(
    runtime: Runtime, elsewhere: Elsewhere, served: str
) -> None:
    # Given an agency served here (a user, or its organisational key)
    now = runtime.clock()
    with runtime.uow() as uow:
        directory.add_agency(uow, PEER, NAME, "UBND", now)
        if served == "a user":
            directory.ensure_user(uow, PEER, "vanthu", ["clerk"], now)
        else:
            keystore.init_ca(uow, "CA", "UBND", passphrase=PASS, now=now, store=runtime.trust)
            keystore.issue_agency(uow, PEER, passphrase=PASS, crl_url=CRL_URL, now=now)
        uow.commit()

    # When a certificate naming it, which another pinned CA made, is imported for it
    with runtime.uow() as uow, pytest.raises(InvalidInput) as caught:
        keystore.import_certificate(
            uow, elsewhere.agency, kind="agency", now=now, agency_id=PEER, store=runtime.trust
        )

    # Then it is refused, as a peer entry for it is: its messages are its own key's alone
    assert "served by this instance" in caught.value.message
    assert caught.value.details["field"] == "agency"
    with runtime.uow(readonly=True) as uow:
        kept = [c for c in uow.signatures.certificates(PEER) if c.kind == "agency"]
    assert all(c.key_pem for c in kept)


def test_a_certificate_stored_without_its_key_speaks_for_no_agency_of_ours(
    runtime: Runtime, elsewhere: Elsewhere
) -> None:
    # Given an agency of ours, its key held here, and a certificate naming it that another
    # pinned CA made, stored beside it without a key (by an older version, by hand)
    now = runtime.clock()
    with runtime.uow() as uow:
        directory.add_agency(uow, PEER, NAME, "UBND", now)
        keystore.init_ca(uow, "CA", "UBND", passphrase=PASS, now=now, store=runtime.trust)
        own = keystore.issue_agency(uow, PEER, passphrase=PASS, crl_url=CRL_URL, now=now)
        [stored] = [
            keystore._store(uow, "agency", c, now, agency_id=PEER)
            for c in import_certificates(elsewhere.agency)
        ]
        uow.commit()

    # Then its messages are taken under its own certificate alone
    with runtime.uow(readonly=True) as uow:
        listed = uow.signatures.listed_fingerprints(PEER)
    assert listed == {own.fingerprint} and stored.fingerprint not in listed
    # while a peer's, held without keys, are all taken
    add(runtime, OTHER, certificates=elsewhere.other_agency)
    with runtime.uow(readonly=True) as uow:
        assert len(uow.signatures.listed_fingerprints(OTHER)) == 1


def test_peer_for_an_id_no_agency_can_have_is_unknown(runtime: Runtime) -> None:
    with runtime.uow() as uow, pytest.raises(UnknownPeer):
        peers.peer_for(uow, "not\x00an id")


# -- the directory file ------------------------------------------------------------------


def directory_file(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"format": peers.FORMAT, "agencies": list(entries)}).encode()


def entry(agency_id: str, certificate: bytes, **overrides: Any) -> dict[str, Any]:
    return {
        "agency_id": agency_id,
        "name": NAME,
        "abbreviation": "UBND",
        "inbox_url": f"https://congvan.example.vn/v1/inbox/{agency_id}",
        "certificates": [certificate.decode()],
        **overrides,
    }


def test_a_directory_with_one_bad_entry_stores_nothing(
    runtime: Runtime, elsewhere: Elsewhere
) -> None:
    # Given a file whose second entry has an inbox no delivery may go to
    data = directory_file(
        entry(PEER, elsewhere.agency),
        entry(OTHER, elsewhere.other_agency, inbox_url="ftp://congvan.example.vn/inbox"),
    )

    # When it is imported
    with runtime.uow() as uow, pytest.raises(InvalidInput) as caught:
        peers.import_directory(uow, data, runtime.clock(), trust=runtime.trust)
        uow.commit()

    # Then the error names the entry and its field, and nothing was kept
    assert caught.value.message.startswith("agencies[1].inbox_url: ")
    assert (1, "inbox_url") == (caught.value.details["index"], caught.value.details["field"])
    assert [] == listed(runtime)
    with runtime.uow() as uow:
        assert [] == uow.agencies.agencies()
        assert [] == uow.signatures.certificates()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"certificates": []}, "agencies[0].certificates: "),
        ({"timeout_seconds": "30"}, "agencies[0].timeout_seconds: "),
        ({"name": ""}, "agencies[0].name: "),
        ({"agency_id": "h58"}, "agencies[0].agency_id: "),
        ({"agency_id": ["000.00.00.H58"]}, "agencies[0].agency_id: "),
        ({"agency_id": {"id": 1}}, "agencies[0].agency_id: "),
        ({"name": "UBND\x1b[2J tỉnh"}, "agencies[0].name: "),
        ({"name": "UBND\x00"}, "agencies[0].name: "),
        ({"abbreviation": "U\nB"}, "agencies[0].abbreviation: "),
        ({"name": "Ủy ban " * 60}, "agencies[0].name: "),
        ({"inbox": "https://x.example.vn/"}, "agencies[0].inbox: not a field"),
        ({"certificates": ["-----BEGIN PRIVATE KEY-----"]}, "never keys"),
    ],
)
def test_a_directory_entry_error_names_its_index_and_field(
    runtime: Runtime, elsewhere: Elsewhere, change: dict[str, Any], message: str
) -> None:
    data = directory_file({**entry(PEER, elsewhere.agency), **change})

    with runtime.uow() as uow, pytest.raises(InvalidInput) as caught:
        peers.import_directory(uow, data, runtime.clock(), trust=runtime.trust)

    assert message in caught.value.message
    assert 0 == caught.value.details["index"]


@pytest.mark.parametrize(
    "data",
    [
        b"{",
        b'{"format": "other/1", "agencies": []}',
        b'{"format": "congvan-directory/1"}',
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested-100000-deep"),
    ],
)
def test_a_file_that_is_not_a_directory_is_refused(runtime: Runtime, data: bytes) -> None:
    with runtime.uow() as uow, pytest.raises(InvalidInput):
        peers.import_directory(uow, data, runtime.clock(), trust=runtime.trust)


def test_a_directory_file_is_read_as_editors_write_it_and_refused_in_plain_words(
    runtime: Runtime, elsewhere: Elsewhere
) -> None:
    data = directory_file(entry(PEER, elsewhere.agency))
    # A byte order mark before the text (Windows editors save UTF-8 so): read as the text
    with runtime.uow() as uow:
        [added] = peers.import_directory(
            uow, b"\xef\xbb\xbf" + data, runtime.clock(), trust=runtime.trust
        )
        assert added.peer.agency_id == PEER
    for bad, code, said in (
        # a key given twice: which one counts is not guessed
        (b'{"format": "congvan-directory/1", "format": "x", "agencies": []}',
         "repeated_field", "'format' appears more than once"),
        # Python's own hints are no message for an operator
        (data.replace(b'"agencies"', b'"n": ' + b"9" * 5000 + b', "agencies"', 1),
         "invalid_input", "A number in the directory file is too long to read."),
        (b'{"format": ', "invalid_input", "is not JSON: Expecting value (line 1, column 12)"),
    ):  # fmt: skip
        with runtime.uow() as uow, pytest.raises(InvalidInput) as caught:
            peers.import_directory(uow, bad, runtime.clock(), trust=runtime.trust)
        assert (caught.value.code, said in caught.value.message) == (code, True), caught.value
    # and a value the file wrote is told as it wrote it: true, not Python's True
    with runtime.uow() as uow, pytest.raises(InvalidInput) as caught:
        flagged = directory_file({**entry(PEER, elsewhere.agency), "timeout_seconds": True})
        peers.import_directory(uow, flagged, runtime.clock(), trust=runtime.trust)
    assert caught.value.details["value"] == "true"


def test_an_agency_listed_twice_is_refused(runtime: Runtime, elsewhere: Elsewhere) -> None:
    data = directory_file(entry(PEER, elsewhere.agency), entry(PEER, elsewhere.second_agency))

    with runtime.uow() as uow, pytest.raises(InvalidInput) as caught:
        peers.import_directory(uow, data, runtime.clock(), trust=runtime.trust)

    assert caught.value.message.startswith("agencies[1].agency_id: ")


def test_an_exported_directory_imports_into_another_database(
    runtime: Runtime, boot: Boot, databases: Databases, db_kind: str
) -> None:
    # Given our agency with its organisational key, and an instance elsewhere
    here = "000.00.00.H57"
    with runtime.uow() as uow:
        now = runtime.clock()
        directory.add_agency(uow, here, "Ủy ban nhân dân tỉnh Thừa Thiên Huế", "UBND", now)
        keystore.init_ca(uow, "CA", "UBND", passphrase=PASS, now=now, store=runtime.trust)
        issued = keystore.issue_agency(uow, here, passphrase=PASS, crl_url=CRL_URL, now=now)
        uow.commit()
    there = boot(databases.new(db_kind).url)
    with runtime.uow(readonly=True) as uow:
        [our_root] = [r.cert_pem.encode() for r in uow.signatures.roots()]
    with there.uow() as uow:  # our root pinned there first
        keystore.trust(uow, there.trust, our_root, now=now)
        uow.commit()

    # When our directory is exported and imported there
    with runtime.uow(readonly=True) as uow:
        data = peers.export_directory(
            uow, [], peers.default_inbox_url("https://congvan.thuathienhue.gov.vn"), now=now
        )
    with there.uow() as uow:
        added = peers.import_directory(uow, data, there.clock(), trust=there.trust)
        uow.commit()

    # Then the file carries no key, and there our agency is a peer with its certificate
    assert b"PRIVATE KEY" not in data
    url = "https://congvan.thuathienhue.gov.vn/v1/inbox"
    assert [Peer(here, url, "http", 30, 4, now, now)] == listed(there)
    assert [issued.fingerprint] == [c for a in added for c in a.certificates]
    [cert] = agency_certificates(there, here)
    assert (issued.cert_pem, "") == (cert.cert_pem, cert.key_pem)
    with there.uow() as uow:
        agency = uow.agencies.agency(here)
        assert agency is not None and "Ủy ban nhân dân tỉnh Thừa Thiên Huế" == agency.name

    # And importing it again, a day later, changes nothing, not even the entry's time;
    # importing it back here is refused
    with there.uow() as uow:
        later = there.clock() + timedelta(days=1)
        again = peers.import_directory(uow, data, later, trust=there.trust)
        uow.commit()
    assert [((), False)] == [(a.certificates, a.changed) for a in again]
    assert [Peer(here, url, "http", 30, 4, now, now)] == listed(there)
    # and one naming the agency otherwise (renamed, a new abbreviation) renames it there
    renamed = json.loads(data)
    renamed["agencies"][0].update(name="Ủy ban nhân dân thành phố Huế", abbreviation="UBNDTP")
    with there.uow() as uow:
        moved = peers.import_directory(uow, json.dumps(renamed).encode(), later, trust=there.trust)
        uow.commit()
    assert [True] == [a.changed for a in moved]
    with there.uow(readonly=True) as uow:
        agency = uow.agencies.agency(here)
        assert agency is not None
        assert (agency.name, agency.abbreviation) == ("Ủy ban nhân dân thành phố Huế", "UBNDTP")
    # a name a directory would not take from a new agency is not taken from a known one
    renamed["agencies"][0]["name"] = "Ủy ban\x00nhân dân"
    with there.uow() as uow, pytest.raises(InvalidInput):
        peers.import_directory(uow, json.dumps(renamed).encode(), later, trust=there.trust)
    with runtime.uow() as uow, pytest.raises(InvalidInput) as caught:
        peers.import_directory(uow, data, now, trust=runtime.trust)
    assert "served by this instance" in caught.value.message


def test_exporting_an_agency_without_a_key_here_is_refused(runtime: Runtime) -> None:
    with runtime.uow() as uow:
        directory.add_agency(uow, PEER, NAME, "UBND", runtime.clock())
        with pytest.raises(InvalidInput):
            peers.export_directory(
                uow, [PEER], peers.default_inbox_url("https://x.example.vn"), now=runtime.clock()
            )
        with pytest.raises(NotFound):
            peers.export_directory(
                uow, [], peers.default_inbox_url("https://x.example.vn"), now=runtime.clock()
            )


def test_an_agency_certificate_imported_by_hand_is_held_to_a_peers_rules(
    runtime: Runtime, elsewhere: Elsewhere
) -> None:
    # Given PEER in the directory
    with runtime.uow() as uow:
        directory.add_agency(uow, PEER, NAME, "UBND", runtime.clock())
        uow.commit()

    store = runtime.trust

    def imported(data: bytes, agency_id: str | None) -> None:
        with runtime.uow() as uow:
            keystore.import_certificate(
                uow, data, kind="agency", agency_id=agency_id, now=runtime.clock(), store=store
            )
            uow.commit()

    # Then what its messages would be taken under is refused as `peers add` refuses it:
    # for no agency or one not in the directory, naming another agency, a person's
    for data, agency_id, error in (
        (elsewhere.agency, None, InvalidInput),
        (elsewhere.other_agency, OTHER, NotFound),
        (elsewhere.other_agency, PEER, InvalidInput),
        (elsewhere.person, PEER, InvalidInput),
    ):
        with pytest.raises(error):
            imported(data, agency_id)
    assert [] == agency_certificates(runtime, PEER)

    # And its own organisational certificate is kept
    imported(elsewhere.agency, PEER)
    assert 1 == len(agency_certificates(runtime, PEER))


def _issuing_ca(root: pki.Issued) -> pki.Issued:
    """A CA whose certificate ``root`` signed: an intermediate between it and agencies."""
    start = datetime(2025, 12, 1, tzinfo=UTC)
    made = pki.create_ca(
        "Issuing CA of Quảng Trị", NAME, passphrase=PASS, valid_from=start, valid_days=3650
    )
    own = x509.load_pem_x509_certificate(made.cert_pem)
    root_cert = x509.load_pem_x509_certificate(root.cert_pem)
    root_key = pki.load_private_key(root.key_pem, PASS)
    builder = (
        x509.CertificateBuilder()
        .subject_name(own.subject)
        .issuer_name(root_cert.subject)
        .public_key(own.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(own.not_valid_before_utc)
        .not_valid_after(own.not_valid_after_utc)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
    )
    for extension in own.extensions:
        if not isinstance(extension.value, x509.AuthorityKeyIdentifier):
            builder = builder.add_extension(extension.value, extension.critical)
    cert = builder.sign(root_key, hashes.SHA256())
    return pki.Issued(cert.public_bytes(serialization.Encoding.PEM), made.key_pem)


def test_a_peer_certificate_chaining_to_no_pinned_root_is_refused_and_nothing_kept(
    runtime: Runtime, elsewhere: Elsewhere
) -> None:
    # Given their root not pinned here
    assert runtime.trust.unpin(keystore.fingerprint(elsewhere.root))

    # Then their agency's certificate is refused, by `peers add`, in a directory file and
    # by `keys import --kind agency`, naming the certificate and what to do
    with pytest.raises(ChainUntrusted) as added:
        add(runtime, certificates=elsewhere.agency)
    data = directory_file(entry(PEER, elsewhere.agency))
    with runtime.uow() as uow, pytest.raises(ChainUntrusted) as imported:
        peers.import_directory(uow, data, runtime.clock(), trust=runtime.trust)
    with runtime.uow() as uow:
        directory.add_agency(uow, OTHER, NAME, "UBND", runtime.clock())
        with pytest.raises(ChainUntrusted):
            keystore.import_certificate(
                uow,
                elsewhere.other_agency,
                kind="agency",
                agency_id=OTHER,
                now=runtime.clock(),
                store=runtime.trust,
            )

    assert ("chain_untrusted", "certificates") == (added.value.code, added.value.details["field"])
    assert "keys trust" in added.value.message
    theirs = keystore.fingerprint(x509.load_pem_x509_certificate(elsewhere.agency))
    assert theirs == added.value.details["sha256"]
    assert imported.value.message.startswith("agencies[0].certificates: ")
    assert [] == listed(runtime)
    with runtime.uow() as uow:
        assert [] == uow.agencies.agencies() and [] == uow.signatures.certificates()

    # And once their root is pinned, the same entry is taken
    runtime.trust.pin(elsewhere.root)
    assert 1 == len(add(runtime, certificates=elsewhere.agency).certificates)


@pytest.mark.parametrize(("path_length", "taken"), [(1, True), (0, False)])
def test_a_peer_certificate_issued_by_an_intermediate_held_here_is_taken(
    runtime: Runtime, path_length: int, taken: bool
) -> None:
    # Given their root, allowing ``path_length`` CAs under it, pinned here; a CA it signed,
    # and an agency certificate that CA issued
    start = datetime(2025, 12, 1, tzinfo=UTC)
    root = pki.create_ca(
        "CA of Quảng Trị", NAME, passphrase=PASS, valid_from=start, valid_days=3650,
        path_length=path_length,
    )  # fmt: skip
    runtime.trust.pin(x509.load_pem_x509_certificate(root.cert_pem))
    issuing = _issuing_ca(root)
    leaf = pki.issue_agency_certificate(
        issuing,
        PASS,
        agency_id=PEER,
        agency_name=NAME,
        passphrase=PASS,
        valid_from=start,
        valid_days=730,
        crl_url=CRL_URL,
    )

    # Then without the intermediate held here it chains to nothing pinned
    with pytest.raises(ChainUntrusted):
        add(runtime, certificates=leaf.cert_pem)

    # And with it held (stored, never pinned), it is taken, if the root allows a CA under
    # it (a root made with pathlen:0 anchors no path through one, as openssl judges it)
    with runtime.uow() as uow:
        keystore.import_certificate(uow, issuing.cert_pem, kind="root", now=runtime.clock())
        uow.commit()
    if taken:
        assert 1 == len(add(runtime, certificates=leaf.cert_pem).certificates)
    else:
        with pytest.raises(ChainUntrusted):
            add(runtime, certificates=leaf.cert_pem)
        return

    # And a message their agency signs is verified through the CA held here, though its
    # signature carries no certificate but its own: what the directory took, an inbox takes
    now = runtime.clock()
    with runtime.uow() as uow:
        for ca in (root, issuing):
            crl = pki.make_crl(
                ca, PASS, [], this_update=now - timedelta(hours=1),
                next_update=now + timedelta(days=7), number=1,
            )  # fmt: skip
            issuers.import_crl(uow, runtime.trust, crl, now=now)
        uow.commit()
    with runtime.uow(readonly=True) as uow:
        trust = keystore.trust_material(uow, runtime.trust, [PEER])
    body = b'{"format":"status"}'
    cms = sign_manifest(
        body,
        key=pki.load_private_key(leaf.key_pem, PASS),
        cert=x509.load_pem_x509_certificate(leaf.cert_pem),
        chain=[],
        signing_time=now - timedelta(minutes=1),
    )
    for _ in range(2):  # in full, then as a signer seen before
        assert (
            PEER == verify_body(body, cms, trust, agency_id=PEER, at=now).signer.organizational_unit
        )


def test_imported_roots_and_signers_are_held_to_their_kinds_rules(
    runtime: Runtime, elsewhere: Elsewhere
) -> None:
    with runtime.uow() as uow:
        directory.add_agency(uow, PEER, NAME, "UBND", runtime.clock())
        directory.ensure_user(uow, PEER, "ct", ["signer"], runtime.clock())
        directory.ensure_user(uow, PEER, "chutich", ["signer"], runtime.clock())
        directory.ensure_user(uow, PEER, "vanthu", ["clerk"], runtime.clock())
        uow.commit()

    def imported(data: bytes, kind: str, **named: str) -> list[CertificateRow]:
        with runtime.uow() as uow:
            rows = keystore.import_certificate(
                uow, data, kind=kind, now=runtime.clock(), store=runtime.trust, **named
            )
            uow.commit()
        return rows

    # A root is a CA's certificate, of no agency and no user
    for data, named in (
        (elsewhere.agency, {}),
        (elsewhere.ca.cert_pem, {"agency_id": PEER}),
        (elsewhere.ca.cert_pem, {"username": "chutich"}),
    ):
        with pytest.raises(InvalidInput):
            imported(data, "root", **named)
    # A signer's names an agency of the directory, and a user of it when one is named
    for data, named, error in (
        (elsewhere.person, {}, InvalidInput),
        (elsewhere.person, {"agency_id": OTHER}, NotFound),
        (elsewhere.agency, {"agency_id": PEER}, InvalidInput),
        (elsewhere.person, {"agency_id": PEER, "username": "nobody"}, NotFound),
        (elsewhere.person, {"agency_id": PEER, "username": "vanthu"}, InvalidInput),
    ):
        with pytest.raises(error):
            imported(data, "signer", **named)
    with runtime.uow() as uow:
        assert [] == uow.signatures.certificates()

    [root] = imported(elsewhere.ca.cert_pem, "root")
    assert ("root", None) == (root.kind, root.agency_id)
    # A signer's is registered to the user its UID names, when it names one of ours (ct@PEER)
    with pytest.raises(InvalidInput, match="names ct@"):
        imported(elsewhere.person, "signer", agency_id=PEER, username="chutich")
    [signer] = imported(elsewhere.person, "signer", agency_id=PEER, username="ct")
    assert ("signer", PEER, "ct") == (signer.kind, signer.agency_id, signer.username)

    # A PKCS#12 file as a token exports it, the key's certificate with its CA: the
    # certificate is kept, its chain is not; the CA alone is not a signer's
    issued = pki.issue_signer_certificate(
        elsewhere.ca,
        PASS,
        full_name="Lê Văn Tám",
        position="Chủ tịch",
        agency_id=PEER,
        agency_name=NAME,
        user_id=f"ct@{PEER}",
        passphrase=PASS,
        valid_from=datetime(2025, 12, 1, tzinfo=UTC),
        valid_days=730,
        crl_url=CRL_URL,
        key_type="ec",
    )
    p12 = pkcs12.serialize_key_and_certificates(
        b"token",
        pki.load_private_key(issued.key_pem, PASS),
        issued.certificate,
        [elsewhere.root],
        serialization.BestAvailableEncryption(b"token password"),
    )
    [kept] = imported(p12, "signer", agency_id=PEER, password="token password")
    assert keystore.fingerprint(issued.certificate) == kept.fingerprint
    # one whose key is another's is not what it says: refused, nothing kept
    others = pkcs12.serialize_key_and_certificates(
        b"token",
        ec.generate_private_key(ec.SECP256R1()),
        None,  # (cryptography pairs a key with its own certificate only; openssl does not)
        [issued.certificate, elsewhere.root],
        serialization.BestAvailableEncryption(b"token password"),
    )
    with pytest.raises(InvalidInput, match="belongs to none of its certificates"):
        imported(others, "signer", agency_id=PEER, password="token password")
    with pytest.raises(InvalidInput, match="only CA certificates"):
        imported(elsewhere.ca.cert_pem, "signer", agency_id=PEER)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:peer-password@congvan.quangtri.gov.vn/inbox",
        "ftp://congvan.quangtri.gov.vn/inbox?key=peer-password",
        "https://congvan.quangtri.gov.vn/inbox#peer-password",
    ],
)
def test_a_refused_inbox_url_is_echoed_without_what_may_be_a_secret(
    runtime: Runtime, url: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        add(runtime, inbox_url=url)

    shown = caught.value.details["value"]
    assert "peer-password" not in shown
    assert shown.startswith(url.partition(":")[0] + "://") and "congvan.quangtri.gov.vn" in shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("127.0.0.1:18102/v1/inbox", "127.0.0.1:18102/v1/inbox"),  # the scheme left out
        (
            "congvan.quangtri.gov.vn/v1/inbox?key=peer-password",
            "congvan.quangtri.gov.vn/v1/inbox?…",
        ),
        ("vanthu:peer-password@congvan.quangtri.gov.vn/inbox", "…@congvan.quangtri.gov.vn/inbox"),
    ],
)
def test_a_url_typed_without_its_scheme_is_echoed_as_typed(
    runtime: Runtime, url: str, shown: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        add(runtime, inbox_url=url)

    assert caught.value.details["value"] == shown


def test_a_peer_without_a_certificate_is_refused_as_its_signatures_could_not_be_verified(
    runtime: Runtime, elsewhere: Elsewhere
) -> None:
    # A new peer with none: its receipts and statuses could never be verified
    with pytest.raises(InvalidInput, match="no organisational certificate valid now") as caught:
        add(runtime, certificates=None)

    assert "certificates" == caught.value.details["field"]
    assert [] == listed(runtime)
    with runtime.uow() as uow:
        assert uow.agencies.agency(PEER) is None

    # One holding a certificate already has its inbox moved without giving it again
    add(runtime, certificates=elsewhere.agency)
    moved = "https://congvan2.quangtri.gov.vn/v1/inbox"
    assert moved == add(runtime, certificates=None, inbox_url=moved).peer.inbox_url


@pytest.mark.parametrize("base", ["https://x.vn/{agency}/inbox", "https://x.vn/{agency_id}}/in"])
def test_an_inbox_url_base_with_a_placeholder_misspelt_is_refused(base: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        peers.default_inbox_url(base)
    assert refused.value.details["field"] == "inbox_url_base"
    # the one placeholder it takes is replaced
    assert peers.default_inbox_url("https://x.vn/{agency_id}/in")("000.00.11.H57") == (
        "https://x.vn/000.00.11.H57/in"
    )
