"""Random walks of the real engine on a real database: refusals, versions, trail, dispatches.

A hypothesis ``RuleBasedStateMachine`` creates documents and fires random document and
dispatch events at the engine: events the state offers and events it does not, by the
right person, the wrong role, another agency or the system, with current, missing and
stale versions, while fake guards answer as hypothesis decides. Every example starts from
a fresh migrated database.

A small model predicts each outcome (which error, or where the document goes); a refused
event must leave every table as it was. After every step the database itself must tell a
consistent story: states are declared and were reached only along declared edges, versions
only rise and count the audit entries, the audit chains verify, and a sent document is in
the state its dispatches imply.

A failing walk can take hypothesis a few minutes to shrink: each example has its own database.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import event as note
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from congvan.actions.context import SYSTEM, Actor, Guard, TransitionContext
from congvan.states import DISPATCH, DOCUMENT
from congvan.states import dispatch as d
from congvan.states.dispatch import DOCUMENT_DRIVEN
from congvan.states.errors import (
    ActionUnavailable,
    CongvanError,
    Forbidden,
    GuardFailed,
    InvalidInput,
    NotFound,
    TransitionNotAllowed,
    UnknownEvent,
    VersionConflict,
)
from congvan.states.machine import DERIVED_EVENT, DISPATCHED, allowed_events, derive_document_state
from congvan.states.policy import CREATE_ROLES, EVENT_ROLES, REASON_REQUIRED, ROLES
from congvan.states.spec import MachineSpec
from congvan.storage.audit import AuditEvent
from congvan.storage.audit_checks import verify_chains
from congvan.storage.clock import FrozenClock
from congvan.workflow.bootstrap import Runtime
from congvan.workflow.engine import Engine, FireResult
from tests.conftest import Boot
from tests.databases import Databases
from tests.factories import (
    AGENCY_ID,
    OTHER_AGENCY_ID,
    SAMPLE_FIELDS,
    SAMPLE_RECIPIENTS,
    actor,
    add_agency,
    does_nothing,
    dump_tables,
    job_done,
    pipeline,
    send_document,
)

# Guards this installation does not provide for real; the walk decides their answers.
FAKE_GUARDS = (
    "checks_cleared",
    "dated_this_year",
    "signer_has_authority",
    "signature_valid",
    "not_duplicate",
)
# Guards that read the dispatches, and the state of the document each one asks for.
DISPATCH_GUARDS = {
    "all_delivered": "delivered",
    "all_acknowledged": "acknowledged",
    "any_failed": "failed",
}
# What the bare installation lacks: signing, and delivering to recipients.
UNINSTALLED = frozenset(
    {"signature_valid", "attach_signature", "deliver_dispatches", "send_status"}
)
MAX_DOCUMENTS = 3
MAX_ATTEMPTS = 2  # small, so that a retry runs out of attempts within a walk

# Recall, update and replace, and the recipients' answers to them, are walked end to end
# between two installations (test_recall.py); this walk keeps to the sending's life.
OUTSIDE_THE_WALK = frozenset({"recall", "update", "recalled", "replaced", "agree", "decline"})
DERIVED_EVENTS = tuple(
    t.trigger for t in DOCUMENT.transitions if t.derived and t.trigger not in OUTSIDE_THE_WALK
)
DECLARED_NOT_DERIVED = tuple(
    e for e in DOCUMENT.events if e not in DERIVED_EVENTS and e not in OUTSIDE_THE_WALK
)
WALKED_DISPATCH_EVENTS = tuple(e for e in sorted(DISPATCH.events) if e not in OUTSIDE_THE_WALK)
UNKNOWN_EVENT = "archive"
ORGANS = ("000.00.01.H57", "000.00.02.H57", "000.00.03.H57", "000.00.04.H57")
NO_DOCUMENT = "no-such-document"
NO_DISPATCH = "no-such-dispatch"

# Mostly yes, so that walks of 30 steps get past signing and sending.
MOSTLY = st.sampled_from((True,) * 9 + (False,))

# -- what the walk believes ---------------------------------------------------------------


@dataclass
class DocumentModel:
    agency_id: str
    recipients: list[str]
    place: str
    state: str = DOCUMENT.initial
    version: int = 1
    dispatches: list[str] = field(default_factory=list)


@dataclass
class DispatchModel:
    document_id: str
    organ_id: str
    state: str = DISPATCH.initial
    attempts: int = 0


@dataclass(frozen=True)
class Expected:
    """What the model predicts: refused with one of ``errors``, or moved to ``dest``."""

    errors: tuple[type[CongvanError], ...] = ()
    dest: str | None = None
    failed: tuple[str, ...] = ()  # the guards a GuardFailed must name

    @property
    def refused(self) -> bool:
        return bool(self.errors)


def refused(*errors: type[CongvanError], failed: tuple[str, ...] = ()) -> Expected:
    return Expected(errors=errors, failed=failed)


def forward_events(state: str) -> list[str]:
    """Allowed events that move a document on (not a loop, not back to draft)."""
    return [
        e
        for e in allowed_events(DOCUMENT, state)
        if any(t.dest not in (state, DOCUMENT.initial) for t in DOCUMENT.edges(e, state))
    ]


def dispatch_events(state: str) -> list[str]:
    """The events ``fire_dispatch`` may take on a dispatch in ``state``."""
    return [e for e in allowed_events(DISPATCH, state) if e not in DOCUMENT_DRIVEN]


def is_edge(spec: MachineSpec, event: str, source: str, dest: str) -> bool:
    return any(
        t.trigger == event and source in t.source and t.dest == dest for t in spec.transitions
    )


# -- the walk -------------------------------------------------------------------------------


class EngineWalk(RuleBasedStateMachine):
    """The engine on one fresh database, with the model of what it should have done."""

    def __init__(self, boot: Boot, databases: Databases, db_kind: str) -> None:
        super().__init__()
        self._databases = databases
        self._url = databases.new(db_kind).url
        self.clock = FrozenClock()  # each walk starts at the same time
        self.truth = dict.fromkeys(FAKE_GUARDS, True)
        self.runtime: Runtime = boot(
            self._url,
            clock=self.clock,
            guards={name: self._fake_guard(name) for name in FAKE_GUARDS},
            effects={"attach_signature": does_nothing, "seal_packages": does_nothing},
            jobs={"run_review_checks": job_done, "deliver_dispatches": job_done},
            dispatch_max_attempts=MAX_ATTEMPTS,
        )
        # The same database, served by an installation that cannot sign or deliver yet.
        full = self.runtime.engine
        self.bare = Engine(
            full.open_uow,
            guards={k: v for k, v in full.guards.items() if k not in UNINSTALLED},
            effects={k: v for k, v in full.effects.items() if k not in UNINSTALLED},
            jobs=sorted(full.jobs - UNINSTALLED),
            clock=self.clock,
            job_deadline_seconds=300,
            dispatch_max_attempts=MAX_ATTEMPTS,
            unavailable=UNINSTALLED,
        )
        add_agency(self.runtime, AGENCY_ID)
        add_agency(self.runtime, OTHER_AGENCY_ID, "UBND tỉnh Quảng Trị", "UBND")
        self.documents: dict[str, DocumentModel] = {}
        self.dispatches: dict[str, DispatchModel] = {}
        self.highest_version: dict[str, int] = {}
        self.places = itertools.count()

    def teardown(self) -> None:
        self.runtime.stop()
        self._databases.drop(self._url)

    def _fake_guard(self, name: str) -> Guard:
        def guard(_ctx: TransitionContext) -> tuple[bool, str]:
            return self.truth[name], f"{name} does not hold (as the walk decided)"

        return guard

    # -- rules ------------------------------------------------------------------------------

    # Each walk starts with a draft. No rule has a precondition: a rule that has nothing to
    # fire falls back to another, so swarm testing (which switches whole rules off) wastes
    # no step.

    @initialize(data=st.data())
    def a_first_draft(self, data: st.DataObject) -> None:
        self._create(data, actor("clerk"))

    @rule(data=st.data())
    def create_a_document(self, data: st.DataObject) -> None:
        # A few documents taken far beat many left as drafts.
        if len(self.documents) < MAX_DOCUMENTS:
            self._create(data)
        else:
            self._fire_document_event(data)

    @rule(data=st.data())
    def fire_a_document_event(self, data: st.DataObject) -> None:
        if self.documents:
            self._fire_document_event(data)
        else:
            self._create(data)

    @rule(data=st.data())
    def fire_a_dispatch_event(self, data: st.DataObject) -> None:
        if self.dispatches:
            self._fire_dispatch_event(data)
        else:
            self._fire_document_event(data)

    # -- steps ------------------------------------------------------------------------------

    def _create(self, data: st.DataObject, who: Actor | None = None) -> None:
        self._tick(data)
        organs = data.draw(
            st.lists(st.sampled_from(ORGANS), min_size=1, max_size=3, unique=True),
            label="recipients",
        )
        if who is None:
            who = data.draw(
                st.sampled_from(
                    (
                        *[actor("clerk")] * 4,
                        actor("clerk", OTHER_AGENCY_ID),
                        actor("reviewer"),
                        SYSTEM,
                    )
                ),
                label="creator",
            )
        allowed = not who.is_system and bool(who.roles & CREATE_ROLES)
        # Only a refusal is compared with the snapshot, and dumping every table costs.
        before = None if allowed else dump_tables(self.runtime)
        try:
            created = self.runtime.engine.create_document(
                who, SAMPLE_FIELDS, [{"organ_id": o, "name": o} for o in organs], []
            )
        except Forbidden:
            assert not allowed
            assert before == dump_tables(self.runtime)
            note("create: Forbidden")
            return
        assert allowed
        assert (DOCUMENT.initial, 1) == (created["state"], created["version"])
        assert who.agency_id is not None
        self.documents[created["id"]] = DocumentModel(
            agency_id=who.agency_id, recipients=organs, place=SAMPLE_FIELDS["place"]
        )
        note("create: done")

    def _fire_document_event(self, data: st.DataObject) -> None:
        self._tick(data)
        document_id = self._draw_document(data)
        doc = self.documents.get(document_id)
        state = doc.state if doc else DOCUMENT.initial
        kind = data.draw(
            st.sampled_from(
                ("forward",) * 4 + ("offered",) * 3 + ("declared", "derived", "unknown")
            ),
            label="event kind",
        )
        if kind == "forward" and doc and not forward_events(state):
            # A sent document moves on when its dispatches do.
            movable = [i for i in doc.dispatches if dispatch_events(self.dispatches[i].state)]
            if movable:
                self._fire_dispatch_event(data, among=movable)
                return
        offered = [e for e in allowed_events(DOCUMENT, state) if e not in OUTSIDE_THE_WALK]
        choices = {
            "forward": forward_events(state) or offered or DECLARED_NOT_DERIVED,
            "offered": offered or DECLARED_NOT_DERIVED,
            "declared": DECLARED_NOT_DERIVED,
            "derived": DERIVED_EVENTS,
            "unknown": (UNKNOWN_EVENT,),
        }[kind]
        event = data.draw(st.sampled_from(sorted(choices)), label="event")
        who = self._draw_actor(data, event, doc.agency_id if doc else AGENCY_ID)
        expected_version = self._draw_version(data, doc.version if doc else 1)
        payload = self._draw_payload(data, event, doc)
        for name in FAKE_GUARDS:
            self.truth[name] = data.draw(MOSTLY, label=name)
        bare = not data.draw(MOSTLY, label="fully installed")
        engine = self.bare if bare else self.runtime.engine

        expected = self._expect_document_event(
            doc, event, who, expected_version, payload, UNINSTALLED if bare else frozenset()
        )
        before = dump_tables(self.runtime) if expected.refused else None
        try:
            result = engine.fire(
                document_id, event, who, expected_version=expected_version, data=payload
            )
        except CongvanError as exc:
            note(f"document {event}: {type(exc).__name__}")
            self._check_refusal(exc, expected, before)
            if isinstance(exc, TransitionNotAllowed | UnknownEvent):
                # The engine offers exactly what the declared graph offers.
                assert event not in allowed_events(DOCUMENT, state, include_derived=True)
                assert allowed_events(DOCUMENT, state) == exc.details["allowed"]
            return
        note(f"document {event}: {state} -> {result.to_state}")
        assert doc is not None
        assert not expected.refused, f"{event} by {who.name} should be refused: {expected}"
        # What succeeded was offered in the state it started from.
        assert event in allowed_events(DOCUMENT, state, include_derived=True)
        assert (document_id, event, state) == (result.document_id, result.event, result.from_state)
        assert expected.dest is not None
        doc.state = expected.dest
        self._apply_document_effects(document_id, doc, event, payload)
        self._check_moved(document_id, doc, result)

    def _fire_dispatch_event(self, data: st.DataObject, among: list[str] | None = None) -> None:
        self._tick(data)
        if data.draw(MOSTLY, label="known dispatch"):
            dispatch_id = data.draw(
                st.sampled_from(among or sorted(self.dispatches)), label="dispatch"
            )
        else:
            dispatch_id = NO_DISPATCH
        dispatch = self.dispatches.get(dispatch_id)
        state = dispatch.state if dispatch else DISPATCH.initial
        offered = [e for e in dispatch_events(state) if e not in OUTSIDE_THE_WALK]
        anything = not offered or not data.draw(MOSTLY, label="offered only")
        event = data.draw(
            st.sampled_from(WALKED_DISPATCH_EVENTS if anything else offered), label="event"
        )
        owner = self.documents[dispatch.document_id].agency_id if dispatch else AGENCY_ID
        other = OTHER_AGENCY_ID if owner == AGENCY_ID else AGENCY_ID
        who = data.draw(
            st.sampled_from((*[SYSTEM] * 8, actor("clerk", owner), actor("clerk", other))),
            label="actor",
        )
        payload = {"error": "02: sai thể thức"} if data.draw(st.booleans(), label="error") else {}

        expected = self._expect_dispatch_event(dispatch, event, who)
        before = dump_tables(self.runtime) if expected.refused else None
        try:
            result = self.runtime.engine.fire_dispatch(dispatch_id, event, actor=who, data=payload)
        except CongvanError as exc:
            note(f"dispatch {event}: {type(exc).__name__}")
            self._check_refusal(exc, expected, before)
            if isinstance(exc, TransitionNotAllowed):
                assert event in DOCUMENT_DRIVEN or event not in allowed_events(DISPATCH, state)
                # The refusal offers exactly the events fire_dispatch takes.
                assert dispatch_events(state) == exc.details["allowed"]
            return
        note(f"dispatch {event}: {state} -> {result.to_state}")
        assert dispatch is not None
        assert not expected.refused, f"dispatch {event} should be refused: {expected}"
        assert event in offered
        assert (f"dispatch.{event}", state) == (result.event, result.from_state)
        assert expected.dest == result.to_state
        dispatch.state = result.to_state
        dispatch.attempts += 1 if event == "start" else 0
        self._check_moved(dispatch.document_id, self.documents[dispatch.document_id], result)

    # -- drawing ----------------------------------------------------------------------------

    def _tick(self, data: st.DataObject) -> None:
        self.clock.advance(microseconds=data.draw(st.integers(0, 10**9), label="elapsed µs"))

    def _draw_document(self, data: st.DataObject) -> str:
        if data.draw(MOSTLY, label="known document"):
            return data.draw(st.sampled_from(sorted(self.documents)), label="document")
        return NO_DOCUMENT

    def _draw_actor(self, data: st.DataObject, event: str, owner: str) -> Actor:
        roles = sorted(EVENT_ROLES.get(event, ()))
        others = sorted(set(ROLES) - set(roles))
        kind = data.draw(
            st.sampled_from(("right",) * 7 + ("wrong role", "wrong agency", "system")),
            label="actor kind",
        )
        if kind == "system":
            return SYSTEM
        if kind == "wrong role" or not roles:
            return actor(data.draw(st.sampled_from(others), label="role"), owner)
        role = data.draw(st.sampled_from(roles), label="role")
        if kind == "wrong agency":
            return actor(role, OTHER_AGENCY_ID if owner == AGENCY_ID else AGENCY_ID)
        return actor(role, owner)

    def _draw_version(self, data: st.DataObject, current: int) -> int | None:
        kind = data.draw(
            st.sampled_from((None,) * 4 + ("current",) * 4 + ("stale", "ahead")),
            label="expected version",
        )
        if kind == "current":
            return current
        if kind == "stale":
            return current - data.draw(st.integers(1, 3), label="behind by")
        if kind == "ahead":
            return current + 1
        return None

    def _draw_payload(
        self, data: st.DataObject, event: str, doc: DocumentModel | None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        if event in REASON_REQUIRED:
            reason = data.draw(st.sampled_from(("Thiếu nơi nhận",) * 6 + ("", " ")), label="reason")
            if reason or data.draw(st.booleans(), label="send an empty reason"):
                payload["reason"] = reason
        if event == "edit":
            kind = data.draw(
                st.sampled_from(("new place", "recipients", "same place", "nothing")),
                label="edit",
            )
            if kind == "new place":
                payload["fields"] = {"place": f"Huế {next(self.places)}"}
            elif kind == "same place":
                payload["fields"] = {"place": doc.place if doc else SAMPLE_FIELDS["place"]}
            elif kind == "recipients":
                organs = data.draw(
                    st.lists(st.sampled_from(ORGANS), max_size=3, unique=True), label="recipients"
                )
                payload["recipients"] = [{"organ_id": o, "name": o} for o in organs]
        if event == "waive":
            payload["code"] = data.draw(st.sampled_from(("", "formatting.place_date")))
        return payload

    # -- the model's predictions ------------------------------------------------------------

    def _holds(self, name: str, doc: DocumentModel) -> bool:
        if name in ("no_request_awaiting", "never_updated", "original_settled"):
            # Requests and replacements are outside the walk: none awaits, none updated
            # it, none replaces another
            return True
        if name == "a_dispatch_failed":
            return any(self.dispatches[i].state == d.FAILED for i in doc.dispatches)
        if name in DISPATCH_GUARDS:
            return self._derived_state(doc) == DISPATCH_GUARDS[name]
        return self.truth[name]

    def _derived_state(self, doc: DocumentModel) -> str:
        return derive_document_state(self.dispatches[i].state for i in doc.dispatches)

    def _expect_document_event(
        self,
        doc: DocumentModel | None,
        event: str,
        who: Actor,
        expected_version: int | None,
        payload: dict[str, Any],
        uninstalled: frozenset[str],
    ) -> Expected:
        """The engine's checks, in the engine's order."""
        if doc is None or (not who.is_system and who.agency_id != doc.agency_id):
            return refused(NotFound)
        # The role is judged before anything the person sent (a reason among it)
        if (
            not who.is_system
            and event in DOCUMENT.events
            and not who.roles & EVENT_ROLES.get(event, frozenset())
        ):
            return refused(Forbidden)
        if (
            not who.is_system
            and event not in DOCUMENT.events
            and not who.roles & frozenset().union(*EVENT_ROLES.values())
        ):
            return refused(Forbidden)  # the state is told only to who fires events here
        if event in REASON_REQUIRED and not str(payload.get("reason") or "").strip():
            return refused(InvalidInput)
        if expected_version is not None and expected_version != doc.version:
            return refused(VersionConflict)
        edges = DOCUMENT.edges(event, doc.state)
        needs = {n for t in edges for n in (*t.conditions, *t.effects, *t.actions)}
        if needs & uninstalled:
            return refused(ActionUnavailable)
        if event not in DOCUMENT.events:
            return refused(UnknownEvent)  # no such event: the caller's mistake (422)
        if not edges:
            return refused(TransitionNotAllowed)
        failed: list[str] = []
        for edge in edges:
            misses = [c for c in edge.conditions if not self._holds(c, doc)]
            if not misses:
                break
            failed.extend(m for m in misses if m not in failed)
        else:
            return refused(GuardFailed, failed=tuple(failed))
        changes = "recipients" in payload or payload.get("fields", {}).get("place") not in (
            None,
            doc.place,
        )
        if "apply_edit" in edge.effects and not changes:
            return refused(InvalidInput)  # the edit changes nothing
        if "waive_check" in edge.effects:
            # No worker runs here, so no check has a result to waive.
            return refused(InvalidInput, NotFound)
        if "create_dispatches" in edge.effects and not doc.recipients:
            return refused(InvalidInput)
        return Expected(dest=edge.dest)

    def _expect_dispatch_event(
        self, dispatch: DispatchModel | None, event: str, who: Actor
    ) -> Expected:
        if dispatch is None:
            return refused(NotFound)
        owner = self.documents[dispatch.document_id].agency_id
        if not who.is_system and who.agency_id != owner:
            return refused(NotFound)
        if not who.is_system:
            return refused(Forbidden)
        if event in DOCUMENT_DRIVEN:
            return refused(TransitionNotAllowed)
        edges = DISPATCH.edges(event, dispatch.state)
        if not edges:
            return refused(TransitionNotAllowed)
        for edge in edges:
            if "attempts_left" not in edge.conditions or dispatch.attempts < MAX_ATTEMPTS:
                return Expected(dest=edge.dest)
        return refused(GuardFailed, failed=("attempts_left",))

    # -- checks made in the rules -----------------------------------------------------------

    def _check_refusal(
        self,
        exc: CongvanError,
        expected: Expected,
        before: dict[str, list[tuple[Any, ...]]] | None,
    ) -> None:
        assert expected.refused, f"refused with {exc!r}, but the model expected {expected}"
        assert isinstance(exc, expected.errors), f"{exc!r}, but the model expected {expected}"
        if isinstance(exc, GuardFailed):
            assert list(expected.failed) == exc.details["failed"]
        # A refused event changes nothing at all: no version, audit entry, job or dispatch.
        assert before == dump_tables(self.runtime)

    def _apply_document_effects(
        self, document_id: str, doc: DocumentModel, event: str, payload: dict[str, Any]
    ) -> None:
        if event == "edit":
            doc.place = payload.get("fields", {}).get("place", doc.place)
            if "recipients" in payload:
                doc.recipients = [r["organ_id"] for r in payload["recipients"]]
        if event == "send":
            assert [] == doc.dispatches, "a document is sent once; resend reuses dispatches"
            with self.runtime.uow(readonly=True) as uow:
                rows = uow.dispatches.for_document(document_id)
            assert sorted(doc.recipients) == [r.organ_id for r in rows]
            for row in rows:
                self.dispatches[row.id] = DispatchModel(document_id, row.organ_id)
            doc.dispatches = [row.id for row in rows]
        if event == "resend":
            for dispatch_id in doc.dispatches:
                dispatch = self.dispatches[dispatch_id]
                if dispatch.state == d.FAILED:  # a refusal stands
                    dispatch.state, dispatch.attempts = d.PENDING, 0

    def _check_moved(self, document_id: str, doc: DocumentModel, result: FireResult) -> None:
        """Follow derived events as the engine should, then compare with its answer."""
        derived = []
        if doc.state in DISPATCHED:
            target = self._derived_state(doc)
            event = DERIVED_EVENT.get(target)
            if target != doc.state and event in allowed_events(
                DOCUMENT, doc.state, include_derived=True
            ):
                derived.append(event)
                doc.state = target
        assert derived == result.derived
        for event in derived:
            note(f"derived {event}")
        doc.version += 1 + len(derived)
        assert doc.version == result.version
        if not result.event.startswith("dispatch."):
            assert doc.state == result.to_state

    # -- invariants, read from the database ---------------------------------------------------

    @invariant()
    def the_database_tells_a_consistent_story(self) -> None:
        with self.runtime.uow(readonly=True) as uow:
            rows = {
                r["id"]: dict(r)
                for r in uow.conn.execute(text("SELECT id, state, version FROM documents"))
                .mappings()
                .all()
            }
            histories = {doc_id: uow.audit.history(doc_id) for doc_id in rows}
            dispatches = {doc_id: uow.dispatches.for_document(doc_id) for doc_id in rows}
            problems = {doc: p for doc, p in verify_chains(uow.conn) if p is not None}

        assert {} == problems
        assert set(self.documents) == set(rows)
        for doc_id, row in rows.items():
            doc = self.documents[doc_id]
            trail = histories[doc_id]
            states = {r.id: r.state for r in dispatches[doc_id]}
            # Declared states only, and what the model says.
            assert row["state"] in DOCUMENT.states
            assert all(s in DISPATCH.states for s in states.values())
            assert (doc.state, doc.version) == (row["state"], row["version"])
            assert {i: self.dispatches[i].state for i in doc.dispatches} == states
            assert {i: self.dispatches[i].attempts for i in doc.dispatches} == {
                r.id: r.attempts for r in dispatches[doc_id]
            }
            # Versions only rise, and each one has exactly one audit entry.
            assert row["version"] >= self.highest_version.get(doc_id, 1)
            self.highest_version[doc_id] = row["version"]
            assert list(range(1, row["version"] + 1)) == [e.version for e in trail]
            assert [e.at for e in trail] == sorted(e.at for e in trail)
            # The trail replays, edge by edge, to the states in the database.
            assert (row["state"], states) == replay(trail)
            # A sent document is in the state its dispatches imply.
            if row["state"] in DISPATCHED:
                assert states
                assert derive_document_state(states.values()) == row["state"]
            else:
                assert {} == states


def replay(trail: list[AuditEvent]) -> tuple[str, dict[str, str]]:
    """Walk an audit trail along the declared edges; returns the document and dispatch states."""
    assert ("create", "", DOCUMENT.initial) == (
        trail[0].event,
        trail[0].from_state,
        trail[0].to_state,
    )
    state = DOCUMENT.initial
    dispatches: dict[str, str] = {}
    for entry in trail[1:]:
        event, source, dest = entry.event, entry.from_state, entry.to_state
        if event.startswith("dispatch."):
            dispatch_id = entry.payload["dispatch_id"]
            assert dispatches[dispatch_id] == source
            assert is_edge(DISPATCH, event.removeprefix("dispatch."), source, dest), entry
            dispatches[dispatch_id] = dest
            continue
        assert state == source, entry
        assert is_edge(DOCUMENT, event, source, dest), entry
        state = dest
        if event == "send":
            dispatches.update(dict.fromkeys(entry.payload["dispatches"].values(), d.PENDING))
        if event == "resend":
            for dispatch_id, s in dispatches.items():
                if s == d.FAILED:
                    # The effect writes the rows; the dispatch graph must allow the move.
                    assert is_edge(DISPATCH, "resend", s, d.PENDING)
                    dispatches[dispatch_id] = d.PENDING
    return state, dispatches


WALK = settings(
    max_examples=25,
    stateful_step_count=30,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_random_events_on_sqlite(boot: Boot, databases: Databases) -> None:
    run_state_machine_as_test(lambda: EngineWalk(boot, databases, "sqlite"), settings=WALK)


@pytest.mark.postgres
def test_random_events_on_postgres(boot: Boot, databases: Databases) -> None:
    # Fewer and shorter walks: each example creates and drops a database.
    run_state_machine_as_test(
        lambda: EngineWalk(boot, databases, "postgres"),
        settings=settings(WALK, max_examples=5, stateful_step_count=20),
    )


# -- found by the walk ----------------------------------------------------------------------


def test_a_dispatch_refusal_offers_only_what_fire_dispatch_takes(
    make_runtime: Callable[..., Runtime], make_document: Callable[..., str]
) -> None:
    # Given a sent document whose only recipient refused it
    runtime = make_runtime(**pipeline())
    doc = make_document(runtime, recipients=SAMPLE_RECIPIENTS[:1])
    (dispatch,) = send_document(runtime, doc).values()
    runtime.engine.fire_dispatch(dispatch, "start")
    runtime.engine.fire_dispatch(dispatch, "refuse")

    # When an event the rejected dispatch does not take is fired on it
    with pytest.raises(TransitionNotAllowed) as acknowledge:
        runtime.engine.fire_dispatch(dispatch, "acknowledge")

    # Then the refusal offers nothing, as when resend itself is fired on it: a dispatch is
    # resent only by its document's resend
    with pytest.raises(TransitionNotAllowed) as resend:
        runtime.engine.fire_dispatch(dispatch, "resend")
    assert [] == resend.value.details["allowed"]
    assert [] == acknowledge.value.details["allowed"]
