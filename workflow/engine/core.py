"""The engine: fire an event = load, check, transition and persist in one transaction.

One path for every machine (``fire_on``): the machine's binding (bindings.py) loads and
locks its subject, checks the caller; the steps (stepping.py) resolve, run effects, audit
and persist. ``fire`` and ``fire_dispatch`` name the two machines people and jobs use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, cast

from sqlalchemy.exc import DBAPIError, IntegrityError

from congvan.actions.context import SYSTEM, Actor, Effect, Guard
from congvan.actions.escalations import Change, Watch
from congvan.states import DISPATCH, MACHINES
from congvan.states.dispatch import ANSWERED, REJECTED
from congvan.states.errors import (
    Forbidden,
    GuardFailed,
    OriginalUnknown,
    RequestAwaiting,
    VersionConflict,
)
from congvan.states.policy import CREATE_ROLES
from congvan.states.received import IN_FORCE, REFUSED
from congvan.states.text import nfc
from congvan.storage.clock import Clock
from congvan.storage.database import rolled_back_for_another
from congvan.storage.received import Received
from congvan.storage.unit_of_work import UnitOfWork

from ..wiring import check_wiring
from .bindings import (
    Binding,
    DispatchBinding,
    DocumentBinding,
    EscalationBinding,
    ReceivedBinding,
    checked_recipients,
)
from .creating import Arrival, Draft, create_once, receive_once, refuse_repeat
from .preparation import PREPARE_ROUNDS, Preparation, Prepared, Stale
from .requests import answered, may_replace, replacement
from .results import Expected, FireResult, Idempotency, commit, matches, replay
from .stepping import Pending, Stepper

log = logging.getLogger("congvan.engine")
# How many times a transition the database rolled back for another is run (see fire_on).
_ROLLED_BACK_RETRIES = 3


class Engine:
    """Fires events on documents and dispatches; nothing else changes their state.

    Built only when every guard, effect and job the machines of states/ name is wired or
    named in ``unavailable`` (a capability this installation knowingly lacks: events
    needing it answer 501); anything else is refused at startup, naming what is missing.
    ``machines`` binds further machines (name → binding) beside the document's and the
    dispatch's; every machine of states/ must have one.
    """

    def __init__(
        self,
        open_uow: Callable[..., UnitOfWork],
        *,
        guards: Mapping[str, Guard],
        effects: Mapping[str, Effect],
        jobs: Sequence[str],
        clock: Clock,
        job_deadline_seconds: int,
        dispatch_max_attempts: int = 8,
        unavailable: Iterable[str] = (),
        machines: Mapping[str, Binding] | None = None,
        watch: Watch | None = None,
    ) -> None:
        self.bindings: dict[str, Binding] = {
            "document": DocumentBinding(),
            "dispatch": DispatchBinding(dispatch_max_attempts),
            "received": ReceivedBinding(),
            "escalation": EscalationBinding(),
            **(machines or {}),
        }
        unbound = set(MACHINES) - set(self.bindings)
        if unbound:
            raise RuntimeError(f"Machines without a binding: {', '.join(sorted(unbound))}")
        check_wiring(
            [b.spec for b in self.bindings.values()],
            guards=guards,
            effects=effects,
            jobs=jobs,
            unavailable=unavailable,
        )
        self.open_uow = open_uow
        self.clock = clock
        # Time rules armed and escalations opened or closed inside each transition.
        self.watch = watch
        self.fault: Callable[[str], None] = lambda step: None
        self.stepper = Stepper(
            guards=dict(guards),
            effects=dict(effects),
            jobs=frozenset(jobs),
            job_deadline=timedelta(seconds=job_deadline_seconds),
            fault=lambda step: self.fault(step),
        )
        self.preparation = Preparation([b.spec for b in self.bindings.values()], effects)

    @property
    def guards(self) -> Mapping[str, Guard]:
        """The guards this installation wired, by name."""
        return self.stepper.guards

    @property
    def effects(self) -> Mapping[str, Effect]:
        """The effects this installation wired, by name."""
        return self.stepper.effects

    @property
    def jobs(self) -> frozenset[str]:
        """The job kinds this installation runs."""
        return self.stepper.jobs

    # -- creating ----------------------------------------------------------------------------

    def create_document(
        self,
        actor: Actor,
        fields: Mapping[str, Any],
        recipients: Sequence[Mapping[str, str]],
        files: Sequence[Mapping[str, Any]],
        *,
        idempotency: Idempotency | None = None,
    ) -> dict[str, Any]:
        """Create a draft with its recipients and files (``data`` bytes, stored once).

        Text is put in NFC and recipients' identifiers are checked here, where every
        caller (API, CLI, jobs, tests) passes, not only in the HTTP layer. Returns the
        document's view as of its creation, plain JSON; a replay of an Idempotency-Key
        returns the first one's, with ``"replayed": True``.
        """
        fields = cast(dict[str, Any], nfc(dict(fields)))
        checked = checked_recipients(recipients)
        if not actor.is_system and not (actor.roles & CREATE_ROLES):
            raise Forbidden("Only a clerk creates documents.", needs=sorted(CREATE_ROLES))
        agency_id = actor.agency_id
        if agency_id is None:
            raise Forbidden("A document belongs to an agency; the system has none.")
        return self._create(actor, Draft(agency_id, fields, checked, files), idempotency)

    def create_replacement(
        self,
        actor: Actor,
        document_id: str,
        reason: str,
        *,
        files: Sequence[Mapping[str, Any]] | None = None,
        idempotency: Idempotency | None = None,
        expected_version: Expected | None = None,
    ) -> dict[str, Any]:
        """Draft the corrected document that replaces an issued one (thay thế), with a reason.

        The draft starts as a copy of the original's metadata (without its number: a
        replacement is a new document) and recipients, with ``files`` (as
        ``create_document`` takes them; None: the original's). It names the document it
        replaces and goes through review, signing and sending as any draft does; its send
        delivers it to the original's recipients as a replacement and marks the original
        replaced.
        """
        may_replace(actor)
        if idempotency is not None and actor.agency_id is not None:
            # A repeat is answered as the first was, whatever the original did since (its
            # version moved on as its dispatches were delivered, say): judged again, it
            # would be refused where the first was done.
            with self.open_uow(readonly=True) as uow:
                replayed = self._replay(uow, actor.agency_id, idempotency)
            if replayed:
                return {**replayed, "replayed": True}
        draft = replacement(self.open_uow, actor, document_id, reason, files, expected_version)
        return self._create(actor, draft, idempotency)

    def _create(
        self, actor: Actor, draft: Draft, idempotency: Idempotency | None
    ) -> dict[str, Any]:
        """Create the draft once per Idempotency-Key; its view as of creation."""
        try:
            return create_once(
                self.open_uow, self.clock, actor, draft, idempotency, replay=self._replay
            )
        except IntegrityError:
            # Two requests with one Idempotency-Key raced and the other one won: answer
            # as it did.
            answer = self._raced(draft.agency_id, idempotency)
            if answer is None:
                raise
            return {**answer, "replayed": True}

    def receive(self, arrival: Arrival) -> tuple[Received, bool]:
        """Store a verified package from another agency once; ``(document, stored now)``.

        The same package delivered again (same sender and message id), even by two
        deliveries racing, finds the first one's document, whose receipt is the answer.
        """
        then = None
        if arrival.replaces_id is not None:
            replaced = arrival.replaces_id

            def then(uow: UnitOfWork) -> None:
                # The replacement arrived: the document it replaces is replaced. One no
                # longer in force (replaced by another, recalled) takes none: nothing is kept.
                head = uow.received.head(replaced, for_update=True)
                if head is not None and head.state == REFUSED:
                    # Returned by us (02) while its sender sealed the replacement: the
                    # replacement is a document of its own here, as it goes when our 02
                    # reached the sender first (then it is sent as a new one).
                    return
                if head is None or head.state not in IN_FORCE:
                    raise OriginalUnknown(
                        "The document the replacement names is no longer in force here.",
                        reason="not_in_force",
                        message_id=arrival.message_id,
                        state=head.state if head is not None else None,
                    )
                data = {"replaced_by": arrival.id}
                try:
                    self.fire_on_within(uow, "received", replaced, "replaced", data=data)
                except GuardFailed as exc:  # see recalls.no_answer_owed
                    raise RequestAwaiting(
                        "A recall or update of the document the replacement names still "
                        "awaits our answer.",
                        reason="request_awaiting",
                        message_id=arrival.message_id,
                    ) from exc

        try:
            return receive_once(
                self.open_uow,
                self.clock,
                arrival,
                then,
                on_arrival=self.watch.arrived if self.watch is not None else None,
            )
        except IntegrityError:
            with self.open_uow(readonly=True) as uow:
                first = uow.received.find(arrival.agency_id, arrival.sender_id, arrival.message_id)
                if first is None:  # the same document under another message id won the race
                    first = refuse_repeat(uow, arrival)
            if first is None:
                raise
            return first, False

    # -- firing ------------------------------------------------------------------------------

    def fire(
        self,
        document_id: str,
        event: str,
        actor: Actor,
        *,
        expected_version: Expected | None = None,
        data: Mapping[str, Any] | None = None,
        idempotency: Idempotency | None = None,
    ) -> FireResult:
        """Fire ``event`` on a document in one transaction, or raise and change nothing."""
        return self.fire_on(
            "document",
            document_id,
            event,
            actor,
            expected_version=expected_version,
            data=data,
            idempotency=idempotency,
        )

    def fire_dispatch(
        self,
        dispatch_id: str,
        event: str,
        *,
        actor: Actor = SYSTEM,
        data: Mapping[str, Any] | None = None,
    ) -> FireResult:
        """Fire ``event`` on one dispatch; the document follows in the same transaction."""
        return self.fire_on("dispatch", dispatch_id, event, actor, data=data)

    def fire_on(
        self,
        machine: str,
        subject_id: str,
        event: str,
        actor: Actor,
        *,
        expected_version: Expected | None = None,
        data: Mapping[str, Any] | None = None,
        idempotency: Idempotency | None = None,
    ) -> FireResult:
        """Fire ``event`` on a subject of ``machine`` in one transaction, or change nothing.

        The system retries a transition that lost a race (it has no version to expect);
        a person with a version is told of the conflict. Effects with preparers are
        prepared first, outside the write transaction, and again when overtaken. A
        transition the database rolled back to let another finish (a deadlock with the
        scheduler firing a timer of the same subject, say) is run again, whoever fired it:
        nothing of it was kept, and the version it expects is checked again.
        """
        for chance in range(_ROLLED_BACK_RETRIES):
            try:
                return self._fire_on(
                    machine, subject_id, event, actor, expected_version, data, idempotency
                )
            except DBAPIError as exc:
                if chance == _ROLLED_BACK_RETRIES - 1 or not rolled_back_for_another(exc):
                    raise
                log.info(
                    "transition rolled back for another; running it again",
                    extra={"action": "engine.retry", "event": event, "machine": machine},
                )
        raise AssertionError("unreachable")

    def _fire_on(
        self,
        machine: str,
        subject_id: str,
        event: str,
        actor: Actor,
        expected_version: Expected | None,
        data: Mapping[str, Any] | None,
        idempotency: Idempotency | None,
    ) -> FireResult:
        binding = self.bindings[machine]
        checked = binding.normalize(data or {})
        attempts = 5 if actor.is_system and expected_version is None else 1
        for attempt in range(attempts):
            try:
                prepared = None
                for _ in range(PREPARE_ROUNDS):
                    prepared = self.preparation.prepare(
                        self.open_uow,
                        self.clock,
                        self.stepper,
                        binding,
                        subject_id,
                        event,
                        actor,
                        checked,
                    )
                    try:
                        return self._fire_once(
                            binding, subject_id, event, actor, expected_version, checked,
                            idempotency, prepared,
                        )  # fmt: skip
                    except Stale:
                        continue  # another transition came first: prepare again
                # Overtaken every time: the version last prepared for is not the current one.
                assert prepared is not None
                current = self._current_version(binding, subject_id)
                raise VersionConflict(prepared.version, current, subject=_versioned(binding))
            except VersionConflict:
                if attempt == attempts - 1:
                    raise
            except IntegrityError:
                answer = self._raced(actor.agency_id, idempotency)
                if answer is None:
                    raise
                return FireResult(**{**answer, "replayed": True})
        raise AssertionError("unreachable")

    def _fire_once(
        self,
        binding: Binding,
        subject_id: str,
        event: str,
        actor: Actor,
        expected_version: Expected | None,
        data: dict[str, Any],
        idempotency: Idempotency | None,
        prepared: Prepared | None,
    ) -> FireResult:
        with self.open_uow() as uow:
            subject = binding.load(uow, subject_id, actor, lock=True)
            # Before any replay: a stored answer is only for a caller allowed to ask.
            binding.authorize(actor, event, data, subject)
            # Asked only now that the document is locked: a twin request that raced this
            # one has committed its answer by the time we get the lock.
            keyed = idempotency if actor.agency_id else None
            if keyed and actor.agency_id and (answer := self._replay(uow, actor.agency_id, keyed)):
                return FireResult(**{**answer, "replayed": True})
            if expected_version is not None and not matches(expected_version, subject.head.version):
                raise VersionConflict(
                    expected_version, subject.head.version, subject=_versioned(binding)
                )
            if prepared is not None and prepared.version != subject.head.version:
                raise Stale
            self.fault("loaded")
            now = self.clock()
            written = len(uow.outbox.written)
            result = self._transition(
                uow, binding, subject, event, actor, data, prepared.results if prepared else {}
            )
            # Every job the transition queued: its own, those of what it implied on other
            # subjects, and those its effects queued themselves (an escalation's recall).
            result = replace(result, jobs=uow.outbox.written[written:])
            if keyed and actor.agency_id:
                uow.idempotency.remember(
                    actor.agency_id, keyed.key, keyed.fingerprint, 200, result.as_dict(), now
                )
                self.fault("remembered")
            commit(uow, keyed)  # the unit of work hands the jobs to the relay
        log.info(
            "transition",
            extra={
                "action": f"{binding.spec.name}.transition",
                "document_id": result.document_id,
                "agency": subject.head.agency_id,
                "actor": actor.name,
                "event": event,
                "version": result.version,
                "to_state": result.to_state,
            },
        )
        return result

    def fire_on_within(
        self,
        uow: UnitOfWork,
        machine: str,
        subject_id: str,
        event: str,
        *,
        actor: Actor = SYSTEM,
        data: Mapping[str, Any] | None = None,
    ) -> FireResult:
        """Fire ``event`` inside the caller's open transaction, which commits it (or not).

        For a job's record step: its outcome and the events it implies commit together.
        """
        binding = self.bindings[machine]
        checked = binding.normalize(data or {})
        subject = binding.load(uow, subject_id, actor, lock=True)
        binding.authorize(actor, event, checked, subject)
        self.fault("loaded")
        return self._transition(uow, binding, subject, event, actor, checked, {})

    def _transition(
        self,
        uow: UnitOfWork,
        binding: Binding,
        subject: Any,
        event: str,
        actor: Actor,
        data: Mapping[str, Any],
        prepared: Mapping[str, Any],
    ) -> FireResult:
        """Step the subject's machine, follow what the dispatches imply, persist."""
        now = self.clock()
        pending = Pending.of(subject.head)
        audit_event, audit_extra = binding.audit(subject, event)
        step = self.stepper.step(
            uow,
            binding.spec,
            pending,
            subject.state,
            event,
            actor,
            binding.context(subject, data),
            now,
            audit_event=audit_event,
            audit_extra=audit_extra,
            prepared=prepared,
        )
        binding.settle(uow, subject, pending, event, step.dest, data, now)
        if binding.follows_dispatches:
            self.stepper.follow_derived(uow, pending, now)
        if self.watch is not None:
            self.watch.after_transition(
                uow,
                Change(
                    machine=binding.spec.name,
                    subject_id=subject.id,
                    event=event,
                    from_state=subject.state,
                    to_state=step.dest,
                    agency_id=subject.head.agency_id,
                    document_id=subject.head.id,
                    urgency=subject.head.urgency,
                    data=data,
                    now=now,
                    row=subject.row,
                ),
            )
        result = self.stepper.persist(
            uow,
            binding,
            pending,
            audit_event,
            from_state=subject.state,
            to_state=pending.state if binding.holds_chain else step.dest,
            now=now,
        )
        jobs = list(result.jobs)
        # What the effects implied on other subjects, in this same transaction.
        for machine, subject_id, follow, follow_data in pending.follow:
            jobs += self.fire_on_within(uow, machine, subject_id, follow, data=follow_data).jobs
        if binding.spec is DISPATCH and (step.dest in ANSWERED or step.dest == REJECTED):
            # (a refusal at the inbox, or the document returned, may complete a recall)
            jobs += answered(uow, subject.row, self.fire_on_within)
        return replace(result, jobs=jobs) if jobs != result.jobs else result

    # -- helpers -----------------------------------------------------------------------------

    def _current_version(self, binding: Binding, subject_id: str) -> int:
        with self.open_uow(readonly=True) as uow:
            subject = binding.load(uow, subject_id, SYSTEM, lock=False)
            return binding.current_version(uow, subject.head.id) or 0

    def _raced(
        self, agency_id: str | None, idempotency: Idempotency | None
    ) -> dict[str, Any] | None:
        """The answer of the twin request that won a race on one Idempotency-Key, if any."""
        if idempotency is None or agency_id is None:
            return None
        with self.open_uow(readonly=True) as uow:
            return self._replay(uow, agency_id, idempotency)

    def _replay(
        self, uow: UnitOfWork, agency_id: str, idempotency: Idempotency
    ) -> dict[str, Any] | None:
        """The answer stored with this key (one seam, so a test can make a twin race)."""
        return replay(uow, agency_id, idempotency)


# What a machine's version counts, as a conflict names it: a dispatch moves with its
# document's chain; the others hold their own.
_VERSIONED = {"escalation": "escalation", "received": "received document"}


def _versioned(binding: Binding) -> str:
    return _VERSIONED.get(binding.spec.name, "document")
