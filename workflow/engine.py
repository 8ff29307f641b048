"""The engine: fire an event = load, check, transition and persist in one transaction."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from pydantic_core import to_jsonable_python
from sqlalchemy.exc import IntegrityError

from congvan.actions.context import (
    SYSTEM,
    Actor,
    Effect,
    Guard,
    PreparedEffect,
    Preparer,
    TransitionContext,
)
from congvan.actions.jobs import enqueue, new_job
from congvan.states import DISPATCH, DOCUMENT, MACHINES
from congvan.states.dispatch import DOCUMENT_DRIVEN
from congvan.states.errors import (
    ActionUnavailable,
    AlreadyExists,
    CongvanError,
    Forbidden,
    IdempotencyKeyReused,
    InvalidInput,
    NotFound,
    TransitionNotAllowed,
    VersionConflict,
)
from congvan.states.machine import (
    DERIVED_EVENT,
    DISPATCHED,
    allowed_events,
    derive_document_state,
    resolve,
)
from congvan.states.policy import (
    CREATE_ROLES,
    EVENT_INPUTS,
    EVENT_ROLES,
    REASON_REQUIRED,
    is_organ_id,
)
from congvan.states.spec import MachineSpec, Transition
from congvan.states.text import has_visible_text, nfc
from congvan.storage.audit import GENESIS, NewEntry, make_entry
from congvan.storage.clock import Clock
from congvan.storage.documents import DocumentHead
from congvan.storage.ids import new_id
from congvan.storage.unit_of_work import UnitOfWork

from .views import document_view
from .wiring import check_wiring

log = logging.getLogger("congvan.engine")

# Points at which a test may inject a failure; each one must leave no trace.
STEPS = ("loaded", "resolved", "effects", "audited", "advanced", "outboxed", "remembered")


@dataclass(frozen=True)
class Idempotency:
    """An Idempotency-Key and the fingerprint of the request that carried it."""

    key: str
    fingerprint: str

    @staticmethod
    def of(key: str, *parts: Any) -> Idempotency:
        material = json.dumps(parts, sort_keys=True, default=str).encode()
        return Idempotency(key=key, fingerprint=hashlib.sha256(material).hexdigest())


@dataclass(frozen=True)
class FireResult:
    """What a fired event did."""

    document_id: str
    event: str
    from_state: str
    to_state: str
    version: int
    jobs: list[str] = field(default_factory=list)
    derived: list[str] = field(default_factory=list)
    replayed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Pending:
    """What one transaction will write, gathered step by step."""

    head: DocumentHead
    state: str
    version: int
    audit_head: str
    entries: list[NewEntry] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    derived: list[str] = field(default_factory=list)


# How many times a transition's preparation is redone when another transition came first.
_PREPARE_ROUNDS = 3


class _Stale(Exception):
    """What was prepared is for a version of the document that is no longer current."""


@dataclass(frozen=True)
class _Prepared:
    version: int
    results: dict[str, Any]


class Engine:
    """Fires events on documents and dispatches; nothing else changes their state.

    Built only when every guard, effect and job the machines of states/ name is wired or
    named in ``unavailable`` (a capability this installation knowingly lacks: events
    needing it answer 501); anything else is refused at startup, naming what is missing.
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
        on_commit: Callable[[list[str]], None] | None = None,
        unavailable: Iterable[str] = (),
    ) -> None:
        check_wiring(
            MACHINES.values(),
            guards=guards,
            effects=effects,
            jobs=jobs,
            unavailable=unavailable,
        )
        self.open_uow = open_uow
        self.guards = dict(guards)
        self.effects = dict(effects)
        self.preparers: dict[str, Preparer] = {
            name: e.prepare for name, e in self.effects.items() if isinstance(e, PreparedEffect)
        }
        self._prepared_events = frozenset(
            t.trigger for t in DOCUMENT.transitions if set(t.effects) & set(self.preparers)
        )
        self.jobs = frozenset(jobs)
        self.clock = clock
        self.job_deadline = timedelta(seconds=job_deadline_seconds)
        self.dispatch_max_attempts = dispatch_max_attempts
        self.on_commit = on_commit
        self.fault: Callable[[str], None] = lambda step: None

    # -- documents -------------------------------------------------------------------------

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
        recipients = _checked_recipients(recipients)
        if not actor.is_system and not (actor.roles & CREATE_ROLES):
            raise Forbidden("Only a clerk creates documents.", needs=sorted(CREATE_ROLES))
        agency_id = actor.agency_id
        if agency_id is None:
            raise Forbidden("A document belongs to an agency; the system has none.")
        try:
            return self._create_once(actor, agency_id, fields, recipients, files, idempotency)
        except IntegrityError:
            # Two requests with one Idempotency-Key raced and the other one won: answer
            # as it did.
            if idempotency is None:
                raise
            with self.open_uow(readonly=True) as uow:
                replay = self._replay(uow, agency_id, idempotency)
            if replay is None:
                raise
            return {**replay, "replayed": True}

    def _create_once(
        self,
        actor: Actor,
        agency_id: str,
        fields: Mapping[str, Any],
        recipients: Sequence[Mapping[str, str]],
        files: Sequence[Mapping[str, Any]],
        idempotency: Idempotency | None,
    ) -> dict[str, Any]:
        with self.open_uow() as uow:
            if idempotency and (replay := self._replay(uow, agency_id, idempotency)):
                return {**replay, "replayed": True}
            now = self.clock()
            document_id = new_id()
            entry = make_entry(
                prev_hash=GENESIS,
                document_id=document_id,
                version=1,
                actor=actor.name,
                event="create",
                from_state="",
                to_state=DOCUMENT.initial,
                at=now,
                payload={
                    "fields": dict(fields),
                    "recipients": [r["organ_id"] for r in recipients],
                    "files": [{k: f[k] for k in ("sha256", "filename", "role")} for f in files],
                },
            )
            uow.documents.add(
                {
                    **fields,
                    "id": document_id,
                    "agency_id": agency_id,
                    "state": DOCUMENT.initial,
                    "version": 1,
                    "audit_head": entry.hash,
                    "created_by": actor.name,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            uow.documents.set_recipients(document_id, recipients)
            for f in files:
                uow.documents.put_blob(f["sha256"], f["data"])
            uow.documents.add_attachments(
                document_id, [{k: v for k, v in f.items() if k != "data"} for f in files]
            )
            uow.audit.append([entry])
            # The answer as it is now, kept with the key in this transaction: a replay
            # repeats it even after the document has moved on.
            answer: dict[str, Any] = to_jsonable_python(
                document_view(uow, uow.documents.load(document_id))
            )
            if idempotency:
                uow.idempotency.remember(
                    agency_id, idempotency.key, idempotency.fingerprint, 201, answer, now
                )
            self._commit(uow, agency_id, idempotency)
        log.info(
            "document created",
            extra={"action": "document.create", "document_id": document_id, "agency": agency_id},
        )
        return answer

    def fire(
        self,
        document_id: str,
        event: str,
        actor: Actor,
        *,
        expected_version: int | None = None,
        data: Mapping[str, Any] | None = None,
        idempotency: Idempotency | None = None,
    ) -> FireResult:
        """Fire ``event`` on a document in one transaction, or raise and change nothing."""
        data = cast(dict[str, Any], nfc(dict(data or {})))
        if data.get("recipients") is not None:
            data["recipients"] = _checked_recipients(data["recipients"])
        attempts = 5 if actor.is_system and expected_version is None else 1
        for attempt in range(attempts):
            try:
                for _ in range(_PREPARE_ROUNDS):
                    prepared = self._prepare(document_id, event, actor, data)
                    try:
                        return self._fire_once(
                            document_id, event, actor, expected_version, data, idempotency, prepared
                        )
                    except _Stale:
                        continue  # another transition came first: prepare again
                # Overtaken every time: the version last prepared for is not the current one.
                assert prepared is not None
                raise VersionConflict(prepared.version, self._current_version(document_id))
            except VersionConflict:
                if attempt == attempts - 1:
                    raise
            except IntegrityError:
                # Two requests with one Idempotency-Key raced and the other one won:
                # answer as it did.
                if idempotency is None or actor.agency_id is None:
                    raise
                with self.open_uow(readonly=True) as uow:
                    replay = self._replay(uow, actor.agency_id, idempotency)
                if replay is None:
                    raise
                return FireResult(**{**replay, "replayed": True})
        raise AssertionError("unreachable")

    def _fire_once(
        self,
        document_id: str,
        event: str,
        actor: Actor,
        expected_version: int | None,
        data: dict[str, Any],
        idempotency: Idempotency | None,
        prepared: _Prepared | None = None,
    ) -> FireResult:
        with self.open_uow() as uow:
            head = self._load(uow, document_id, actor)
            # Before any replay: a stored answer is only for a caller allowed to ask.
            self._authorize(actor, event, data)
            # Asked only now that the document is locked: a twin request that raced this
            # one has committed its answer by the time we get the lock.
            if idempotency and actor.agency_id:
                replay = self._replay(uow, actor.agency_id, idempotency)
                if replay:
                    return FireResult(**{**replay, "replayed": True})
            if expected_version is not None and expected_version != head.version:
                raise VersionConflict(expected_version, head.version)
            if prepared is not None and prepared.version != head.version:
                raise _Stale
            self.fault("loaded")
            now = self.clock()
            work = prepared.results if prepared is not None else {}
            result = self._transition(uow, head, event, actor, data, now, prepared=work)
            if idempotency and actor.agency_id:
                uow.idempotency.remember(
                    actor.agency_id,
                    idempotency.key,
                    idempotency.fingerprint,
                    200,
                    result.as_dict(),
                    now,
                )
                self.fault("remembered")
            self._commit(uow, actor.agency_id, idempotency)
        self.after_commit(result.jobs)
        log.info(
            "transition",
            extra={
                "action": "document.transition",
                "document_id": document_id,
                "agency": head.agency_id,
                "actor": actor.name,
                "event": event,
                "version": result.version,
                "to_state": result.to_state,
            },
        )
        return result

    def fire_within(
        self,
        uow: UnitOfWork,
        document_id: str,
        event: str,
        *,
        actor: Actor = SYSTEM,
        data: Mapping[str, Any] | None = None,
    ) -> FireResult:
        """Fire ``event`` inside the caller's open transaction, which commits it (or not).

        For a job's record step: its outcome and the events it implies commit together.
        The caller runs ``after_commit(result.jobs)`` once it has committed.
        """
        head = self._load(uow, document_id, actor)
        checked = cast(dict[str, Any], nfc(dict(data or {})))
        self._authorize(actor, event, checked)
        return self._transition(uow, head, event, actor, checked, self.clock())

    def _transition(
        self,
        uow: UnitOfWork,
        head: DocumentHead,
        event: str,
        actor: Actor,
        data: dict[str, Any],
        now: datetime,
        *,
        prepared: Mapping[str, Any] | None = None,
    ) -> FireResult:
        """Step the document's machine, follow what its dispatches imply, persist."""
        pending = _Pending(
            head=head, state=head.state, version=head.version, audit_head=head.audit_head
        )
        step = self._step(
            uow, DOCUMENT, pending, head.state, event, actor, data, now, prepared=prepared
        )
        pending.state = step.dest
        self._follow_derived(uow, pending, now)
        return self._persist(uow, pending, event, step_from=head.state, now=now)

    def _prepare(
        self, document_id: str, event: str, actor: Actor, data: dict[str, Any]
    ) -> _Prepared | None:
        """Run the preparers of the effects ``event`` will run, before any write lock.

        In a read-only transaction, as of the document's current version: only when the
        caller may fire the event and its guards hold now (otherwise the transition itself
        gives the answer, and no heavy work was wasted). None: nothing to prepare.
        """
        if event not in self._prepared_events:
            return None  # no edge of this event has an effect to prepare: no extra read
        with self.open_uow(readonly=True) as uow:
            head = uow.documents.head(document_id)
            if head is None or (not actor.is_system and head.agency_id != actor.agency_id):
                return None
            edges = DOCUMENT.edges(event, head.state)
            names = [e for t in edges for e in t.effects if e in self.preparers]
            if not names:
                return None
            ctx = TransitionContext(
                uow=uow, document=head, event=event, actor=actor, data=data, now=self.clock()
            )
            try:
                self._authorize(actor, event, data)
                self._require_capabilities(event, edges)
                step = resolve(DOCUMENT, head.state, event, lambda name: self.guards[name](ctx))
            except CongvanError:
                return None  # the transition answers this, with nothing prepared
            results = {
                name: self.preparers[name](ctx) for name in step.edge.effects if name in names
            }
        return _Prepared(version=head.version, results=results)

    def _current_version(self, document_id: str) -> int:
        with self.open_uow(readonly=True) as uow:
            return uow.documents.current_version(document_id) or 0

    # -- dispatches ------------------------------------------------------------------------

    def fire_dispatch(
        self,
        dispatch_id: str,
        event: str,
        *,
        actor: Actor = SYSTEM,
        data: Mapping[str, Any] | None = None,
    ) -> FireResult:
        """Fire ``event`` on one dispatch; the document follows in the same transaction."""
        for attempt in range(5):
            try:
                return self._fire_dispatch_once(dispatch_id, event, actor, dict(data or {}))
            except VersionConflict:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def _fire_dispatch_once(
        self, dispatch_id: str, event: str, actor: Actor, data: dict[str, Any]
    ) -> FireResult:
        with self.open_uow() as uow:
            result = self.fire_dispatch_within(uow, dispatch_id, event, actor=actor, data=data)
            self._commit(uow, None, None)
        self.after_commit(result.jobs)
        return result

    def fire_dispatch_within(
        self,
        uow: UnitOfWork,
        dispatch_id: str,
        event: str,
        *,
        actor: Actor = SYSTEM,
        data: Mapping[str, Any] | None = None,
    ) -> FireResult:
        """Fire ``event`` on one dispatch inside the caller's open transaction."""
        dispatch = uow.dispatches.get(dispatch_id)
        if dispatch is None:
            raise NotFound("No such dispatch.", dispatch_id=dispatch_id)
        head = self._load(uow, dispatch.document_id, actor)
        dispatch = uow.dispatches.get(dispatch_id) or dispatch  # as of the lock just taken
        if not actor.is_system:
            raise Forbidden("Dispatch events are fired by the system.")
        if event in DOCUMENT_DRIVEN:
            raise TransitionNotAllowed(
                event, dispatch.state, allowed_events(DISPATCH, dispatch.state)
            )
        self.fault("loaded")
        now = self.clock()
        pending = _Pending(
            head=head, state=head.state, version=head.version, audit_head=head.audit_head
        )
        data = {**(data or {}), "dispatch": dispatch, "max_attempts": self.dispatch_max_attempts}
        step = self._step(
            uow,
            DISPATCH,
            pending,
            dispatch.state,
            event,
            actor,
            data,
            now,
            audit_event=f"dispatch.{event}",
            audit_extra={"dispatch_id": dispatch_id, "organ_id": dispatch.organ_id},
        )
        attempts = dispatch.attempts + (1 if event == "start" else 0)
        uow.dispatches.set_state(
            dispatch_id,
            state=step.dest,
            at=now,
            attempts=attempts,
            last_error=data.get("error"),
        )
        self._follow_derived(uow, pending, now)
        return self._persist(
            uow,
            pending,
            f"dispatch.{event}",
            step_from=dispatch.state,
            now=now,
            to_state=step.dest,
        )

    # -- the steps of a transition ---------------------------------------------------------

    def _load(self, uow: UnitOfWork, document_id: str, actor: Actor) -> DocumentHead:
        # Lock the row (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers) so
        # that a racing transition waits here and then sees the version the winner wrote,
        # instead of colliding later on the audit entry's unique (document, version).
        head = uow.documents.head(document_id, for_update=True)
        # Another agency's document answers exactly like a missing one.
        if head is None or (not actor.is_system and head.agency_id != actor.agency_id):
            raise NotFound("No such document.", document_id=document_id)
        return head

    def _authorize(self, actor: Actor, event: str, data: Mapping[str, Any]) -> None:
        if event in REASON_REQUIRED and not has_visible_text(str(data.get("reason") or "")):
            # Blank, or only invisible characters (a zero-width space is not a reason).
            raise InvalidInput(f"Event {event!r} needs a reason.", event=event, field="reason")
        if actor.is_system or event not in DOCUMENT.events:
            return  # an unknown event is refused as a transition, with the allowed ones
        roles = EVENT_ROLES.get(event)
        if roles is None:
            raise Forbidden(f"Event {event!r} is fired by the system only.", event=event)
        if not actor.roles & roles:
            raise Forbidden(
                f"Event {event!r} needs the role {' or '.join(sorted(roles))}.",
                event=event,
                needs=sorted(roles),
            )
        takes = EVENT_INPUTS.get(event, frozenset()) | {"reason"}
        unused = sorted(set(data) - takes)
        if unused:
            raise InvalidInput(
                f"Event {event!r} does not use {', '.join(unused)}; it takes "
                f"{', '.join(sorted(takes))}.",
                event=event,
                field=unused[0],
                takes=sorted(takes),
            )

    def _step(
        self,
        uow: UnitOfWork,
        spec: MachineSpec,
        pending: _Pending,
        state: str,
        event: str,
        actor: Actor,
        data: Mapping[str, Any],
        now: Any,
        *,
        audit_event: str | None = None,
        audit_extra: Mapping[str, Any] | None = None,
        prepared: Mapping[str, Any] | None = None,
    ) -> Any:
        ctx = TransitionContext(
            uow=uow,
            document=pending.head,
            event=event,
            actor=actor,
            data=data,
            now=now,
            prepared=prepared or {},
        )
        edges = spec.edges(event, state)
        self._require_capabilities(event, edges)

        def guard(name: str) -> tuple[bool, str]:
            return self.guards[name](ctx)

        step = resolve(spec, state, event, guard)
        self.fault("resolved")
        for name in step.edge.effects:
            self.effects[name](ctx)
        self.fault("effects")
        pending.version += 1
        payload = {**(audit_extra or {}), **ctx.audit}
        if "reason" in data:
            payload["reason"] = data["reason"]
        entry = make_entry(
            prev_hash=pending.audit_head,
            document_id=pending.head.id,
            version=pending.version,
            actor=actor.name,
            event=audit_event or event,
            from_state=state,
            to_state=step.dest,
            at=now,
            payload=payload,
        )
        pending.entries.append(entry)
        pending.audit_head = entry.hash
        queue = "urgent" if pending.head.urgency > 0 else "default"
        for action in step.edge.actions:
            pending.jobs.append(
                new_job(
                    action,
                    now,
                    document_id=pending.head.id,
                    queue=queue,
                    payload={**ctx.job_payload, "event": event, "version": pending.version},
                )
            )
        return step

    def _require_capabilities(self, event: str, edges: Sequence[Transition]) -> None:
        missing = sorted(
            {c for t in edges for c in t.conditions if c not in self.guards}
            | {e for t in edges for e in t.effects if e not in self.effects}
            | {a for t in edges for a in t.actions if a not in self.jobs}
        )
        if missing:
            raise ActionUnavailable(
                f"Event {event!r} needs {', '.join(missing)}, which this installation "
                "does not provide yet.",
                event=event,
                missing=missing,
            )

    def _follow_derived(self, uow: UnitOfWork, pending: _Pending, now: Any) -> None:
        """Move a sent document to the state its dispatches imply, as derived events."""
        if pending.state not in DISPATCHED:
            return
        target = derive_document_state(uow.dispatches.states(pending.head.id))
        if target == pending.state:
            return
        event = DERIVED_EVENT.get(target)
        if event is None or event not in allowed_events(
            DOCUMENT, pending.state, include_derived=True
        ):
            return
        step = self._step(uow, DOCUMENT, pending, pending.state, event, SYSTEM, {}, now)
        pending.state = step.dest
        pending.derived.append(event)

    def _persist(
        self,
        uow: UnitOfWork,
        pending: _Pending,
        event: str,
        *,
        step_from: str,
        now: Any,
        to_state: str | None = None,
    ) -> FireResult:
        uow.audit.append(pending.entries)
        self.fault("audited")
        moved = uow.documents.advance(
            pending.head.id,
            expected_version=pending.head.version,
            state=pending.state,
            new_version=pending.version,
            audit_head=pending.audit_head,
            at=now,
        )
        if not moved:
            current = uow.documents.current_version(pending.head.id) or pending.head.version
            raise VersionConflict(pending.head.version, current)
        self.fault("advanced")
        enqueue(uow, pending.jobs, now + self.job_deadline)
        self.fault("outboxed")
        return FireResult(
            document_id=pending.head.id,
            event=event,
            from_state=step_from,
            to_state=to_state or pending.state,
            version=pending.version,
            jobs=[j["id"] for j in pending.jobs],
            derived=pending.derived,
        )

    def _replay(
        self, uow: UnitOfWork, agency_id: str, idempotency: Idempotency
    ) -> dict[str, Any] | None:
        found = uow.idempotency.find(agency_id, idempotency.key)
        if found is None:
            return None
        fingerprint, _status, response = found
        if fingerprint != idempotency.fingerprint:
            raise IdempotencyKeyReused(key=idempotency.key)
        return response

    def _commit(
        self, uow: UnitOfWork, agency_id: str | None, idempotency: Idempotency | None
    ) -> None:
        if idempotency is not None:
            uow.commit()  # an IntegrityError here is a raced key; the caller replays
            return
        try:
            uow.commit()
        except IntegrityError as exc:
            raise AlreadyExists("This would duplicate an existing record.") from exc

    def after_commit(self, job_ids: list[str]) -> None:
        """Tell the relay that jobs were committed (it also finds them by polling)."""
        if job_ids and self.on_commit is not None:
            try:
                self.on_commit(job_ids)
            except Exception:
                log.exception("relay notification failed", extra={"action": "relay.kick_failed"})


def _checked_recipients(recipients: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Recipients in NFC, each with a well-formed agency identifier."""
    checked = []
    for recipient in recipients:
        row = cast(dict[str, Any], nfc(dict(recipient)))
        organ_id = row.get("organ_id")
        if not isinstance(organ_id, str) or not is_organ_id(organ_id):
            raise InvalidInput(
                "A recipient's agency identifier is not well formed (e.g. 000.00.00.H57).",
                field="recipients",
                organ_id=organ_id,
            )
        checked.append(row)
    return checked
