"""The one place that wires real adapters: database, broker, engine, relay, scheduler."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import dramatiq
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import Engine as SqlEngine

from congvan.actions.anchoring import JOB as ANCHOR_JOB
from congvan.actions.anchoring import Anchoring
from congvan.actions.calendar import WorkingCalendar, load_years
from congvan.actions.checks import CHECKS, Check
from congvan.actions.context import Effect, Guard, JobAction, PreparedEffect
from congvan.actions.delivery import Delivery
from congvan.actions.effects import EFFECTS
from congvan.actions.escalations import Watch
from congvan.actions.exchange.archive import Limits
from congvan.actions.guards import GUARDS
from congvan.actions.jobs import QUEUES, AnyJob, JobRunner
from congvan.actions.messengers import Smtp
from congvan.actions.notifications import JOB as NOTIFY_JOB
from congvan.actions.notifications import Notifying, queue_notifications
from congvan.actions.recalls import EFFECTS as RECALL_EFFECTS
from congvan.actions.recalls import GUARDS as RECALL_GUARDS
from congvan.actions.review import Review
from congvan.actions.sending import Sending
from congvan.actions.signing.revocation_lists import RevocationLists
from congvan.actions.signing.signedpdf import SIGNATURE_ROOM
from congvan.actions.signing.signing import Signing
from congvan.actions.signing.truststore import TrustStore
from congvan.actions.statuses import StatusSending
from congvan.actions.timestamping import JOB as TIMESTAMP_JOB
from congvan.actions.timestamping import Timestamping
from congvan.states.errors import InvalidInput
from congvan.states.policy import Backoff
from congvan.states.vocabulary import (
    ESCALATION_RISE,
    ESCALATION_WAKE,
    RULE_DEADLINE,
)
from congvan.storage.clock import Clock, ClockWatch, utcnow
from congvan.storage.database import make_engine, shown_url
from congvan.storage.schema import ensure_migrated
from congvan.storage.timers import AUDIT_ANCHOR, CRL_CHECK, JOB_DEADLINE, DueTimer
from congvan.storage.unit_of_work import UnitOfWork

from .actors import anchor as anchor_actor
from .actors import deliver as deliver_actor
from .actors import install as install_actors
from .actors import notify as notify_actor
from .actors import review as review_actor
from .actors import specs_for
from .actors import timestamp as timestamp_actor
from .engine import Engine
from .inbox import Inbox
from .local_exchange import local_transport
from .relay import Relay
from .scheduler import Scheduler
from .settings import Settings
from .statuses import Statuses

log = logging.getLogger("congvan")

# The jobs this installation can run, by action name.
JOBS: dict[str, JobAction] = {}
# Capabilities the machines name that this installation knowingly lacks: events needing
# them answer 501 action_unavailable. Anything else unwired stops the engine at startup.
# Every capability the machines name is built.
NOT_YET_BUILT: frozenset[str] = frozenset()
# The job kinds with an actor spec of their own (time limit, retries, concurrency).
KNOWN_ACTORS = {
    s.job: s
    for s in (
        review_actor.SPEC,
        anchor_actor.SPEC,
        timestamp_actor.SPEC,
        deliver_actor.SPEC,
        deliver_actor.STATUS_SPEC,
    )
}


def make_broker(url: str) -> dramatiq.Broker:
    """``memory://`` → an in-process broker; ``redis://…`` → Redis. Nothing else changes."""
    if url.startswith("memory://"):
        broker: dramatiq.Broker = StubBroker()
    elif url.startswith(("redis://", "rediss://", "unix://")):
        from dramatiq.brokers.redis import RedisBroker

        _check_redis_url(url)
        broker = RedisBroker(url=url)  # type: ignore[no-untyped-call]
    else:
        raise InvalidInput(
            "CONGVAN_BROKER_URL is memory:// or a Redis URL (redis://, rediss://, unix://).",
            field="broker_url",
            scheme=url.split(":", 1)[0][:20],
        )
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker


def _check_redis_url(url: str) -> None:
    """Refuse a Redis URL no connection can be made from (a port past 65535, a broken
    IPv6 address, a database that is no number), in words, never the URL (it may hold a
    password)."""
    from redis.connection import parse_url

    try:
        parse_url(url)  # type: ignore[no-untyped-call]
        parts = urlsplit(url)
        if parts.scheme != "unix" and parts.path.strip("/") and not parts.path[1:].isdigit():
            raise ValueError("its path names a database by number, e.g. redis://host:6379/0")
    except ValueError as exc:
        raise InvalidInput(
            f"CONGVAN_BROKER_URL is not a Redis URL that can be used: {exc}.",
            field="broker_url",
        ) from None


