"""``congvan demo``: set up, serve, play the scenes, then check the audit chains and anchors."""

from __future__ import annotations

import secrets
import tempfile
from datetime import datetime
from pathlib import Path

import httpx
from pydantic import SecretStr

from congvan.actions.anchoring import verify_anchors
from congvan.states.timeliness import VIETNAM
from congvan.storage.database import make_engine
from congvan.storage.schema import migrate

from ..api import create_app
from ..bootstrap import bootstrap
from ..letters import sample_pdf
from ..serving import serve_in_thread
from ..settings import Settings
from .cast import PROVINCE, letter_1227, set_up
from .client import Demo, DemoFailed
from .steps import clean_letter, duplicate, format_error, print_timeline, refused_signatures


def run_demo(data_dir: Path | None = None) -> int:
    """Run the demo; non-zero exit when any step does not behave as it should."""
    tmp = None
    if data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="congvan-demo-")
        data_dir = Path(tmp.name)
    passphrase = secrets.token_urlsafe(24)  # this run's keys; never printed
    settings = Settings(
        data_dir=data_dir, relay_poll_seconds=0.05, key_passphrase=SecretStr(passphrase)
    )
    print(f"congvan demo — embedded database in {data_dir}")
    engine = make_engine(settings.db_url)
    migrate(engine)
    runtime = bootstrap(settings, db=engine)
    today = datetime.now(VIETNAM).date().isoformat()
    meta = letter_1227(today)
    try:
        tokens = set_up(runtime, passphrase)
        app = create_app(runtime, background=True)
        with (
            serve_in_thread(app) as base_url,
            httpx.Client(base_url=base_url, timeout=30) as client,
        ):
            print(f"API listening on {base_url}; worker threads, relay and scheduler running")
            demo = Demo(client, tokens)
            first = clean_letter(demo, meta, sample_pdf())
            second = format_error(demo, meta, sample_pdf())
            refused_signatures(demo, runtime, second, passphrase)
            third = duplicate(demo, meta, first)
            for doc_id in (first, second, third):
                print_timeline(demo, doc_id)
        with runtime.uow() as uow:
            anchored = runtime.anchoring.anchor_all(uow, runtime.clock())
            uow.commit()
        print(
            f"\nAudit anchor: the province signed the heads of {anchored.get(PROVINCE[0], 0)} "
            "audit chain(s) with its organisational key (congvan audit anchor)"
        )
        with runtime.uow(readonly=True) as uow:
            results = list(uow.audit.verify())
            anchors = list(verify_anchors(uow, runtime.trust, PROVINCE[0]))
        broken = [(d, p) for d, p in results if p is not None]
        bad = [(seq, p) for seq, p in anchors if p is not None]
        print(f"Audit verification: {len(results)} chain(s) checked, {len(broken)} broken")
        print(f"                    {len(anchors)} anchor(s) checked, {len(bad)} broken")
        for doc, problem in broken:
            print(f"   BROKEN {doc}: {problem}")
        for seq, anchor_problem in bad:
            print(f"   BROKEN anchor {seq}: {anchor_problem}")
        if broken or bad or not anchored.get(PROVINCE[0]):
            return 1
        print("\nDemo finished: every step behaved as expected.")
        return 0
    except DemoFailed as exc:
        print(f"\nDEMO FAILED: {exc}")
        return 1
    finally:
        runtime.stop()
        if tmp is not None:
            tmp.cleanup()
