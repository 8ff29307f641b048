"""The directory of peers as an operator keeps it: peers add / list / remove / import /
export, through the real command."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from congvan.actions.signing import pki
from tests.e2e.test_cli import congvan

PASS = {"CONGVAN_KEY_PASSPHRASE": "peers passphrase 1227"}
PEER = "000.00.00.H58"
OTHER = "000.00.00.H59"
NAME = "UBND tỉnh Quảng Trị"
INBOX = f"https://congvan.quangtri.gov.vn/v1/inbox/{PEER}"


def certificates(tmp_path: Path) -> dict[str, Path]:
    """Files of certificates another instance's CA made: two agencies' and a person's."""
    ca = pki.create_ca(
        "CA of Quảng Trị",
        NAME,
        passphrase="outside passphrase",
        valid_from=datetime.now(UTC) - timedelta(days=1),
        valid_days=3650,  # outlives the certificates it issues
        key_type="ec",
    )
    terms = {
        "passphrase": "outside passphrase",
        "valid_from": datetime.now(UTC) - timedelta(days=1),
        "valid_days": 365,
        "crl_url": "http://127.0.0.1:8000/v1/pki/crl",
    }
    made = {
        "agency": pki.issue_agency_certificate(
            ca, "outside passphrase", agency_id=PEER, agency_name=NAME, key_type="ec", **terms
        ),
        "other": pki.issue_agency_certificate(
            ca, "outside passphrase", agency_id=OTHER, agency_name=NAME, key_type="ec", **terms
        ),
        "person": pki.issue_signer_certificate(
            ca,
            "outside passphrase",
            full_name="Lê Văn Tám",
            position="Chủ tịch",
            agency_id=PEER,
            agency_name=NAME,
            user_id=f"ct@{PEER}",
            key_type="ec",
            **terms,
        ),
    }
    paths = {"root": tmp_path / "root.pem"}
    paths["root"].write_bytes(ca.cert_pem)
    for name, issued in made.items():
        paths[name] = tmp_path / f"{name}.pem"
        paths[name].write_bytes(issued.cert_pem)
    return paths


def add(data: Path, *options: str, agency_id: str = PEER) -> tuple[int, str, str]:
    done = congvan(
        "peers",
        "add",
        agency_id,
        "--name",
        NAME,
        "--abbreviation",
        "UBND",
        *options,
        data_dir=data,
    )
    return done.returncode, done.stdout, done.stderr


