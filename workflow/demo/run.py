"""``congvan demo``: two installations on loopback, the scenes, then the audit chains."""

from __future__ import annotations

import secrets
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from datetime import time as dt_time
from pathlib import Path

import httpx
from pydantic import SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from congvan.actions.anchoring import verify_anchors
from congvan.actions.signing.pki import MIN_PASSPHRASE_CHARS
from congvan.states.errors import AlreadyExists, InvalidInput
from congvan.states.timeliness import VIETNAM
from congvan.storage.clock import MovableClock
from congvan.storage.database import make_engine
from congvan.storage.schema import migrate

from ..api import create_app
from ..bootstrap import Runtime, bootstrap
from ..logs import configure_logging
from ..serving import free_port, serve_in_thread
from ..settings import Settings
from .cast import letter_1227, set_up, set_up_recipients
from .client import Demo, DemoFailed
from .exchange import EXPECTED, Installation, exchange, meet, print_dispatches
from .mailbox import Mailbox, smtp_sink
from .steps import (
    clean_letter,
    duplicate,
    format_error,
    letter_pdf,
    print_timeline,
    refused_signatures,
)
from .warnings import recalled, unregistered

# Short waits, so that retries and the last attempt play out in seconds: a failed delivery
# waits 1 s, then 2 s, then 4 s (no jitter); the fourth attempt is the last.
DEMO_SETTINGS = {
    "relay_poll_seconds": 0.05,
    "scheduler_poll_seconds": 0.1,
    "worker_threads": 2,
    "dispatch_max_attempts": 4,
    "delivery_retry_seconds": 1.0,
    "delivery_retry_cap_seconds": 4.0,
    "delivery_retry_jitter": 0.0,
}


