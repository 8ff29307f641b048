"""The congvan command as an operator uses it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy.exc

from congvan.actions.signing import pki
from congvan.states.timeliness import VIETNAM
from congvan.workflow.cli import _operator_error, main
from congvan.workflow.demo.client import wait_for
from congvan.workflow.serving import free_port

RECIPIENTS = (
    "Sở Nội vụ tỉnh Thừa Thiên Huế",
    "Sở Y tế tỉnh Thừa Thiên Huế",
    "Ủy ban nhân dân thành phố Huế",
    "Ủy ban nhân dân thị xã Hương Thủy",
)


def congvan(
    *args: str, data_dir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "congvan.workflow.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_the_demo_plays_from_the_eve_of_tet(tmp_path: Path) -> None:
    # The day before Tết Đinh Mùi: the letter is khẩn, handled right after receipt, so its
    # registration falls due two hours on the clock after it arrives, that evening, not
    # after the break (a letter of no urgency would be due eight days on)
    passphrase = "the demo's own passphrase"
    env = {"CONGVAN_KEY_PASSPHRASE": passphrase}
    done = congvan("demo", "--start", "2027-02-03T16:30:00+07:00", data_dir=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"the clock now reads 18:3\d 03/02/2027", done.stdout), done.stdout

    # And, CONGVAN_KEY_PASSPHRASE set, its keys are locked with it: commands that sign can
    # use the folder it leaves, as it says (with how far its clock ran ahead)
    assert "locked with CONGVAN_KEY_PASSPHRASE" in done.stdout
    assert_clock_told(done.stdout, "2027-02-0")
    with sqlite3.connect(tmp_path / "province" / "congvan.db") as db:
        keys = [
            row[0] for row in db.execute("SELECT key_pem FROM certificates WHERE key_pem != ''")
        ]
    assert keys
    for key_pem in keys:
        pki.load_private_key(key_pem.encode(), passphrase)
    # (one too short to lock keys with is refused before anything is written)
    short = congvan("demo", data_dir=tmp_path / "short", env={"CONGVAN_KEY_PASSPHRASE": "short"})
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    assert not (tmp_path / "short" / "province").exists()


def assert_clock_told(out: str, day: str) -> None:
    """The demo's last words on its clock: ahead of real time (bundles exported now do not
    verify yet) or stopped before it (they verify at once), as it really is."""
    told = re.search(r"Its clock (ran ahead to|stopped at) (\d{4}-\d\d-\d\d \d\d:\d\d)", out)
    assert told is not None, out
    assert told.group(2).startswith(day), told.group(0)
    ended = datetime.strptime(told.group(2), "%Y-%m-%d %H:%M").replace(tzinfo=VIETNAM)
    ahead = ended > datetime.now(UTC)
    assert told.group(1) == ("ran ahead to" if ahead else "stopped at"), told.group(0)
    assert ("exported from it verify at once" in out[told.start() :]) is not ahead


def test_the_demo_plays_from_its_first_start(tmp_path: Path) -> None:
    # Its first day, before the signer's usual grant of authority (from 2021): granted
    # from the letter's day then. Its folder named after the command, as users type it.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "congvan.workflow.cli",
            "demo",
            "--data-dir",
            str(tmp_path),
            "--start",
            "2000-01-03T09:00:00+07:00",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "signs ['*'] from 2000-01-03" in done.stdout, done.stdout
    assert (tmp_path / "province").is_dir()


def test_the_demo_plays_from_its_last_start_to_the_end(tmp_path: Path) -> None:
    # Its CA is valid ten years, to the end of 2100, the last day reckoned with: signing
    # times are GeneralizedTime past 2049
    done = congvan("demo", "--start", "2091-01-02T23:00:00+00:00", data_dir=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the document is delivered: every recipient has it" in done.stdout

    # And a day later is refused before anything starts
    late = congvan("demo", "--start", "2091-01-03T00:00:00+00:00", data_dir=tmp_path / "late")
    assert late.returncode == 2
    assert "the demo starts from 2000-01-01 to 2091-01-02 (UTC)" in late.stderr


def test_demo_sends_the_sample_letter_between_two_installations(tmp_path: Path) -> None:
    # A Friday late afternoon: a letter issued then is due the next working day's noon, and
    # the warning scenes move the clock a day on, past it (the demo must play at any hour).
    done = congvan("demo", "--start", "2026-12-04T16:45:00+07:00", data_dir=tmp_path)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    # The province's scenes
    assert "1227/UBND-TĐKT" in out
    assert "duplicates.number" in out
    assert "signer_matches ✓" in out
    assert "422 certificate_expired" in out
    assert "422 certificate_revoked" in out
    # The installations meet before the letter is reviewed: every recipient's inbox known
    assert out.index("The two installations meet") < out.index("review checks run")
    assert "0 not" in out[out.index("review checks run") :]
    # Its clock stopped before real time: bundles from its folder verify at once, it says
    assert_clock_told(out, "2026-12-0")
    # Two installations, each with its own database
    for name in ("province", "recipients"):
        assert (tmp_path / name / "congvan.db").is_file()
    # The Sở Y tế was retried, then delivered; Hương Thủy failed, then was resent
    health = "Sở Y tế tỉnh Thừa Thiên Huế"
    assert f"{health}: pending after 2 attempt(s), no status yet — not sent" in out
    assert f"{health}: delivered after" in out
    assert "Ủy ban nhân dân thị xã Hương Thủy: failed after 4 attempt(s)" in out
    assert "resend: failed → sent" in out
    assert "the document is delivered: every recipient has it" in out
    # Every receipt verified again at the province
    for name in RECIPIENTS:
        assert f"✓ {name}: status 01 for message" in out
    # Each dispatch in its final state, with its status code: 15 where the copy was
    # recalled (its earlier codes are in its timeline), the refusal with its reason
    timelines = out[out.index("recipient by recipient:") : out.index("status (QCVN 102)")]
    # each step with the code it stood at then (03 registered, then 04 assigned)
    steps = {line.split()[1]: line for line in timelines.splitlines() if "→" in line}
    assert steps["acknowledge"].endswith("03 registered (đã tiếp nhận, vào sổ)")
    assert steps["report_assigned"].endswith("04 assigned (phân công)")
    # and the recall's answers on each timeline, the Sở Y tế's (never registered) too
    health_timeline = timelines[timelines.index("Sở Y tế") : timelines.index("thành phố Huế")]
    assert "recall:agree" in health_timeline
    assert "signed status message 15 agreed" in health_timeline
    assert timelines.count("signed status message 15 agreed") == 3
    table = out[out.index("status (QCVN 102)") :]
    recalled = "15 agreed to the recall"
    for name, state, status in (
        ("Sở Nội vụ tỉnh Thừa Thiên Huế", "acknowledged", recalled),
        ("Sở Y tế tỉnh Thừa Thiên Huế", "delivered", recalled),
        ("Ủy ban nhân dân thành phố Huế", "rejected", "02 refused (từ chối tiếp nhận): Đề nghị"),
        ("Ủy ban nhân dân thị xã Hương Thủy", "acknowledged", recalled),
    ):
        [row] = [line for line in table.splitlines() if line.strip().startswith(name)]
        assert row.split()[len(name.split())] == state, row
        assert status in row, row
    # The Sở Y tế never registers it: escalated at both ends, explained, mailed, resolved
    assert "province: escalation not_acknowledged for Sở Y tế tỉnh Thừa Thiên Huế" in out
    assert "Sở Y tế: its văn thư is reminded too" in out
    assert "(not_acknowledged, level 1) open since" in out
    assert (
        "e-mail to chanhvanphong@thuathienhue.gov.vn: [congvan] Đơn vị nhận chưa tiếp nhận" in out
    )
    assert "chanhvp@000.00.00.H57        resolve  contacted" in out
    # Then it is recalled, every recipient that has it agreeing
    assert out.count("agrees (15) → its copy is recalled") == 3
    assert "the province's letter 1227 is recalled" in out
    # Both audits hold: every chain (documents, escalations) and anchor checked, none broken
    assert "Audit of the province:" in out and "Audit of the recipients:" in out
    checked = re.findall(r"   (\d+) (chain|anchor)\(s\) checked, (\d+) broken", out)
    assert len(checked) == 4 and all(n != "0" and broken == "0" for n, _, broken in checked)
    assert "every step behaved as expected" in out


def test_serve_stopped_by_sigterm_shuts_down_and_exits_0(tmp_path: Path) -> None:
    # Given an installation served (as a supervisor such as systemd starts it)
    assert congvan("migrate", data_dir=tmp_path).returncode == 0
    port = free_port()
    command = [sys.executable, "-m", "congvan.workflow.cli", "--data-dir", str(tmp_path)]
    served = subprocess.Popen(
        [*command, "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for("the API", lambda: _answers(f"http://127.0.0.1:{port}/v1/health"), 60)

        # When the supervisor stops it (SIGTERM)
        served.send_signal(signal.SIGTERM)
        _out, err = served.communicate(timeout=60)
    finally:
        served.kill()

    # Then it shuts down and says it ended well (0), as worker and scheduler do, not
    # killed by the signal it was sent again (143)
    assert served.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    # (having said, as it started, what it serves: the database, its folder, the broker)
    [started] = [json.loads(x) for x in err.splitlines() if '"serve.start"' in x]
    assert started["data_dir"] == str(tmp_path) and started["broker"] == "embedded"
    assert started["database"].endswith("congvan.db")


@pytest.mark.parametrize("command", [["serve", "--no-workers"], ["worker"], ["scheduler"]])
def test_a_service_stopped_while_it_waits_for_its_database_exits_0(
    tmp_path: Path, command: list[str]
) -> None:
    # Given a service started on a PostgreSQL server that is not up (nothing listens),
    # waiting for it
    env = {
        **os.environ,
        "CONGVAN_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/congvan",
        "CONGVAN_BROKER_URL": "redis://127.0.0.1:1/0",
    }
    log = tmp_path / "stderr"
    with log.open("w") as err:
        started = subprocess.Popen(
            [sys.executable, "-m", "congvan.workflow.cli", "--data-dir", str(tmp_path), *command],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
        try:
            said = "the database is not reachable yet"
            wait_for("its wait", lambda: said in log.read_text() or None, 60)

            # When its supervisor stops it (SIGTERM)
            started.send_signal(signal.SIGTERM)
            started.wait(timeout=60)
        finally:
            started.kill()

    # Then it ends well (0), as it does when stopped running: to systemd or a container
    # runtime, 143 is a failed stop
    assert started.returncode == 0, log.read_text()[-2000:]
    assert "Traceback" not in log.read_text()


def _answers(url: str) -> bool | None:
    try:
        return httpx.get(url, timeout=2).status_code == 200 or None
    except httpx.HTTPError:
        return None


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    done = congvan("serve", data_dir=tmp_path)
    assert done.returncode == 2
    assert "database_not_migrated" in done.stderr
    assert "congvan migrate" in done.stderr


def test_operator_setup_and_audit_verify_catches_tampering(tmp_path: Path) -> None:
    # Given a migrated database with an agency, a clerk token and a document
    assert congvan("migrate", data_dir=tmp_path).returncode == 0
    added = congvan(
        "agencies",
        "add",
        "000.00.00.H57",
        "--name",
        "UBND tỉnh Thừa Thiên Huế",
        "--abbreviation",
        "UBND",
        data_dir=tmp_path,
    )
    assert added.returncode == 0, added.stderr
    bad = congvan(
        "agencies", "add", "h57 lower", "--name", "x", "--abbreviation", "x", data_dir=tmp_path
    )
    assert bad.returncode == 2 and "invalid_input" in bad.stderr
    token = congvan(
        "tokens", "create", "--agency", "000.00.00.H57", "--role", "clerk", data_dir=tmp_path
    )
    assert token.returncode == 0, token.stderr
    assert token.stdout.strip().splitlines()[-1].startswith("cvt_")
    from congvan.actions.context import Actor
    from congvan.workflow.bootstrap import bootstrap
    from congvan.workflow.settings import Settings

    runtime = bootstrap(Settings(data_dir=tmp_path))
    clerk = Actor("vanthu@000.00.00.H57", "000.00.00.H57", frozenset({"clerk"}))
    created = runtime.engine.create_document(
        clerk, {"doc_type": "CV", "subject": "V/v thử"}, [{"organ_id": "000.00.11.H57"}], []
    )
    runtime.engine.fire(created["id"], "edit", clerk, data={"fields": {"subject": "V/v sửa"}})
    runtime.stop()
    verified = congvan("audit", "verify", data_dir=tmp_path)
    assert verified.returncode == 0
    assert "chain" not in verified.stderr  # no bar unless on a terminal or asked for
    shown = congvan("audit", "verify", "--progress", data_dir=tmp_path)
    assert shown.returncode == 0
    assert "1/1" in shown.stderr and "chain" in shown.stderr
    assert shown.stdout == verified.stdout

    # When somebody rewrites history in SQL
    with sqlite3.connect(tmp_path / "congvan.db") as db:
        db.execute("UPDATE audit_entries SET actor = 'someone-else' WHERE version = 2")

    # Then the verifier names the entry and fails
    done = congvan("audit", "verify", created["id"], data_dir=tmp_path)
    assert done.returncode == 1
    assert "altered at version 2" in done.stdout


ANCHOR_ENV = {"CONGVAN_KEY_PASSPHRASE": "e2e anchor passphrase"}


def _keyed_with_a_document(tmp_path: Path) -> str:
    """An agency with an organisational certificate and one document (its id)."""
    for args in (
        ("agencies", "add", "000.00.00.H57", "--name", "UBND tỉnh", "--abbreviation", "UBND"),
        ("keys", "init-ca", "--name", "e2e CA", "--organization", "UBND tỉnh"),
        ("keys", "issue-agency", "--agency", "000.00.00.H57"),
    ):
        done = congvan(*args, data_dir=tmp_path, env=ANCHOR_ENV)
        assert done.returncode == 0, done.stdout + done.stderr
    from congvan.actions.context import Actor
    from congvan.workflow.bootstrap import bootstrap
    from congvan.workflow.settings import Settings

    runtime = bootstrap(Settings(data_dir=tmp_path))
    clerk = Actor("vanthu@000.00.00.H57", "000.00.00.H57", frozenset({"clerk"}))
    created = runtime.engine.create_document(
        clerk, {"doc_type": "CV", "subject": "V/v thử"}, [{"organ_id": "000.00.11.H57"}], []
    )
    runtime.stop()
    return str(created["id"])


def _latest_anchor(anchored: subprocess.CompletedProcess[str]) -> str:
    """The AGENCY:SEQ:SHA256 line `audit anchor` printed."""
    (receipt,) = [
        line.split("latest anchor: ")[1]
        for line in anchored.stdout.splitlines()
        if "latest anchor: " in line
    ]
    return receipt


def test_audit_anchor_signs_heads_and_verify_catches_a_rewritten_anchor(tmp_path: Path) -> None:
    env = ANCHOR_ENV
    assert congvan("migrate", data_dir=tmp_path).returncode == 0
    # (before it has a key, and for an agency not in the directory, one coded line each)
    for args, said in (
        ((), "error [invalid_input]: No agency has an organisational certificate"),
        (("--agency", "000.00.99.H57"), "error [not_found]: No agency 000.00.99.H57"),
    ):
        refused = congvan("audit", "anchor", *args, data_dir=tmp_path, env=env)
        assert (refused.returncode, refused.stdout) == (2, ""), refused.stdout
        assert said in refused.stderr, refused.stderr
    # Given an agency with an organisational certificate and one document
    _keyed_with_a_document(tmp_path)

    # When the heads are anchored, twice
    first = congvan("audit", "anchor", data_dir=tmp_path, env=env)
    again = congvan("audit", "anchor", data_dir=tmp_path, env=env)

    # Then the first signs one head, the second finds no change, and all verifies
    assert first.returncode == 0, first.stdout + first.stderr
    assert "000.00.00.H57: 1 head(s) anchored" in first.stdout
    assert "000.00.00.H57: no change" in again.stdout
    receipt = _latest_anchor(first)
    assert receipt.startswith("000.00.00.H57:1:")
    verified = congvan("audit", "verify", "--known", receipt, data_dir=tmp_path)
    assert verified.returncode == 0, verified.stdout
    assert "1 anchor(s) checked, 0 broken" in verified.stdout
    assert "1 known anchor(s) checked, 0 broken" in verified.stdout

    # And an anchor changed in SQL is named, with a non-zero exit
    with sqlite3.connect(tmp_path / "congvan.db") as db:
        db.execute("UPDATE audit_anchors SET body = CAST(REPLACE(body, 'seq', 'Seq') AS BLOB)")
    broken = congvan("audit", "verify", "--known", receipt, data_dir=tmp_path)
    assert broken.returncode == 1
    assert "BROKEN anchor 1 of 000.00.00.H57: signature" in broken.stdout
    assert "BROKEN known anchor 1 of 000.00.00.H57: it is not the one recorded" in broken.stdout

    # And deleted (the newest anchors, which nothing inside the database can notice)
    with sqlite3.connect(tmp_path / "congvan.db") as db:
        db.execute("DELETE FROM audit_anchors")
    gone = congvan("audit", "verify", "--known", receipt, data_dir=tmp_path)
    assert gone.returncode == 1
    assert "BROKEN known anchor 1 of 000.00.00.H57: it is gone" in gone.stdout
    assert "0 anchor(s) checked, 0 broken" in gone.stdout
    bad = congvan("audit", "verify", "--known", "nonsense", data_dir=tmp_path)
    assert bad.returncode != 0 and "AGENCY:SEQ:SHA256" in bad.stderr


def test_verifying_one_chain_checks_the_anchors_whatever_agency_its_row_names(
    tmp_path: Path,
) -> None:
    # Given an anchored document whose entry is then rewritten with fresh hashes (as one
    # knowing the hash rule would), and its row moved to another agency, in SQL
    assert congvan("migrate", data_dir=tmp_path).returncode == 0
    doc = _keyed_with_a_document(tmp_path)
    receipt = _latest_anchor(congvan("audit", "anchor", data_dir=tmp_path, env=ANCHOR_ENV))
    from congvan.storage.audit import entry_hash

    with sqlite3.connect(tmp_path / "congvan.db") as db:
        row = db.execute(
            "SELECT prev_hash, version, event, from_state, to_state, at, payload_digest "
            "FROM audit_entries WHERE document_id = ?",
            (doc,),
        ).fetchone()
        prev, version, event, from_state, to_state, at, payload_digest = row
        forged = entry_hash(
            prev_hash=prev, document_id=doc, version=version, actor="someone-else",
            event=event, from_state=from_state, to_state=to_state,
            at=datetime.fromisoformat(at).replace(tzinfo=UTC), payload_digest=payload_digest,
        )  # fmt: skip
        db.execute(
            "UPDATE audit_entries SET actor = 'someone-else', hash = ? WHERE document_id = ?",
            (forged, doc),
        )
        db.execute(
            "UPDATE documents SET audit_head = ?, agency_id = '000.00.11.H57' WHERE id = ?",
            (forged, doc),
        )

    # Then the chain alone verifies, and its anchor names the rewritten entry
    done = congvan("audit", "verify", doc, data_dir=tmp_path)
    assert done.returncode == 1, done.stdout
    assert "1 chain(s) checked, 0 broken" in done.stdout
    assert f"BROKEN anchor 1 of 000.00.00.H57: head for {doc} version 1" in done.stdout

    # And an anchor's stored digest (what `audit anchor` prints) changed in SQL is named
    with sqlite3.connect(tmp_path / "congvan.db") as db:
        db.execute("UPDATE audit_anchors SET body_sha256 = '00' || substr(body_sha256, 3)")
    moved = congvan("audit", "verify", "--known", receipt, data_dir=tmp_path)
    assert "BROKEN anchor 1 of 000.00.00.H57: altered" in moved.stdout
    assert "1 known anchor(s) checked, 0 broken" in moved.stdout  # the body is the one kept


def test_an_agency_is_added_with_its_numbering_series(tmp_path: Path) -> None:
    # Given a migrated database
    assert congvan("migrate", data_dir=tmp_path).returncode == 0

    # When one agency keeps the default series and another numbers per symbol
    for args in (
        ("000.00.00.H57", "--name", "UBND tỉnh", "--abbreviation", "UBND"),
        ("000.00.11.H57", "--name", "Sở", "--abbreviation", "SNV", "--numbering", "symbol"),
    ):
        done = congvan("agencies", "add", *args, data_dir=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    wrong = congvan(
        "agencies", "add", "000.00.12.H57", "--name", "x", "--abbreviation", "X",
        "--numbering", "year", data_dir=tmp_path,
    )  # fmt: skip

    # Then the list shows each series, and an unknown one is refused
    listed = congvan("agencies", "list", data_dir=tmp_path).stdout.splitlines()
    assert [line.split()[2] for line in listed] == ["agency", "symbol"]
    assert wrong.returncode != 0


def test_an_agencys_series_is_changed(tmp_path: Path) -> None:
    # Given an agency numbering all its documents in one series
    assert congvan("migrate", data_dir=tmp_path).returncode == 0
    added = congvan(
        "agencies", "add", "000.00.00.H57", "--name", "UBND tỉnh", "--abbreviation", "UBND",
        data_dir=tmp_path,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr

    # When the operator moves it to a series per symbol, and names an unknown agency
    done = congvan("agencies", "set", "000.00.00.H57", "--numbering", "symbol", data_dir=tmp_path)
    unknown = congvan(
        "agencies", "set", "000.00.99.H57", "--numbering", "symbol", data_dir=tmp_path
    )

    # Then the list shows the new series, and the unknown agency is an error with its code
    assert done.returncode == 0, done.stdout + done.stderr
    assert "agency → symbol" in done.stdout
    listed = congvan("agencies", "list", data_dir=tmp_path).stdout.split()
    assert "symbol" == listed[2]
    assert (2, "error [not_found]") == (unknown.returncode, unknown.stderr.split(":")[0])


def test_an_argument_that_is_not_utf8_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    # Given a migrated database
    assert congvan("migrate", data_dir=tmp_path).returncode == 0

    # When an agency is added with a name typed in Latin-1 ("café")
    done = subprocess.run(
        [
            sys.executable.encode(),
            b"-m",
            b"congvan.workflow.cli",
            b"--data-dir",
            bytes(tmp_path),
            b"agencies",
            b"add",
            b"000.00.00.H57",
            b"--name",
            b"caf\xe9",
            b"--abbreviation",
            b"UBND",
        ],
        capture_output=True,
        timeout=300,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )

    # Then the command says which argument, with the API's code, and adds nothing
    assert done.returncode == 2, done.stderr
    assert b"error [invalid_encoding]: The argument name is not UTF-8 text." in done.stderr
    assert b"Traceback" not in done.stderr
    assert congvan("agencies", "list", data_dir=tmp_path).stdout.startswith("no agencies")


def test_a_signing_authority_is_granted_and_listed(tmp_path: Path) -> None:
    # Given an agency with a signer
    assert congvan("migrate", data_dir=tmp_path).returncode == 0
    agency = ("--agency", "000.00.00.H57")
    for args in (
        ("agencies", "add", "000.00.00.H57", "--name", "UBND tỉnh", "--abbreviation", "UBND"),
        ("tokens", "create", *agency, "--role", "signer", "--user", "pct"),
    ):
        done = congvan(*args, data_dir=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr

    # When the operator grants it authority over letters and decisions for 2026
    grant = (
        *agency, "--signer", "pct", "--doc-types", "CV,QĐ", "--competence", "KT. CHỦ TỊCH",
        "--from", "2026-01-01", "--until", "2026-12-31",
    )  # fmt: skip
    granted = congvan("authorities", "add", *grant, data_dir=tmp_path)

    # Then the grant is printed, and the list shows it active
    assert granted.returncode == 0, granted.stdout + granted.stderr
    authority_id = granted.stdout.split()[1].rstrip(":")
    assert (
        f"authority {authority_id}: pct signs CV,QĐ for 000.00.00.H57 from 2026-01-01 "
        "until 2026-12-31\n"
    ) == granted.stdout
    listed = congvan("authorities", "list", *agency, data_dir=tmp_path).stdout.split()
    assert [
        authority_id, "pct", "CV,QĐ", "KT.", "CHỦ", "TỊCH", "2026-01-01", "→", "2026-12-31",
        "active",
    ] == listed  # fmt: skip

    # But a grant from before the years reckoned with is refused, as the API refuses it
    ancient = congvan(
        "authorities", "add", *agency, "--signer", "pct", "--doc-types", "CV",
        "--from", "0001-01-01", "--until", "0002-01-01", data_dir=tmp_path,
    )  # fmt: skip
    assert ancient.returncode == 2, ancient.stdout + ancient.stderr
    assert "valid_from falls within the years 1901 to 2100" in ancient.stderr

    # And so is a competence longer than the API takes, and nothing more is granted
    long_block = congvan(
        "authorities", "add", *agency, "--signer", "pct", "--doc-types", "CV",
        "--competence", "KT. " + "CHỦ TỊCH " * 30, "--from", "2026-01-01", data_dir=tmp_path,
    )  # fmt: skip
    assert long_block.returncode == 2, long_block.stdout + long_block.stderr
    assert long_block.stderr.startswith("error [invalid_input]: competence is a signer block")
    # And so is one with characters that show nothing or are no text (the API refuses them)
    for hidden in (
        "KT. CHỦ\u200bTỊCH",
        "KT. CHỦ TỊCH\u00ad",
        "KT.\x01 CHỦ TỊCH",
        "KT. CHỦ TỊCH\u202e",
    ):
        refused = congvan(
            "authorities", "add", *agency, "--signer", "pct", "--doc-types", "CV",
            "--competence", hidden, "--from", "2026-01-01", data_dir=tmp_path,
        )  # fmt: skip
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr.startswith("error [invalid_input]: competence must not contain")
    assert congvan("authorities", "list", *agency, data_dir=tmp_path).stdout.split() == listed

    # The same grant again is refused, naming the authority to revoke; revoked by the CLI,
    # it is granted anew
    again = congvan("authorities", "add", *grant, data_dir=tmp_path)
    assert again.returncode == 2 and authority_id in again.stderr, again.stderr
    revoked = congvan("authorities", "revoke", authority_id, *agency, data_dir=tmp_path)
    assert (revoked.returncode, revoked.stdout) == (0, f"authority {authority_id} revoked\n")
    assert congvan("authorities", "list", *agency, data_dir=tmp_path).stdout.split()[-1] == (
        "revoked"
    )
    assert congvan("authorities", "add", *grant, data_dir=tmp_path).returncode == 0
    gone = congvan("authorities", "revoke", authority_id, *agency, data_dir=tmp_path)
    assert gone.returncode == 2 and "error [not_found]" in gone.stderr, gone.stderr


def test_a_reader_that_goes_away_ends_the_command_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As `congvan graph | head -1` once head has gone: every write meets a closed pipe
    read_end, write_end = os.pipe()
    os.close(read_end)
    closed = open(write_end, "w", buffering=1, encoding="utf-8")  # noqa: SIM115
    monkeypatch.setattr(sys, "stdout", closed)

    code = main(["--data-dir", str(tmp_path), "graph"])

    assert code == 141
    closed.write("at exit, a last flush goes nowhere\n")  # stdout now writes to os.devnull
    closed.close()
    assert "Traceback" not in capsys.readouterr().err


def test_issuing_a_certificate_that_names_a_crl_on_this_machine_warns(tmp_path: Path) -> None:
    # Given an agency and our CA, CONGVAN_PUBLIC_URL unset
    env = {"CONGVAN_KEY_PASSPHRASE": "e2e crl passphrase"}
    assert congvan("migrate", data_dir=tmp_path).returncode == 0
    for args in (
        ("agencies", "add", "000.00.00.H57", "--name", "UBND tỉnh", "--abbreviation", "UBND"),
        ("keys", "init-ca", "--name", "e2e CA", "--organization", "UBND tỉnh"),
    ):
        assert congvan(*args, data_dir=tmp_path, env=env).returncode == 0

    # When its certificate is issued: it is, with a warning naming the setting
    issued = congvan(
        "keys", "issue-agency", "--agency", "000.00.00.H57", data_dir=tmp_path, env=env
    )
    assert issued.returncode == 0, issued.stderr
    assert "127.0.0.1" in issued.stderr and "CONGVAN_PUBLIC_URL" in issued.stderr

    # But one refused (an agency not in the directory) is refused alone: nothing issued
    refused = congvan(
        "keys", "issue-agency", "--agency", "000.00.99.H57", data_dir=tmp_path, env=env
    )
    assert refused.returncode == 2 and refused.stderr.startswith("error ["), refused.stderr
    assert "warning" not in refused.stderr

    # And with the address other agencies reach, nothing is said
    public = {**env, "CONGVAN_PUBLIC_URL": "https://congvan.thuathienhue.gov.vn"}
    again = congvan(
        "keys", "issue-agency", "--agency", "000.00.00.H57", data_dir=tmp_path, env=public
    )
    assert again.returncode == 0, again.stderr
    assert "warning" not in again.stderr


@pytest.mark.parametrize(
    ("environment", "named", "says"),
    [
        (
            {"CONGVAN_WEBHOOK_TIMEOUT_SECONDS": "soon"},
            ["CONGVAN_WEBHOOK_TIMEOUT_SECONDS"],
            "number",
        ),
        (
            {"CONGVAN_NOTIFY_PRIVATE_NETWORKS": '["10.0.0.0/8", "x"]'},
            ["CONGVAN_NOTIFY_PRIVATE_NETWORKS"],
            "'x' is not a network",
        ),
        (
            {"CONGVAN_SMTP_HOST": "mail.example.vn", "CONGVAN_SMTP_USERNAME": "van.thu"},
            ["CONGVAN_SMTP_USERNAME", "CONGVAN_SMTP_STARTTLS"],
            "CONGVAN_SMTP_USERNAME needs CONGVAN_SMTP_STARTTLS",
        ),
    ],
)
def test_a_setting_that_is_not_valid_is_named_as_the_operator_sets_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    environment: dict[str, str],
    named: list[str],
    says: str,
) -> None:
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)

    assert 2 == main(["--data-dir", str(tmp_path), "peers", "list"])

    first, details = capsys.readouterr().err.strip().splitlines()[-2:]
    assert first.startswith("error [invalid_input]: A setting is not valid") and says in first
    assert named == json.loads(details)["settings"]
    # never the field's name in the program (smtp_username), which no variable is called
    assert not re.search(r"(?<![A-Z_])[a-z]+_[a-z_]+", first.partition(": ")[2]), first


def test_a_variable_no_setting_reads_is_named_with_the_setting_meant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the database URL misspelt, the key's passphrase called a password, another
    # variable far from any setting, and a real one
    monkeypatch.setenv("CONGVAN_DATABSE_URL", "postgresql://congvan@db/congvan")
    monkeypatch.setenv("CONGVAN_KEY_PASSWORD", "not read")
    monkeypatch.setenv("CONGVAN_ZZZ", "1")
    monkeypatch.setenv("CONGVAN_LOG_LEVEL", "INFO")

    # When a command runs: it runs (on the embedded default, as the variable is not read)
    assert 0 == main(["--data-dir", str(tmp_path), "migrate"])

    # Then each unread variable is named once, with the setting it was likely meant for
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == [
        "warning: CONGVAN_DATABSE_URL is not a setting congvan reads, it is ignored; "
        "did you mean CONGVAN_DATABASE_URL?",
        "warning: CONGVAN_KEY_PASSWORD is not a setting congvan reads, it is ignored; "
        "did you mean CONGVAN_KEY_PASSPHRASE?",
        "warning: CONGVAN_ZZZ is not a setting congvan reads, it is ignored",
    ]


def test_serve_on_an_address_it_cannot_listen_on_says_so_in_one_coded_line(
    tmp_path: Path,
) -> None:
    # Given a migrated installation, and its port taken by another program
    assert congvan("migrate", data_dir=tmp_path).returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # When it is served there, or on a host that is none of this machine's
        in_use = congvan("serve", "--port", str(port), data_dir=tmp_path)
    no_host = congvan("serve", "--host", "999.1.1.1", data_dir=tmp_path)

    # Then each is refused at once (exit 2, one error line), not logged by the server
    assert (in_use.returncode, no_host.returncode) == (2, 2), in_use.stderr + no_host.stderr
    assert in_use.stderr.startswith(f"error [unavailable]: Cannot listen on 127.0.0.1:{port}:")
    assert "Choose another --port" in in_use.stderr  # and it says what to do
    assert no_host.stderr.startswith("error [unavailable]: Cannot listen on 999.1.1.1:")


def test_a_demo_in_a_folder_holding_an_earlier_demo_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a folder an earlier demo ran in: its installations and its log
    (tmp_path / "province").mkdir()
    (tmp_path / "demo.log").write_text("the earlier run's log\n", encoding="utf-8")

    # When the demo is run there again
    code = main(["--data-dir", str(tmp_path), "demo"])

    # Then it is refused at once, and the earlier run's log is kept
    assert code == 2
    assert "error [already_exists]:" in capsys.readouterr().err
    assert (tmp_path / "demo.log").read_text(encoding="utf-8") == "the earlier run's log\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.log", "province"]


def test_a_demo_in_a_folder_holding_anything_else_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a folder an installation runs from: its database and its trust folder
    (tmp_path / "congvan.db").write_bytes(b"SQLite format 3\x00")
    (tmp_path / "trust").mkdir()

    # When the demo is told to run there
    code = main(["--data-dir", str(tmp_path), "demo"])

    # Then it is refused at once, naming what is there, and nothing is written beside it
    assert code == 2
    said = capsys.readouterr().err
    assert "error [already_exists]:" in said and "is not empty" in said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["congvan.db", "trust"]


def test_a_data_folder_that_is_a_file_is_said_to_be_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "congvan"
    afile.write_text("not a folder\n", encoding="utf-8")

    assert main(["--data-dir", str(afile), "peers", "list"]) == 2

    said = capsys.readouterr().err
    assert f"error [invalid_input]: {afile} is a file (or lies under one), not a folder." in said


@pytest.mark.parametrize(
    ("driver_said", "code", "says"),
    [
        ("database or disk is full", "unavailable", "The disk under the database is full"),
        ("disk I/O error", "unavailable", "probably full, or failing"),
        ("unable to open database file", "database_unavailable", "writable by this user"),
        ("no such table: documents", "database_unavailable", "no such table: documents"),
    ],
)
def test_what_the_database_driver_refused_is_said_as_the_operator_mends_it(
    driver_said: str, code: str, says: str
) -> None:
    failed = sqlalchemy.exc.OperationalError("INSERT …", {}, sqlite3.OperationalError(driver_said))

    error = _operator_error(failed)

    assert error is not None and (error.code, says in error.message) == (code, True)


@pytest.mark.parametrize("command", ["worker", "scheduler"])
def test_a_process_apart_on_the_embedded_broker_is_refused_in_one_line(
    tmp_path: Path, command: str
) -> None:
    # Given a migrated installation on the embedded default (no CONGVAN_BROKER_URL)
    assert congvan("migrate", data_dir=tmp_path).returncode == 0

    done = congvan(command, data_dir=tmp_path)

    # Then it is refused, saying where the work runs, with nothing logged before
    assert done.returncode == 2
    assert done.stderr.startswith("error [invalid_input]: With the embedded broker")
    assert "congvan serve" in done.stderr and len(done.stderr.splitlines()) == 1


def test_output_a_terminal_cannot_encode_is_escaped_not_a_traceback(tmp_path: Path) -> None:
    # Given an agency with a Vietnamese name, and output in an encoding without Vietnamese
    assert congvan("migrate", data_dir=tmp_path).returncode == 0
    added = congvan(
        "agencies", "add", "000.00.00.H57", "--name", "Ủy ban nhân dân tỉnh",
        "--abbreviation", "UBND", data_dir=tmp_path,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr

    command = [sys.executable, "-m", "congvan.workflow.cli", "--data-dir", str(tmp_path)]
    listed = subprocess.run(
        [*command, "agencies", "list"],
        capture_output=True,
        timeout=300,
        env={**os.environ, "PYTHONIOENCODING": "cp1252"},
    )

    # Then what it cannot show comes as escapes, and the command succeeds
    assert listed.returncode == 0, listed.stderr
    assert b"Traceback" not in listed.stderr
    assert "\\u1ee6y ban nhân dân" in listed.stdout.decode("cp1252")


def test_a_data_folder_given_empty_is_refused_not_taken_as_the_default(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "congvan.workflow.cli", "--data-dir", "", "migrate"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "default")},
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error [invalid_input]") and "empty" in done.stderr
    assert not (tmp_path / "default").exists()


def test_a_data_folder_under_home_written_with_a_tilde_is_the_home_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "congvan.workflow.cli", "migrate"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(home), "CONGVAN_DATA_DIR": "~/congvan"},
    )
    assert done.returncode == 0, done.stderr
    assert (home / "congvan" / "congvan.db").exists()
    assert not (tmp_path / "~").exists()


SNOOZE = ("escalations", "snooze", "E1", "2026-12-06", "--user", "u", "--reason", "r")


def test_a_usage_mistake_is_said_as_every_error_is_with_the_command_meant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # When a command is mistyped, or an option given a value it does not take
    for argv, usage, said in (
        (["migrat"], "congvan [", "did you mean 'migrate'?"),
        # an option mistyped: the one meant, of that command's (its value never shown)
        (
            ["demo", "--strat", "x"],
            "congvan demo [",
            "--strat, 1 other word(s), not shown; did you mean '--start'?",
        ),
        (
            ["tokens", "create", "--agncy", "x"],
            "congvan tokens create [",
            "did you mean '--agency'?",
        ),
        (["serve", "--port", "abc"], "congvan serve [", "congvan serve: argument --port"),
        # an option a nested command does not take: that command's usage, not the top's
        (
            [*SNOOZE, "--bogus", "v"],
            "congvan escalations snooze [",
            "congvan escalations snooze: unrecognized arguments: --bogus, 1 other word(s), not",
        ),
        (["keys", "list", "--bogus"], "congvan keys list [", "unrecognized arguments: --bogus"),
        # a reason the event needs is said needed by the command line itself (and its help)
        (
            ["escalations", "resolve", "E1", "contacted", "--user", "u"],
            "congvan escalations resolve [",
            "the following arguments are required: --reason",
        ),
        # words it takes none of: counted, wherever they stand, never shown
        (["graph", "x1", "x2", "--bogus"], "congvan graph [", "arguments: --bogus, 2 other word"),
        (["graph", "secret"], "congvan graph [", "unrecognized arguments: 1 other word(s), not"),
        # an option unknown where no command follows it: told, not the command missing
        (["--bogus"], "congvan [", "congvan: unrecognized arguments: --bogus"),
        (
            ["peers", "--bogus=v"],
            "congvan peers [",
            "congvan peers: unrecognized arguments: --bogus",
        ),
        # but a command missing after known options, or after "--", is said missing
        (["--"], "congvan [", "the following arguments are required: COMMAND"),
        (["peers"], "congvan peers [", "the following arguments are required: action"),
    ):
        with pytest.raises(SystemExit) as ended:
            main(["--data-dir", str(tmp_path), *argv])
        # Then it exits 2 with the usage of that command and one coded line saying what
        err = capsys.readouterr().err
        assert ended.value.code == 2
        assert err.startswith(f"usage: {usage}"), err
        [line] = [x for x in err.splitlines() if x.startswith("error")]
        assert line.startswith("error [invalid_input]: ") and said in line, err


def test_help_and_version_are_asked_as_other_commands_are(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `congvan help [COMMAND]` is `congvan [COMMAND] --help`, as git reads it
    for argv, usage in (
        (["help"], "usage: congvan ["),
        (["help", "keys"], "usage: congvan keys ["),
    ):
        with pytest.raises(SystemExit) as ended:
            main(argv)
        assert ended.value.code == 0
        assert capsys.readouterr().out.startswith(usage)
    # and --version says the version installed
    with pytest.raises(SystemExit) as ended:
        main(["--version"])
    assert ended.value.code == 0
    assert re.fullmatch(r"congvan \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


def test_a_terminated_demo_ends_as_an_interrupted_one_and_removes_its_folder(
    tmp_path: Path,
) -> None:
    # Given a demo running in a temporary folder (under a TMPDIR of the test's own)
    demo = subprocess.Popen(
        [sys.executable, "-m", "congvan.workflow.cli", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert demo.stdout is not None
    for line in demo.stdout:  # its installations serving
        if "API on" in line:
            break

    # When it is sent SIGTERM (a service manager stopping it, `timeout`, `kill`)
    demo.send_signal(signal.SIGTERM)
    _out, err = demo.communicate(timeout=120)

    # Then it stops as Ctrl-C stops it, in one line, its temporary folder removed
    assert (demo.returncode, err.strip().splitlines()[-1]) == (143, "terminated"), err
    assert "Traceback" not in err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("congvan-demo-")] == []


def test_an_interrupt_while_the_command_loads_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.abc

    from congvan.workflow import cli, launch

    class Interrupting(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, *_args: object) -> None:
            if name == "congvan.workflow.cli":
                raise KeyboardInterrupt

    # Given Ctrl-C pressed while the command's modules load, or while its line is parsed
    monkeypatch.delitem(sys.modules, "congvan.workflow.cli")
    monkeypatch.setattr(sys, "meta_path", [Interrupting(), *sys.meta_path])
    # Then either ends in one line, exit 130
    assert launch.main() == 130
    monkeypatch.undo()

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["agencies", "list"]) == 130
    assert capsys.readouterr().err.splitlines() == ["interrupted", "interrupted"]