def test_an_operator_adds_lists_and_removes_a_peer(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert congvan("migrate", data_dir=data).returncode == 0
    files = certificates(tmp_path)

    # Inbox URLs no delivery may go to, and certificates that are not the agency's, are refused
    for url in (
        "ftp://congvan.quangtri.gov.vn/inbox",
        "https://user:pass@congvan.quangtri.gov.vn/inbox",
        "https://congvan.quangtri.gov.vn/inbox#top",
        "http://congvan.quangtri.gov.vn/inbox",
        "https://congvan.quangtri.gov.vn/" + "x" * 2000,
    ):
        code, _out, err = add(data, "--inbox-url", url)
        assert (2, True) == (code, "error [invalid_input]: inbox_url" in err), (url, err)
    for name in ("person", "other"):
        code, _out, err = add(data, "--inbox-url", INBOX, "--certificate", str(files[name]))
        assert (2, True) == (code, "error [invalid_input]" in err), (name, err)
    assert "no peers\n" == congvan("peers", "list", data_dir=data).stdout

    # Its organisational certificate is refused until the root that issued it is pinned
    code, _out, err = add(data, "--inbox-url", INBOX, "--certificate", str(files["agency"]))
    assert (2, True) == (code, "error [chain_untrusted]" in err and "keys trust" in err), err
    assert 0 == congvan("keys", "trust", str(files["root"]), data_dir=data).returncode

    # A peer with its organisational certificate is added and listed
    code, out, err = add(data, "--inbox-url", INBOX, "--certificate", str(files["agency"]))
    assert 0 == code, err
    assert f"added peer {PEER} (new agency): {INBOX}, 1 new certificate(s)" in out
    code, out, err = add(
        data, "--inbox-url", "http://10.1.2.3/inbox", "--allow-http", "--timeout", "60"
    )
    assert 0 == code, err
    assert f"updated peer {PEER}" in out
    table = congvan("peers", "list", data_dir=data).stdout
    assert PEER in table and "http://10.1.2.3/inbox" in table and "60s" in table
    [row] = json.loads(congvan("peers", "list", "--json", data_dir=data).stdout)
    assert (PEER, "http://10.1.2.3/inbox", 60, 4) == (
        row["agency_id"],
        row["inbox_url"],
        row["timeout_seconds"],
        row["max_concurrency"],
    )
    # and an update naming its inbox alone keeps the timeout and concurrency it was given
    code, out, err = add(data, "--inbox-url", "http://10.1.2.4/inbox", "--allow-http")
    assert 0 == code, err
    [row] = json.loads(congvan("peers", "list", "--json", data_dir=data).stdout)
    assert ("http://10.1.2.4/inbox", 60, 4) == (
        row["inbox_url"],
        row["timeout_seconds"],
        row["max_concurrency"],
    )

    # Removed, the peer is gone but the agency and its certificate stay
    done = congvan("peers", "remove", PEER, data_dir=data)
    assert 0 == done.returncode, done.stderr
    assert "[]" == congvan("peers", "list", "--json", data_dir=data).stdout.strip()
    assert PEER in congvan("agencies", "list", data_dir=data).stdout
    assert "Quảng Trị" in congvan("keys", "list", "--agency", PEER, data_dir=data).stdout
    done = congvan("peers", "remove", PEER, data_dir=data)
    assert (2, True) == (done.returncode, "error [not_found]" in done.stderr)


def test_a_directory_exported_here_imports_there_all_or_nothing(tmp_path: Path) -> None:
    # Given our agency with its organisational key
    here, there = tmp_path / "here", tmp_path / "there"
    for data in (here, there):
        assert congvan("migrate", data_dir=data).returncode == 0
    us = "000.00.00.H57"
    for command in (
        ("agencies", "add", us, "--name", "UBND tỉnh Thừa Thiên Huế", "--abbreviation", "UBND"),
        ("keys", "init-ca", "--name", "CA", "--organization", "UBND"),
        ("keys", "issue-agency", "--agency", us),
    ):
        done = congvan(*command, data_dir=here, env=PASS)
        assert 0 == done.returncode, done.stderr

    # When our directory is exported and imported there
    done = congvan(
        "peers", "export", "--inbox-url-base", "https://congvan.thuathienhue.gov.vn/", data_dir=here
    )
    assert 0 == done.returncode, done.stderr
    assert "PRIVATE KEY" not in done.stdout
    exported = json.loads(done.stdout)
    path = tmp_path / "directory.json"
    path.write_text(done.stdout, encoding="utf-8")
    [our_root] = (here / "trust").glob("*.pem")  # handed over with the file, pinned first
    assert 0 == congvan("keys", "trust", str(our_root), data_dir=there).returncode
    done = congvan("peers", "import", str(path), data_dir=there)
    assert 0 == done.returncode, done.stderr
    assert "imported 1 peer(s)" in done.stdout

    # Then there our agency is a peer at our inbox
    [row] = json.loads(congvan("peers", "list", "--json", data_dir=there).stdout)
    assert (us, "https://congvan.thuathienhue.gov.vn/v1/inbox") == (
        row["agency_id"],
        row["inbox_url"],
    )

    # And a file whose second entry is bad changes nothing there
    files = certificates(tmp_path)
    assert 0 == congvan("keys", "trust", str(files["root"]), data_dir=there).returncode
    good = {
        "agency_id": PEER,
        "name": NAME,
        "abbreviation": "UBND",
        "inbox_url": INBOX,
        "certificates": [files["agency"].read_text()],
    }
    bad = {**exported["agencies"][0], "inbox_url": "https://user:pass@x.example.vn/"}
    path.write_text(json.dumps({"format": "congvan-directory/1", "agencies": [good, bad]}))
    done = congvan("peers", "import", str(path), data_dir=there)
    assert 2 == done.returncode
    assert "error [invalid_input]: agencies[1].inbox_url: " in done.stderr
    assert [us] == [
        r["agency_id"]
        for r in json.loads(congvan("peers", "list", "--json", data_dir=there).stdout)
    ]
    assert PEER not in congvan("agencies", "list", data_dir=there).stdout
