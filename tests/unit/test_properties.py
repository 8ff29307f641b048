"""Random walks over the pure layer: document and dispatch events, derived events, audit chain.

The model below plays the engine's part without a database: it fires document events
that ``allowed_events`` offers, fires random dispatch events on random dispatches, follows
up with derived document events as ``Engine._follow_derived`` does, and appends a
hash-chained audit entry for every transition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from congvan.states import DISPATCH, DOCUMENT
from congvan.states import dispatch as d
from congvan.states import document as doc
from congvan.states.errors import GuardFailed, TransitionNotAllowed, UnknownEvent
from congvan.states.machine import (
    DERIVED_EVENT,
    DISPATCHED,
    Step,
    allowed_events,
    derive_document_state,
    guard_names,
    resolve,
)
from congvan.states.spec import MachineSpec
from congvan.storage.audit import GENESIS, NewEntry, digest, entry_hash, make_entry
from congvan.storage.clock import as_utc

# Guards that read the dispatches (as actions/guards.py does) and the state each asks for.
DISPATCH_GUARDS = {
    "all_delivered": doc.DELIVERED,
    "all_acknowledged": doc.ACKNOWLEDGED,
    "any_failed": doc.FAILED,
}
# Resend asks for a dispatch that ran out of attempts (a refusal stands).
RESENDABLE = "a_dispatch_failed"
# Guards that look elsewhere (checks, certificates, duplicates): any answer may come.
OTHER_GUARDS = sorted(guard_names(DOCUMENT) - set(DISPATCH_GUARDS) - {RESENDABLE})

# A dispatch is only ever resent by the document's ``resend`` (reset_failed_dispatches).
# Fired on its own, a dispatch's ``resend`` would leave the document ``failed`` with no
# derived edge back to ``sent``, so the walk does not fire it directly.
# Nor does it fire a recipient's answer to a recall or update (agree, decline): the
# dispatches it walks carry the document, never a request.
DISPATCH_WALK_EVENTS = tuple(e for e in DISPATCH.events if e not in ("resend", "agree", "decline"))

ICT = timezone(timedelta(hours=7))
ZONES = (UTC, ICT, None)  # None: a naive timestamp, as SQLite hands it back
# Guards mostly hold, so that walks of 40 steps get past signing and sending.
MOSTLY = st.sampled_from((True, True, True, False))
Guard = Callable[[str], tuple[bool, str]]


def forward_events(state: str) -> list[str]:
    """Allowed events that move a document on (not a loop, not back to draft)."""
    return [
        e
        for e in allowed_events(DOCUMENT, state)
        if any(t.dest not in (state, doc.DRAFT) for t in DOCUMENT.edges(e, state))
    ]


def is_edge(spec: MachineSpec, event: str, source: str, dest: str) -> bool:
    return any(
        t.trigger == event and source in t.source and t.dest == dest for t in spec.transitions
    )


class PureLayerWalk(RuleBasedStateMachine):
    """One document, its dispatches, its version and its audit chain."""

    def __init__(self) -> None:
        super().__init__()
        self.state = DOCUMENT.initial
        self.dispatches: list[str] = []
        self.version = 0
        self.highest_version_seen = 0
        self.entries: list[NewEntry] = []
        self.verified = 0
        self.refusals_checked: set[str] = set()
        self.now = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
        self.zone: timezone | None = UTC
        self._append("create", "", DOCUMENT.initial, {"recipients": []})

    # -- the engine's part -------------------------------------------------------------------

    def _stamp(self) -> datetime:
        self.now += timedelta(seconds=1, microseconds=len(self.entries))
        if self.zone is None:
            return self.now.replace(tzinfo=None)
        return self.now.astimezone(self.zone)

    def _append(self, event: str, source: str, dest: str, payload: Mapping[str, Any]) -> None:
        self.version += 1
        self.entries.append(
            make_entry(
                prev_hash=self.entries[-1].hash if self.entries else GENESIS,
                document_id="doc-1",
                version=self.version,
                actor="system",
                event=event,
                from_state=source,
                to_state=dest,
                at=self._stamp(),
                payload=payload,
            )
        )

    def _guard(self, truth: Mapping[str, bool]) -> Guard:
        def guard(name: str) -> tuple[bool, str]:
            if name == RESENDABLE:
                return d.FAILED in self.dispatches, "no dispatch failed"
            if name in DISPATCH_GUARDS:
                derived = derive_document_state(self.dispatches)
                return derived == DISPATCH_GUARDS[name], f"dispatches say {derived}"
            return truth[name], f"{name} does not hold"

        return guard

    def _move_document(self, step: Step, payload: Mapping[str, Any]) -> None:
        assert step.source == self.state
        assert is_edge(DOCUMENT, step.event, step.source, step.dest)
        self.state = step.dest
        self._append(step.event, step.source, step.dest, payload)

    def _apply_effects(self, step: Step, recipients: int) -> None:
        if "create_dispatches" in step.edge.effects:
            assert not self.dispatches, "a document is sent once; resend reuses dispatches"
            self.dispatches = [DISPATCH.initial] * recipients
        if "reset_failed_dispatches" in step.edge.effects:
            for i, s in enumerate(self.dispatches):
                if s == d.FAILED:
                    # The effect writes rows directly; the dispatch graph must allow it.
                    assert is_edge(DISPATCH, "resend", s, d.PENDING)
                    self.dispatches[i] = d.PENDING

    def _follow_derived(self) -> None:
        if self.state not in DISPATCHED:
            return
        target = derive_document_state(self.dispatches)
        if target == self.state:
            return
        event = DERIVED_EVENT.get(target)
        if event is None or event not in allowed_events(DOCUMENT, self.state, include_derived=True):
            return
        # The dispatch guards agree with derive_document_state, so this cannot fail.
        step = resolve(DOCUMENT, self.state, event, self._guard({}))
        assert step.dest == target
        self._move_document(step, {})

    # -- rules -------------------------------------------------------------------------------
    # Neither rule has a precondition: each falls back to the other kind of event when its
    # own kind has nothing to fire, so no step is wasted and swarm testing (which switches
    # whole rules off) never leaves a state with no rule to run.

    @rule(data=st.data(), forward=st.booleans())
    def fire_a_document_event(self, data: st.DataObject, forward: bool) -> None:
        if allowed_events(DOCUMENT, self.state):
            self._document_step(data, forward)
        else:
            self._dispatch_step(data)

    @rule(data=st.data())
    def fire_a_dispatch_event(self, data: st.DataObject) -> None:
        if self.dispatches:
            self._dispatch_step(data)
        else:
            self._document_step(data, forward=False)

    def _document_step(self, data: st.DataObject, forward: bool) -> None:
        # Half the time only events that move the document on, so walks reach sending.
        events = (forward and forward_events(self.state)) or allowed_events(DOCUMENT, self.state)
        event = data.draw(st.sampled_from(events), label="document event")
        asked = sorted({c for t in DOCUMENT.edges(event, self.state) for c in t.conditions})
        truth = {g: data.draw(MOSTLY, label=g) for g in asked if g in OTHER_GUARDS}
        recipients = data.draw(st.integers(min_value=1, max_value=3), label="recipients")
        self.zone = data.draw(st.sampled_from(ZONES), label="zone")
        before = (self.state, self.version, list(self.dispatches))
        guard = self._guard(truth)
        try:
            step = resolve(DOCUMENT, self.state, event, guard)
        except GuardFailed as exc:
            assert set(exc.details["failed"]) == {g for g in asked if not guard(g)[0]}
            assert (self.state, self.version, self.dispatches) == before
            return
        self._apply_effects(step, recipients)
        self._move_document(step, {"recipients": recipients} if step.edge.effects else {})
        self._follow_derived()

    def _dispatch_step(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.dispatches) - 1), label="dispatch")
        source = self.dispatches[index]
        offered = [e for e in allowed_events(DISPATCH, source) if e in DISPATCH_WALK_EVENTS]
        # Mostly events the dispatch allows; now and then any event, to be refused.
        anything = data.draw(MOSTLY, label="offered only") is False
        choices = DISPATCH_WALK_EVENTS if anything or not offered else offered
        event = data.draw(st.sampled_from(choices), label="dispatch event")
        attempts_left = data.draw(st.booleans(), label="attempts_left")
        self.zone = data.draw(st.sampled_from(ZONES), label="zone")
        before = (self.state, self.version, list(self.dispatches))
        try:
            step = resolve(
                DISPATCH, source, event, lambda name: (attempts_left, "no attempts left")
            )
        except TransitionNotAllowed as exc:
            assert event not in allowed_events(DISPATCH, source)
            assert exc.details["allowed"] == allowed_events(DISPATCH, source)
            assert (self.state, self.version, self.dispatches) == before
            return
        except GuardFailed as exc:
            assert not attempts_left
            assert exc.details["failed"] == ["attempts_left"]
            assert (self.state, self.version, self.dispatches) == before
            return
        assert is_edge(DISPATCH, event, source, step.dest)
        self.dispatches[index] = step.dest
        self._append(f"dispatch.{event}", source, step.dest, {"dispatch": index})
        self._follow_derived()

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def states_are_declared(self) -> None:
        assert self.state in DOCUMENT.states
        assert all(s in DISPATCH.states for s in self.dispatches)

    @invariant()
    def events_not_offered_are_refused_without_change(self) -> None:
        # resolve is pure: once per state and walk is enough.
        if self.state in self.refusals_checked:
            return
        self.refusals_checked.add(self.state)
        offered = allowed_events(DOCUMENT, self.state, include_derived=True)
        before = (self.state, self.version, list(self.dispatches))
        for event in [*sorted(set(DOCUMENT.events) - set(offered)), "archive"]:
            try:
                resolve(DOCUMENT, self.state, event, self._guard({}))
            except (TransitionNotAllowed, UnknownEvent) as exc:
                assert isinstance(exc, UnknownEvent) == (event == "archive")
                assert exc.details["allowed"] == allowed_events(DOCUMENT, self.state)
            else:
                raise AssertionError(f"{event!r} was allowed in {self.state!r}")
        assert (self.state, self.version, self.dispatches) == before

    @invariant()
    def version_only_grows(self) -> None:
        assert self.version >= self.highest_version_seen
        self.highest_version_seen = self.version
        assert [e.version for e in self.entries] == list(range(1, self.version + 1))

    @invariant()
    def chain_verifies(self) -> None:
        # Entries never change once made, so each step checks only the new ones.
        for i in range(self.verified, len(self.entries)):
            e = self.entries[i]
            prev = self.entries[i - 1].hash if i else GENESIS
            assert e.prev_hash == prev
            assert digest(e.payload) == e.payload_digest
            recomputed = entry_hash(
                prev_hash=prev,
                document_id=e.document_id,
                version=e.version,
                actor=e.actor,
                event=e.event,
                from_state=e.from_state,
                to_state=e.to_state,
                at=as_utc(e.at),  # as read back from storage
                payload_digest=e.payload_digest,
            )
            assert recomputed == e.hash
        self.verified = len(self.entries)

    @invariant()
    def the_trail_replays_to_the_current_state(self) -> None:
        state = ""
        for e in self.entries:
            if e.event.startswith("dispatch."):
                assert is_edge(
                    DISPATCH, e.event.removeprefix("dispatch."), e.from_state, e.to_state
                )
                continue
            assert e.from_state == state
            if e.event != "create":
                assert is_edge(DOCUMENT, e.event, e.from_state, e.to_state)
            state = e.to_state
        assert state == self.state

    @invariant()
    def a_sent_document_is_what_its_dispatches_say(self) -> None:
        if self.state in DISPATCHED:
            assert self.dispatches
            assert self.state == derive_document_state(self.dispatches)
        else:
            assert self.dispatches == []


PureLayerWalk.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPureLayerWalk = PureLayerWalk.TestCase