@dataclass
class Runtime:
    """Everything a process of congvan runs with, built by :func:`bootstrap`."""

    settings: Settings
    db: SqlEngine
    clock: Clock
    engine: Engine
    broker: dramatiq.Broker
    relay: Relay
    scheduler: Scheduler
    runner: JobRunner
    review: Review
    anchoring: Anchoring
    trust: TrustStore
    revocation_lists: RevocationLists
    timestamping: Timestamping
    inbox: Inbox
    statuses: Statuses
    watch: Watch
    worker: dramatiq.Worker | None = None
    _started: list[str] = field(default_factory=list)

    def uow(self, readonly: bool = False) -> UnitOfWork:
        return UnitOfWork(self.db, readonly=readonly, outlet=self.relay)

    @property
    def embedded(self) -> bool:
        return isinstance(self.broker, StubBroker)

    def broker_answers(self, timeout: float = 1.0) -> bool:
        """Whether the broker answers a ping within ``timeout`` seconds (the embedded one
        lives in this process: always). Jobs wait in the outbox while it does not."""
        if self.embedded:
            return True
        import redis

        client = redis.Redis.from_url(
            self.settings.broker_url.get_secret_value(),
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(
        self,
        *,
        workers: bool = True,
        relay: bool = True,
        scheduler: bool = True,
        hand_off: bool = False,
    ) -> None:
        """Start background threads: dramatiq workers, the relay and the scheduler.

        ``hand_off`` without ``relay`` (a worker process): the relay sends the jobs this
        process's transactions write, and leaves the table to the scheduler's relay.
        """
        load_years(self.clock().date())
        if workers and self.worker is None:
            self.runner.stopping.clear()
            self.worker = dramatiq.Worker(
                self.broker, worker_threads=self.settings.worker_threads, worker_timeout=100
            )
            self.worker.start()
            self._started.append("workers")
        if relay or hand_off:
            self.relay.start(poll=relay)
            self._started.append("relay")
        if scheduler:
            with self.uow() as uow:
                self.anchoring.ensure_timer(uow, self.clock())
                self.revocation_lists.ensure_timer(uow, self.clock())
                uow.commit()
            self.scheduler.start()
            self._started.append("scheduler")

    def join(self, timeout_ms: int = 30_000) -> None:
        """Wait for the outbox to drain and the in-process queues to empty (tests, demo)."""
        self.relay.flush()
        self.relay.drain()
        if isinstance(self.broker, StubBroker):
            for queue in QUEUES:
                self.broker.join(queue, timeout=timeout_ms)
            if self.worker is not None:
                self.worker.join()

    def stop(self) -> None:
        if "scheduler" in self._started:
            self.scheduler.stop()
        if "relay" in self._started:
            self.relay.stop()
        if self.worker is not None:
            self.runner.stop()  # a job waiting for the database to keep its outcome stops
            self.worker.stop()
            self.worker = None
        self._started.clear()
        self.broker.close()
        self.db.dispose()


def bootstrap(
    settings: Settings | None = None,
    *,
    clock: Clock = utcnow,
    guards: Mapping[str, Guard] | None = None,
    effects: Mapping[str, Effect] | None = None,
    jobs: Mapping[str, JobAction] | None = None,
    checks: Sequence[Check] | None = None,
    check_schema: bool = True,
    db: SqlEngine | None = None,
) -> Runtime:
    """Wire congvan from settings. Tests pass fakes for guards, effects and jobs."""
    settings = settings or Settings()
    db = db or make_engine(
        settings.db_url, synchronous=settings.sqlite_synchronous, pool_size=settings.db_pool_size
    )
    if check_schema:
        ensure_migrated(db)

    def open_uow(readonly: bool = False) -> UnitOfWork:
        return UnitOfWork(db, readonly=readonly, outlet=relay)  # the relay, made below

    broker = make_broker(settings.broker_url.get_secret_value())
    calendar = WorkingCalendar(settings.extra_days_off, settings.extra_working_days)
    review = Review(
        CHECKS if checks is None else checks,
        max_attachment_bytes=settings.max_attachment_bytes,
        max_subject_length=settings.max_subject_length,
        calendar=calendar,
        send_cutoff=settings.send_cutoff,
        max_package_bytes=settings.max_request_bytes,
    )
    trust = TrustStore(settings.trust_path)
    watch = Watch(
        settings.province_rules(),
        calendar,
        settings.hours(),
        notify=queue_notifications,
        job_deadline=timedelta(seconds=settings.job_deadline_seconds),
    )
    timestamping = Timestamping(
        settings.tsa_url,
        trust,
        timeout=settings.tsa_timeout_seconds,
        job_deadline=timedelta(seconds=settings.job_deadline_seconds),
    )
    signing = Signing(
        settings.passphrase,
        trust,
        max_pdf_bytes=settings.max_attachment_bytes,
        timestamping=timestamping,
        calendar=calendar,
        send_cutoff=settings.send_cutoff,
        sign_within_working_days=settings.sign_within_working_days,
        deadlines=watch.deadlines,
    )
    every = settings.audit_anchor_minutes
    anchoring = Anchoring(
        settings.passphrase,
        trust,
        timedelta(minutes=every) if every else None,
        job_deadline=timedelta(seconds=settings.job_deadline_seconds),
        timestamping=timestamping,
    )
    sending = Sending(anchoring.keys)
    revocation_lists = RevocationLists(
        settings.ca_passphrase,  # our CRL is signed with the CA key
        days=settings.crl_days,
        refresh_before=timedelta(hours=min(settings.crl_refresh_hours, settings.crl_days * 12)),
        warn_before=timedelta(hours=settings.crl_warn_hours),
        check_every=timedelta(minutes=settings.crl_check_minutes),
    )
    delivery_lease = timedelta(seconds=settings.delivery_lease_seconds)
    delivery = Delivery(trust, clock=clock, keys=anchoring.keys, lease=delivery_lease)
    status_sending = StatusSending(anchoring.keys)
    job_actions: dict[str, AnyJob] = {
        "run_review_checks": review.job,
        ANCHOR_JOB: anchoring,
        TIMESTAMP_JOB: timestamping,
        "deliver_dispatches": delivery,
        "send_status": status_sending,
        NOTIFY_JOB: notifying(settings),
        **JOBS,
        **(jobs or {}),
    }
    # One per process: the scheduler and the workers wait while this machine's clock is
    # off the database server's (a step since the process started).
    clock_watch = ClockWatch(settings.clock_allowance())
    runner = JobRunner(
        open_uow,
        job_actions,
        clock,
        max_attempts=settings.job_max_attempts,
        deadline_seconds=settings.job_deadline_seconds,
        clock_watch=clock_watch,
    )
    delivery_backoff = Backoff(
        timedelta(seconds=settings.delivery_retry_seconds),
        timedelta(
            seconds=max(settings.delivery_retry_cap_seconds, settings.delivery_retry_seconds)
        ),
        settings.delivery_retry_jitter,
    )
    delivering = (deliver_actor.SPEC, deliver_actor.STATUS_SPEC)
    install_actors(
        broker,
        runner,
        specs_for(
            job_actions,
            {
                **KNOWN_ACTORS,
                **{
                    s.job: s.tuned(backoff=delivery_backoff, time_limit=delivery_lease)
                    for s in delivering
                },
                NOTIFY_JOB: notify_actor.configured(
                    max_attempts=settings.notify_max_attempts,
                    first=settings.notify_retry_seconds,
                    cap=settings.notify_retry_cap_seconds,
                ),
            },
        ),
        default=runner.default,
        threads=settings.worker_threads,
    )
    relay = Relay(
        open_uow,
        broker,
        clock,
        batch=settings.relay_batch,
        poll_seconds=settings.relay_poll_seconds,
    )
    scheduler = Scheduler(
        open_uow,
        clock,
        max_attempts=settings.timer_max_attempts,
        retry_seconds=settings.timer_retry_seconds,
        retry_cap_seconds=settings.timer_retry_cap_seconds,
        batch=settings.scheduler_batch,
        poll_seconds=settings.scheduler_poll_seconds,
        on_requeue=relay.kick,
        clock_watch=clock_watch,
        handlers={
            JOB_DEADLINE: runner.on_deadline,
            AUDIT_ANCHOR: anchoring.on_timer,
            CRL_CHECK: partial(
                _check_trust,
                revocation_lists,
                watch,
                timedelta(hours=settings.crl_warn_hours),
                timedelta(days=settings.certificate_warn_days),
            ),
            RULE_DEADLINE: watch.on_deadline,
            ESCALATION_RISE: watch.on_rise,
            ESCALATION_WAKE: watch.on_wake,
        },
    )
    engine = Engine(
        open_uow,
        guards={
            **GUARDS,
            **RECALL_GUARDS,
            "checks_cleared": review.checks_cleared,
            "signer_has_authority": signing.signer_has_authority,
            "signature_valid": signing.signature_valid,
            "not_duplicate": signing.not_duplicate,
            **watch.guards(),
            **(guards or {}),
        },
        effects={
            **EFFECTS,
            **RECALL_EFFECTS,
            "record_submission": review.record_submission,
            "withdraw_submission": review.withdraw_submission,
            "waive_check": review.waive_check,
            # Signing the PDF is a transition's heaviest work: done before its transaction.
            "attach_signature": PreparedEffect(signing.attach_signature, signing.prepare_signature),
            # So is sealing a package header per recipient with the agency's key.
            "seal_packages": PreparedEffect(sending.seal_packages, sending.prepare_seals),
            **watch.effects(),
            "seal_requests": PreparedEffect(sending.seal_requests, sending.prepare_request_seals),
            **(effects or {}),
        },
        jobs=list(job_actions),
        clock=clock,
        job_deadline_seconds=settings.job_deadline_seconds,
        dispatch_max_attempts=settings.dispatch_max_attempts,
        unavailable=NOT_YET_BUILT,
        watch=watch,
    )
    watch.events = engine
    status_sending.watch = watch
    runner.events = engine  # jobs fire events through the engine's narrow interface
    inbox = Inbox(
        engine,
        anchoring.keys,
        trust,
        Limits(
            max_total_size=settings.max_request_bytes,
            # package.json, two signatures, manifest, signed PDF
            max_parts=settings.max_attachments + 5,
            # A signed PDF is its main file and the signatures appended to it.
            max_part_size=settings.max_attachment_bytes + SIGNATURE_ROOM,
            max_files=settings.max_attachments,
            max_file_size=settings.max_attachment_bytes,
        ),
    )
    statuses = Statuses(engine, anchoring.keys, trust)
    # Between agencies served here: our own inbox and status route, in the process.
    local = local_transport(inbox, statuses)
    delivery.local = status_sending.local = lambda: local
    return Runtime(
        settings=settings,
        db=db,
        clock=clock,
        engine=engine,
        broker=broker,
        relay=relay,
        scheduler=scheduler,
        runner=runner,
        review=review,
        anchoring=anchoring,
        trust=trust,
        revocation_lists=revocation_lists,
        timestamping=timestamping,
        inbox=inbox,
        statuses=statuses,
        watch=watch,
    )


def _check_trust(
    revocation_lists: RevocationLists,
    watch: Watch,
    crl_warn: timedelta,
    certificate_warn: timedelta,
    uow: UnitOfWork,
    timer: DueTimer,
    now: datetime,
) -> None:
    """The trust check timer: CRLs republished and warned of, then the escalations of
    certificates and lists running out opened or closed."""
    revocation_lists.on_timer(uow, timer, now)
    watch.check_trust(uow, now, crl_warn=crl_warn, certificate_warn=certificate_warn)


def notifying(settings: Settings) -> Notifying:
    """The notification job as configured: e-mail only when an SMTP server is set."""
    smtp = None
    if settings.smtp_host:
        password = settings.smtp_password
        smtp = Smtp(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            timeout=settings.smtp_timeout_seconds,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=password.get_secret_value() if password is not None else None,
            ca_file=settings.smtp_ca_file,
        )
    return Notifying(
        base_url=settings.public_url,
        smtp=smtp,
        webhook_timeout=settings.webhook_timeout_seconds,
        max_attempts=settings.notify_max_attempts,
        networks=settings.private_networks(),
    )


def describe(runtime: Runtime) -> dict[str, Any]:
    """A safe summary of the configuration (no secrets)."""
    return {
        "database": shown_url(runtime.db.url),
        "broker": type(runtime.broker).__name__,
        "worker_threads": runtime.settings.worker_threads,
        "timestamp_authority": runtime.settings.tsa_url or None,
    }
