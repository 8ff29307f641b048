"""The declared machines: their graphs, the events each state allows, and how events resolve."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from datetime import timedelta

import pytest
from transitions import Machine, MachineError

from congvan.states import DISPATCH, DOCUMENT, MACHINES, RECEIVED_DOCUMENT
from congvan.states import dispatch as d
from congvan.states import document as doc
from congvan.states import received as r
from congvan.states.document import CONSEQUENCES
from congvan.states.errors import GuardFailed, TransitionNotAllowed, UnknownEvent
from congvan.states.machine import (
    DERIVED_EVENT,
    DISPATCHED,
    InvalidMachine,
    allowed_events,
    build,
    check_graph,
    derive_document_state,
    guard_names,
    resolve,
)
from congvan.states.policy import EVENT_ROLES, ROLES, Backoff, job_backoff_seconds
from congvan.states.spec import MachineSpec, Transition, edge

# Two edges for one trigger from one source: the first whose guards hold wins.
FORKED = MachineSpec(
    name="forked",
    states=("a", "b", "c", "done"),
    initial="a",
    finals=("done",),
    transitions=(
        edge("go", "a", "b", conditions=("fast", "cheap")),
        edge("go", "a", "c", conditions=("cheap",)),
        edge("go", ("b", "c"), "done"),
        edge("back", ("b", "c"), "a", conditions=("allowed",)),
    ),
)

SPECS = [*MACHINES.values(), FORKED]


def spec_id(spec: MachineSpec) -> str:
    return spec.name


def always(holds: bool) -> Callable[[str], tuple[bool, str]]:
    return lambda name: (holds, f"{name} said {holds}")


def answers(table: Mapping[str, bool]) -> Callable[[str], tuple[bool, str]]:
    return lambda name: (table[name], f"{name} does not hold")


def never_called(name: str) -> tuple[bool, str]:
    raise AssertionError(f"guard {name!r} should not have been asked")


# -- the graphs ----------------------------------------------------------------------------


@pytest.mark.parametrize("spec", MACHINES.values(), ids=spec_id)
def test_each_machine_builds_and_passes_the_graph_check(spec: MachineSpec) -> None:
    check_graph(spec)

    machine = build(spec)

    assert machine.initial == spec.initial
    assert sorted(machine.states) == sorted(spec.states)
    assert sorted(machine.events) == sorted(spec.events)


@pytest.mark.parametrize("spec", MACHINES.values(), ids=spec_id)
def test_final_states_have_no_way_out(spec: MachineSpec) -> None:
    # A final state may record (a dispatch acknowledged takes the recipient's 04–06
    # reports, staying where it is), never leave.
    for final in spec.finals:
        for event in allowed_events(spec, final, include_derived=True):
            assert {t.dest for t in spec.edges(event, final)} == {final}, (final, event)
    assert allowed_events(DOCUMENT, doc.RECALLED, include_derived=True) == []


def small(
    *transitions: Transition,
    states: tuple[str, ...] = ("a", "b", "c"),
    initial: str = "a",
    finals: tuple[str, ...] = ("c",),
) -> MachineSpec:
    return MachineSpec(
        name="small", states=states, initial=initial, finals=finals, transitions=transitions
    )


def test_a_small_well_formed_graph_passes() -> None:
    spec = small(edge("go", "a", "b"), edge("go", "b", "c"), edge("undo", "b", "a"))

    check_graph(spec)
    assert allowed_events(spec, "b") == ["go", "undo"]


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        pytest.param(
            small(edge("go", "a", "b"), edge("go", "b", "nowhere"), edge("end", "b", "c")),
            "unknown state 'nowhere'",
            id="unknown-dest",
        ),
        pytest.param(
            small(edge("go", "a", "b"), edge("go", "elsewhere", "c"), edge("end", "b", "c")),
            "unknown state 'elsewhere'",
            id="unknown-source",
        ),
        pytest.param(
            small(edge("go", "a", "b"), edge("go", "b", "c"), initial="zero"),
            "initial state 'zero' is not declared",
            id="unknown-initial",
        ),
        pytest.param(
            small(edge("go", "a", "b"), edge("go", "b", "c"), finals=("c", "omega")),
            "final state 'omega' is not declared",
            id="unknown-final",
        ),
        pytest.param(
            small(edge("go", "a", "c"), edge("go", "b", "c")),
            "unreachable states ['b']",
            id="unreachable",
        ),
        pytest.param(
            small(edge("go", "a", "b"), edge("go", "a", "c"), edge("stay", "b", "b")),
            "'b' is a trap state",
            id="trap-self-loop",
        ),
        pytest.param(
            small(edge("go", "a", "b"), edge("go", "a", "c")),
            "'b' is a trap state",
            id="trap-dead-end",
        ),
        pytest.param(
            small(
                edge("go", "a", "b"),
                edge("go", "b", "c"),
                edge("go", "c", "b"),
                edge("end", "a", "d"),
                states=("a", "b", "c", "d"),
                finals=("d",),
            ),
            "no path from 'b' to a final state",
            id="no-path-to-final",
        ),
        pytest.param(
            small(edge("go", "a", "b"), edge("go", "b", "a"), states=("a", "b"), finals=()),
            "no path from 'a' to a final state",
            id="no-finals",
        ),
    ],
)
def test_check_graph_rejects_a_bad_graph(spec: MachineSpec, complaint: str) -> None:
    with pytest.raises(InvalidMachine, match=re.escape(complaint)):
        check_graph(spec)
    # build() checks too, so a bad graph never becomes a machine.
    with pytest.raises(InvalidMachine):
        build(spec)


# -- the events each state allows ----------------------------------------------------------

DOCUMENT_EVENTS = {
    doc.DRAFT: (["approve", "edit", "reject", "submit", "waive"], []),
    doc.REVIEWED: (["reject", "sign"], []),
    doc.SIGNED: (["reject", "send"], []),
    doc.SENT: (
        ["recall", "update"],
        ["acknowledged", "delivered", "failed", "recalled", "replaced"],
    ),
    doc.DELIVERED: (["recall", "update"], ["acknowledged", "failed", "recalled", "replaced"]),
    # a recipient of a dispatch that failed with its outcome unknown may say it has it
    doc.FAILED: (
        ["recall", "resend", "update"],
        ["acknowledged", "delivered", "recalled", "recovered", "replaced"],
    ),
    doc.ACKNOWLEDGED: (["recall", "update"], ["recalled", "replaced"]),
    doc.RECALLED: ([], []),
    doc.REPLACED: ([], []),
}

# (fired on the dispatch itself, fired only as part of the document's own transition)
REPORTS = ["report_assigned", "report_completed", "report_processing"]  # 04–06, recorded
DISPATCH_EVENTS = {
    # an attempt's answer lost, the recipient's status may come before the next one
    # (and a request's answer, 15 or 16, too)
    d.PENDING: (sorted(["acknowledge", "agree", "decline", "refuse", "start", *REPORTS]), []),
    d.SENDING: (
        sorted(["acknowledge", "agree", "decline", "deliver", "fail", "refuse", "retry", *REPORTS]),
        [],
    ),
    d.DELIVERED: (sorted(["acknowledge", "agree", "decline", "refuse", *REPORTS]), []),
    d.ACKNOWLEDGED: (REPORTS, []),
    d.REJECTED: ([], []),  # a refusal stands
    # its outcome unknown, the recipient's status (or answer) may still come
    d.FAILED: (sorted(["acknowledge", "agree", "decline", "refuse", *REPORTS]), ["resend"]),
    d.AGREED: ([], []),  # a recall's or update's answer stands
    d.DECLINED: ([], []),
}


def test_the_tables_cover_every_state() -> None:
    assert set(DOCUMENT_EVENTS) == set(DOCUMENT.states)
    assert set(DISPATCH_EVENTS) == set(DISPATCH.states)


@pytest.mark.parametrize(("state", "events"), DOCUMENT_EVENTS.items())
def test_document_allowed_events(state: str, events: tuple[list[str], list[str]]) -> None:
    by_people, derived = events

    assert allowed_events(DOCUMENT, state) == by_people
    assert allowed_events(DOCUMENT, state, include_derived=True) == sorted(by_people + derived)


@pytest.mark.parametrize(("state", "events"), DISPATCH_EVENTS.items())
def test_dispatch_allowed_events(state: str, events: tuple[list[str], list[str]]) -> None:
    own, driven = events
    assert allowed_events(DISPATCH, state) == own
    assert allowed_events(DISPATCH, state, include_derived=True) == sorted(own + driven)


def test_allowed_events_of_an_unknown_state_is_empty() -> None:
    assert allowed_events(DOCUMENT, "archived", include_derived=True) == []


# -- resolving an event --------------------------------------------------------------------


def test_resolve_refuses_an_event_not_declared_from_the_state() -> None:
    with pytest.raises(TransitionNotAllowed) as caught:
        resolve(DOCUMENT, doc.DRAFT, "sign", never_called)

    error = caught.value
    assert error.http_status == 409
    assert error.code == "invalid_transition"
    assert error.details == {
        "event": "sign",
        "state": doc.DRAFT,
        "allowed": ["approve", "edit", "reject", "submit", "waive"],
    }


@pytest.mark.parametrize("event", ["bogus", "delivered", "acknowledged"])
def test_resolve_refuses_unknown_events_and_derived_ones_out_of_place(event: str) -> None:
    with pytest.raises((TransitionNotAllowed, UnknownEvent)) as caught:
        resolve(DOCUMENT, doc.SIGNED, event, never_called)

    # An event no machine has is a mistake of the caller's (422), not of the moment (409)
    assert type(caught.value) is (UnknownEvent if event == "bogus" else TransitionNotAllowed)
    # Derived events are never offered to people as allowed.
    assert caught.value.details["allowed"] == ["reject", "send"]


def test_resolve_refuses_any_event_in_a_final_state() -> None:
    for event in DOCUMENT.events:
        with pytest.raises(TransitionNotAllowed) as caught:
            resolve(DOCUMENT, doc.RECALLED, event, never_called)
        assert caught.value.details["allowed"] == []


def test_resolve_names_every_failed_guard_with_its_reason() -> None:
    with pytest.raises(GuardFailed) as caught:
        resolve(DOCUMENT, doc.SIGNED, "send", always(False))

    error = caught.value
    assert error.code == "guard_failed"
    assert error.details == {
        "event": "send",
        "state": doc.SIGNED,
        "failed": ["signature_valid", "not_duplicate", "original_settled"],
        "reasons": {
            "signature_valid": "signature_valid said False",
            "not_duplicate": "not_duplicate said False",
            "original_settled": "original_settled said False",
        },
    }


def test_resolve_names_only_the_guards_that_failed() -> None:
    guard = answers({"signature_valid": True, "not_duplicate": False, "original_settled": True})

    with pytest.raises(GuardFailed) as caught:
        resolve(DOCUMENT, doc.SIGNED, "send", guard)

    assert caught.value.details["failed"] == ["not_duplicate"]
    assert caught.value.details["reasons"] == {"not_duplicate": "not_duplicate does not hold"}


def test_resolve_returns_the_destination_when_the_guards_hold() -> None:
    step = resolve(DOCUMENT, doc.SIGNED, "send", always(True))

    assert (step.event, step.source, step.dest) == ("send", doc.SIGNED, doc.SENT)
    assert step.edge.effects == (
        "register_sending",
        "create_dispatches",
        "seal_packages",
        "supersede_original",
    )
    assert step.edge.actions == ("deliver_dispatches",)


def test_resolve_asks_no_guard_for_an_unguarded_edge() -> None:
    step = resolve(DOCUMENT, doc.REVIEWED, "reject", never_called)

    assert step.dest == doc.DRAFT


@pytest.mark.parametrize(
    ("fast", "cheap", "dest"),
    [(True, True, "b"), (False, True, "c"), (True, False, None), (False, False, None)],
)
def test_resolve_takes_the_first_edge_whose_guards_hold(
    fast: bool, cheap: bool, dest: str | None
) -> None:
    guard = answers({"fast": fast, "cheap": cheap})

    if dest is None:
        with pytest.raises(GuardFailed) as caught:
            resolve(FORKED, "a", "go", guard)
        # A guard shared by both edges is named once.
        assert caught.value.details["failed"] == (["cheap"] if fast else ["fast", "cheap"])
    else:
        assert resolve(FORKED, "a", "go", guard).dest == dest


# -- resolve agrees with the transitions library -------------------------------------------


class _Model:
    """A model whose guard methods answer from a truth table set per trial."""

    def __init__(self, guards: set[str]) -> None:
        self.truth: dict[str, bool] = {}
        for name in guards:
            setattr(self, name, self._asker(name))

    def _asker(self, name: str) -> Callable[[], bool]:
        return lambda: self.truth[name]


def _library_outcome(
    machine: Machine, model: _Model, state: str, event: str
) -> tuple[str, str | None]:
    machine.set_state(state, model)
    try:
        moved = model.trigger(event)  # type: ignore[attr-defined]
    except MachineError:
        return ("not_allowed", None)
    if not moved:
        assert model.state == state  # type: ignore[attr-defined]
        return ("guard_failed", None)
    return ("moved", model.state)  # type: ignore[attr-defined]


def _our_outcome(
    spec: MachineSpec, state: str, event: str, truth: Mapping[str, bool]
) -> tuple[str, str | None]:
    try:
        step = resolve(spec, state, event, answers(truth))
    except TransitionNotAllowed:
        return ("not_allowed", None)
    except GuardFailed as exc:
        # Exactly the guards that said no on the event's edges are named.
        asked = {c for t in spec.edges(event, state) for c in t.conditions}
        assert set(exc.details["failed"]) == {g for g in asked if not truth[g]}
        return ("guard_failed", None)
    return ("moved", step.dest)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_resolve_agrees_with_the_transitions_library(spec: MachineSpec) -> None:
    guards = sorted(guard_names(spec))
    model = _Model(set(guards))
    machine = Machine(
        model=model,
        states=list(spec.states),
        transitions=[t.as_transitions_dict() for t in spec.transitions],
        initial=spec.initial,
        auto_transitions=False,
        ignore_invalid_triggers=False,
    )
    # Every truth of the guards an event's edges from a state ask, the others all false
    # and all true (neither side may ask them).
    compared = expected_count = 0
    for state in spec.states:
        for event in spec.events:
            asked = sorted(
                {
                    c
                    for t in spec.transitions
                    if t.trigger == event and state in t.source
                    for c in t.conditions
                }
            )
            expected_count += 2 ** (len(asked) + 1)
            others = [g for g in guards if g not in asked]
            for rest, values in itertools.product(
                [False, True], itertools.product([False, True], repeat=len(asked))
            ):
                truth = dict(zip(asked, values, strict=True))
                model.truth = {**dict.fromkeys(others, rest), **truth}
                expected = _library_outcome(machine, model, state, event)
                assert _our_outcome(spec, state, event, model.truth) == expected, (
                    state,
                    event,
                    model.truth,
                )
                compared += 1
    assert compared == expected_count >= 2 * len(spec.states) * len(spec.events)


# -- deriving a document's state from its dispatches ---------------------------------------


@pytest.mark.parametrize(
    ("dispatches", "expected"),
    [
        ([], doc.SENT),
        ([d.PENDING], doc.SENT),
        ([d.SENDING, d.DELIVERED], doc.SENT),
        ([d.ACKNOWLEDGED, d.PENDING], doc.SENT),
        ([d.DELIVERED], doc.DELIVERED),
        ([d.DELIVERED, d.ACKNOWLEDGED], doc.DELIVERED),
        ([d.ACKNOWLEDGED], doc.ACKNOWLEDGED),
        ([d.ACKNOWLEDGED, d.ACKNOWLEDGED, d.ACKNOWLEDGED], doc.ACKNOWLEDGED),
        ([d.FAILED], doc.FAILED),
        ([d.REJECTED], doc.FAILED),
        ([d.ACKNOWLEDGED, d.ACKNOWLEDGED, d.REJECTED], doc.FAILED),
        ([d.PENDING, d.SENDING, d.FAILED], doc.FAILED),
        ([d.DELIVERED, d.FAILED, d.ACKNOWLEDGED], doc.FAILED),
    ],
)
def test_derive_document_state(dispatches: list[str], expected: str) -> None:
    assert derive_document_state(dispatches) == expected
    # Any iterable will do, once.
    assert derive_document_state(iter(dispatches)) == expected
    assert derive_document_state(reversed(dispatches)) == expected


@pytest.mark.parametrize(
    ("state", "reported", "expected"),
    [
        (d.PENDING, [], None),
        (d.SENDING, ["03"], None),
        (d.FAILED, [], None),
        (d.DELIVERED, [], "01"),
        (d.ACKNOWLEDGED, [], "03"),
        (d.ACKNOWLEDGED, ["03", "05", "04"], "05"),
        (d.DELIVERED, ["03"], "03"),  # its 03 came ahead of the receipt
        (d.REJECTED, ["02"], "02"),
        (d.REJECTED, [], "02"),  # refused at the inbox: no status message
    ],
)
def test_a_recipients_status_code(state: str, reported: list[str], expected: str | None) -> None:
    assert d.recipient_status(state, reported) == expected


def test_every_derived_state_has_a_derived_event_into_it() -> None:
    derived = {
        t.trigger: t for t in DOCUMENT.transitions if t.derived and t.trigger not in CONSEQUENCES
    }

    assert set(DERIVED_EVENT.values()) == set(derived)
    for target, event in DERIVED_EVENT.items():
        assert derived[event].dest == target
        assert target in DISPATCHED
    for t in derived.values():
        assert set(t.source) <= DISPATCHED


# A sent document's own dispatches: an answer to a recall or update (agreed, declined)
# is taken only by a dispatch carrying such a request.
OWN_DISPATCH_STATES = sorted(set(DISPATCH.states) - {d.AGREED, d.DECLINED})


def test_every_dispatch_event_leaves_its_document_where_its_dispatches_imply() -> None:
    # Given any sent document of up to three recipients, in the state its dispatches imply
    for size in (1, 2, 3):
        for states in itertools.combinations_with_replacement(OWN_DISPATCH_STATES, size):
            at = derive_document_state(states)
            # When any one dispatch takes any event it may take on its own
            for i, state in enumerate(states):
                for t in DISPATCH.transitions:
                    if t.derived or state not in t.source or "carries_request" in t.conditions:
                        continue
                    after = derive_document_state([*states[:i], t.dest, *states[i + 1 :]])
                    # Then the document can follow: it is there, or a derived event leads
                    # from where it is to where its dispatches now are
                    assert after == at or DERIVED_EVENT.get(after) in allowed_events(
                        DOCUMENT, at, include_derived=True
                    ), f"{states}: {t.trigger} on {state} leaves a {at} document {after}"


# -- who may fire what ---------------------------------------------------------------------


def test_every_event_fired_by_people_has_roles() -> None:
    for t in DOCUMENT.transitions:
        if t.derived:
            continue
        roles = EVENT_ROLES.get(t.trigger)
        assert roles, f"nobody may fire {t.trigger!r}"
        assert roles <= set(ROLES)


def test_derived_events_have_no_roles() -> None:
    derived = {t.trigger for t in DOCUMENT.transitions if t.derived}

    assert derived
    assert not derived & set(EVENT_ROLES)


def test_event_roles_name_only_declared_events() -> None:
    assert set(EVENT_ROLES) <= set(DOCUMENT.events)


def test_job_backoff_grows_and_is_capped() -> None:
    delays = [job_backoff_seconds(n) for n in range(0, 20)]

    assert delays[0] == delays[1] == 30
    assert delays == sorted(delays)
    assert max(delays) == 3600


def test_jitter_shortens_a_wait_by_at_most_its_fraction() -> None:
    backoff = Backoff(first=timedelta(seconds=10), cap=timedelta(seconds=60), jitter=0.2)

    assert backoff.after(1) == backoff.after(1, 0.0) == timedelta(seconds=10)
    assert backoff.after(2, 0.5) == timedelta(seconds=18)
    # A draw out of [0, 1) never makes a wait longer than its cap nor shorter than the band
    assert backoff.after(9, 7.0) == timedelta(seconds=48)
    assert backoff.after(9, -1.0) == timedelta(seconds=60)
    with pytest.raises(ValueError):
        Backoff(jitter=1.0)


# -- recall, update and replace --------------------------------------------------------------


def test_an_issued_document_may_be_recalled_or_updated_from_every_issued_state() -> None:
    for state in doc.ISSUED:
        for event in ("recall", "update"):
            step = resolve(DOCUMENT, state, event, always(True))
            assert step.dest == state  # it stays where it is until the answers come
            assert step.edge.actions == ("deliver_dispatches",)
            assert "seal_requests" in step.edge.effects
        assert resolve(DOCUMENT, state, "recalled", always(True)).dest == doc.RECALLED
        assert resolve(DOCUMENT, state, "replaced", always(True)).dest == doc.REPLACED


def test_a_document_not_yet_sent_cannot_be_recalled() -> None:
    for state in (doc.DRAFT, doc.REVIEWED, doc.SIGNED):
        with pytest.raises(TransitionNotAllowed):
            resolve(DOCUMENT, state, "recall", always(True))


def test_one_request_at_a_time_and_only_when_every_recipient_agreed_is_it_recalled() -> None:
    # Neither while a request awaits its answers, nor while a dispatch is on its way, nor
    # when no recipient holds the document; an update not while a holder lacks an earlier
    # one's corrections
    for event, more in (("recall", []), ("update", ["corrections_reached"])):
        with pytest.raises(GuardFailed) as caught:
            resolve(DOCUMENT, doc.ACKNOWLEDGED, event, always(False))
        assert caught.value.details["failed"] == [
            "no_request_awaiting",
            "nothing_under_way",
            "a_recipient_holds_it",
            *more,
        ]
    with pytest.raises(GuardFailed):
        resolve(DOCUMENT, doc.ACKNOWLEDGED, "recalled", always(False))


def test_only_a_dispatch_carrying_a_request_takes_an_answer() -> None:
    for event, dest in (("agree", d.AGREED), ("decline", d.DECLINED)):
        assert resolve(DISPATCH, d.DELIVERED, event, always(True)).dest == dest
        with pytest.raises(GuardFailed):
            resolve(DISPATCH, d.DELIVERED, event, always(False))
    assert d.STATUS_EVENTS["15"] == "agree" and d.STATUS_EVENTS["16"] == "decline"


def test_a_received_document_in_force_is_recalled_only_when_the_clerk_agrees() -> None:
    for state in r.IN_FORCE:
        assert resolve(RECEIVED_DOCUMENT, state, "request_recall", always(True)).dest == state
        assert resolve(RECEIVED_DOCUMENT, state, "agree_recall", always(True)).dest == r.RECALLED
        for event in ("refuse_recall", "agree_update", "refuse_update"):
            step = resolve(RECEIVED_DOCUMENT, state, event, always(True))
            assert (step.dest, step.edge.actions) == (state, r.NOTIFY)
        assert resolve(RECEIVED_DOCUMENT, state, "replaced", always(True)).dest == r.REPLACED
    # With no request awaiting, nothing to agree to
    with pytest.raises(GuardFailed):
        resolve(RECEIVED_DOCUMENT, r.REGISTERED, "agree_recall", always(False))


def test_a_recalled_or_replaced_received_document_can_no_longer_be_handled() -> None:
    for state in (r.RECALLED, r.REPLACED, r.REFUSED):
        assert allowed_events(RECEIVED_DOCUMENT, state, include_derived=True) == []


def test_a_completed_received_document_takes_only_the_senders_requests() -> None:
    # Decree 30 Art. 18: on a recall notice the recipient cancels the document, handled or not
    assert r.COMPLETED in r.IN_FORCE
    people = {"register", "refuse", "assign", "process", "complete"}
    assert not people & set(allowed_events(RECEIVED_DOCUMENT, r.COMPLETED, include_derived=True))
    assert resolve(RECEIVED_DOCUMENT, r.COMPLETED, "agree_recall", always(True)).dest == r.RECALLED


def test_the_inbox_and_the_engine_fire_the_requests_and_replacement_not_people() -> None:
    offered = allowed_events(RECEIVED_DOCUMENT, r.REGISTERED)
    assert not {"request_recall", "request_update", "replaced"} & set(offered)
    assert {"request_recall", "request_update", "replaced"} <= set(
        allowed_events(RECEIVED_DOCUMENT, r.REGISTERED, include_derived=True)
    )
    assert set(r.ANSWER_CODE) == set(r.ANSWERING)
    assert {r.ANSWER_CODE[e] for e in ("agree_recall", "agree_update")} == {"15"}
    assert {r.ANSWER_CODE[e] for e in ("refuse_recall", "refuse_update")} == {"16"}


@pytest.mark.parametrize(
    ("kept", "code", "contradicts"),
    [
        (["03"], "02", "03"),
        (["04", "05"], "02", "04"),
        (["02"], "03", "02"),
        (["02"], "06", "02"),
        (["15"], "16", "15"),
        (["16"], "15", "16"),
        (["03", "04"], "05", None),
        (["02"], "02", None),
        (["15"], "15", None),
        ([], "02", None),
        (["03"], "15", None),
    ],
)
def test_a_status_contradicts_only_what_says_the_opposite(
    kept: list[str], code: str, contradicts: str | None
) -> None:
    assert d.contradicted(kept, code) == contradicts