class _DemoSettings(Settings):
    """The demo's own settings, whatever the environment holds: an operator's ``CONGVAN_*``
    variables name their installation (its database, its trust folder), which the demo
    must never write into."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def install(
    data_dir: Path, passphrase: str, port: int, clock: MovableClock, smtp_port: int
) -> Runtime:
    """A fresh installation in ``data_dir``: its own SQLite database, keys and trust store."""
    settings = _DemoSettings(
        data_dir=data_dir,
        key_passphrase=SecretStr(passphrase),
        public_url=f"http://127.0.0.1:{port}",
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_from="congvan@hue.gov.vn",
        **DEMO_SETTINGS,  # type: ignore[arg-type]
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    migrate(engine)
    return bootstrap(settings, db=engine, clock=clock)


# A demo begun this late in the day (Vietnam time) would date its letter one day and have
# it reviewed the next, after midnight: it plays from that morning instead.
LATE_START = dt_time(23, 30)
THIS_MORNING = dt_time(7, 30)


def morning_of_a_late_start(now: datetime) -> datetime | None:
    """This morning (Vietnam time) when ``now`` is too late in its day for the demo to play
    before midnight; None when it is not. (Played from this morning, not the next: what
    it issues, certificates first, is valid at once in real time, for the commands run on
    its folder afterwards.)"""
    local = now.astimezone(VIETNAM)
    if local.time() < LATE_START:
        return None
    return datetime.combine(local.date(), THIS_MORNING, VIETNAM)


def run_demo(
    data_dir: Path | None = None,
    *,
    start: datetime | None = None,
    passphrase: str | None = None,
) -> int:
    """Run the demo; non-zero exit when any step does not behave as it should.

    ``start``: the moment the installations' clock reads as it begins (default: now), so
    that it plays the same whatever the hour (a late afternoon's letter is due the next
    noon, and the warning scenes move the clock a day on). ``passphrase``
    (``CONGVAN_KEY_PASSPHRASE``): what its keys are locked with, so that commands that
    sign can use its folder afterwards; none, one of this run alone, never shown."""
    if passphrase is not None and len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise InvalidInput(
            f"CONGVAN_KEY_PASSPHRASE locks the demo's keys: at least {MIN_PASSPHRASE_CHARS} "
            "characters.",
            field="CONGVAN_KEY_PASSPHRASE",
        )
    started = time.monotonic()
    tmp = None
    if data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="congvan-demo-")
        data_dir = Path(tmp.name)
    data_dir.mkdir(parents=True, exist_ok=True)
    held = [data_dir / name for name in ("province", "recipients") if (data_dir / name).exists()]
    if held:
        # Its keys were locked by a passphrase of that run alone: a run there could only
        # fail, after overwriting the earlier run's log. Said before anything is written.
        raise AlreadyExists(
            f"{data_dir} already holds a demo's installations: run it in an empty folder "
            "(or without --data-dir, in a temporary one).",
            path=str(data_dir),
        )
    if any(data_dir.iterdir()):
        # Anything else there (an installation's own database and keys, say): the demo
        # writes its two installations, their keys and its log beside it.
        raise AlreadyExists(
            f"{data_dir} is not empty: the demo runs in an empty folder (or without "
            "--data-dir, in a temporary one), never beside what another holds there.",
            path=str(data_dir),
            found=sorted(p.name for p in data_dir.iterdir())[:10],
        )
    kept = passphrase is not None
    passphrase = passphrase or secrets.token_urlsafe(24)  # else this run's alone, never shown
    ports = {"province": free_port(), "recipients": free_port()}
    where = f"a temporary folder, {data_dir}, removed at the end" if tmp else str(data_dir)
    print(f"congvan demo — two installations, each with its embedded database, in {where}")
    stack_smtp = ExitStack()  # the local SMTP sink the warnings are mailed to
    log = open(data_dir / "demo.log", "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    # Their logs go to a file: the demo's failed attempts are logged, as they should be.
    configure_logging("INFO", json=True, stream=log)
    # One clock for both, real time until the warning scenes move it forward.
    clock = MovableClock()
    late = None if start is not None else morning_of_a_late_start(clock())
    if late is not None:
        print(f"(started late in the day: it plays from this morning, {late.isoformat()})")
        start = late
    if start is not None:
        clock.advance(seconds=(start - clock()).total_seconds())
    mailbox = Mailbox()
    smtp_port = stack_smtp.enter_context(smtp_sink(mailbox))
    runtimes = {
        name: install(data_dir / name, passphrase, port, clock, smtp_port)
        for name, port in ports.items()
    }
    province, recipients = runtimes["province"], runtimes["recipients"]
    meta = letter_1227(clock().astimezone(VIETNAM).date().isoformat())
    try:
        tokens = set_up(province, passphrase)
        their_tokens = set_up_recipients(recipients, passphrase)
        with ExitStack() as stack:
            served = {
                name: stack.enter_context(
                    serve_in_thread(create_app(runtime, background=True), port=ports[name])
                )
                for name, runtime in runtimes.items()
            }
            clients = {
                name: stack.enter_context(httpx.Client(base_url=base, timeout=30))
                for name, base in served.items()
            }
            for name, base in served.items():
                print(f"{name}: API on {base}; worker threads, relay and scheduler running")
            demo = Demo(clients["province"], tokens)
            here = Installation("the province", province, demo, served["province"])
            there = Installation(
                "the recipients",
                recipients,
                Demo(clients["recipients"], their_tokens),
                served["recipients"],
            )
            with ExitStack() as links:
                down = meet(here, there, links)
                first = clean_letter(demo, meta, letter_pdf(meta))
                view = exchange(here, there, first, down)
                unregistered(here, there, first, clock, mailbox)
                recalled(here, there, first)
            # Issued on the day the clock reads now: the warning scenes moved it a day
            # on, past the first letter's time to be sent (its day's or the next noon).
            today = clock().astimezone(VIETNAM).date().isoformat()
            second = format_error(demo, {**meta, "issued_on": today})
            refused_signatures(demo, province, second, passphrase)
            third = duplicate(demo, meta, first)
            for doc_id in (first, second, third):
                print_timeline(demo, doc_id)
            print_dispatches(demo, first)
        ended = {d["organ_id"]: (d["state"], d["status_code"]) for d in view["dispatches"]}
        if ended != EXPECTED:
            raise DemoFailed(f"the recipients ended as {ended}, not {EXPECTED}")
        broken = audit(province, "the province") + audit(recipients, "the recipients")
        if broken:
            return 1
        took = time.monotonic() - started
        print(f"\nDemo finished in {took:.0f}s: every step behaved as expected.")
        if tmp is None:
            _say_what_stays(data_dir, clock(), kept=kept)
        else:
            print(
                f"Its temporary folder {data_dir} is removed now; run it with --data-dir "
                "FOLDER to keep its installations and look into them afterwards."
            )
        return 0
    except DemoFailed as exc:
        print(f"\nDEMO FAILED: {exc}")
        log.flush()
        tail = (data_dir / "demo.log").read_text(encoding="utf-8").splitlines()[-20:]
        print("The last lines logged:", *tail, sep="\n", file=sys.stderr)
        return 1
    finally:
        for runtime in runtimes.values():
            runtime.stop()
        stack_smtp.close()
        log.close()
        if tmp is not None:
            tmp.cleanup()


def audit(runtime: Runtime, name: str) -> int:
    """Anchor every agency's audit chain heads, verify chains and anchors; problems found."""
    anchored = runtime.anchoring.anchor(runtime.uow, runtime.clock())
    with runtime.uow(readonly=True) as uow:
        results = list(uow.audit.verify())
        anchors = [
            (agency, seq, problem)
            for agency in anchored
            for seq, problem in verify_anchors(uow, runtime.trust, agency)
        ]
    broken = [(d, p) for d, p in results if p is not None]
    bad = [(agency, seq, p) for agency, seq, p in anchors if p is not None]
    print(
        f"\nAudit of {name}: {sum(anchored.values())} chain head(s) signed by "
        f"{len(anchored)} agenc{'y' if len(anchored) == 1 else 'ies'} (congvan audit anchor)"
    )
    print(f"   {len(results)} chain(s) checked, {len(broken)} broken")
    print(f"   {len(anchors)} anchor(s) checked, {len(bad)} broken")
    for doc, problem in broken:
        print(f"   BROKEN {doc}: {problem}")
    for agency, seq, anchor_problem in bad:
        print(f"   BROKEN anchor {agency} {seq}: {anchor_problem}")
    return len(broken) + len(bad) + (0 if anchored else 1)


def _say_what_stays(data_dir: Path, ended: datetime, *, kept: bool) -> None:
    """What a person may do with the folder the demo leaves: its installations are
    ``--data-dir DATA_DIR/province`` and ``/recipients``."""
    print(f"Its installations stay in {data_dir}/province and {data_dir}/recipients.")
    if kept:
        print("Their keys are locked with CONGVAN_KEY_PASSPHRASE, as set for this run.")
    else:
        print(
            "Their keys are locked with a passphrase of this run alone, never shown: commands "
            "that sign (serve, evidence export) cannot use them; run the demo with "
            "CONGVAN_KEY_PASSPHRASE set for ones they can."
        )
    at = f"{ended.astimezone(VIETNAM):%Y-%m-%d %H:%M} (Vietnam time)"
    if ended <= datetime.now(UTC):
        print(
            f"Its clock stopped at {at}, before real time: what it recorded is dated up to "
            "then, and evidence bundles exported from it verify at once."
        )
        return
    print(
        f"Its clock ran ahead to {at}: what it recorded is dated up to then, and an "
        "evidence bundle exported before then holds CRLs and anchors made after its export "
        "(not verified): run the demo with --start a day or more back for bundles that "
        "verify at once."
    )
