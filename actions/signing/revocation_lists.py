"""The CRL lifecycle: our CRL republished before it runs out, operators warned of any that will.

Every signature check needs a current CRL of each CA on the path; when our CA's CRL passes
its next update, every signature is refused (``revocation_unknown``) and every new audit
anchor reads as broken. So a database timer (``crl_check``, every ``check_every``) looks at
the newest CRL of each issuer:

- ours, with less than ``refresh_before`` left: a new one is signed and published;
- any, with less than ``warn_before`` left (another CA's, which only it can renew, or ours
  when it cannot be renewed, e.g. no key passphrase configured): a warning is logged
  (``action: crl.expiring``, or ``crl.expired``), with the issuer and the time left.

The handler never raises: a failure is logged and the next check comes anyway, so the
scheduler's batch is never rolled back by it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from cryptography import x509

from congvan.states.errors import CongvanError
from congvan.storage.clock import as_utc
from congvan.storage.ids import new_id
from congvan.storage.timers import CRL_CHECK, DueTimer
from congvan.storage.unit_of_work import UnitOfWork

from . import keystore

log = logging.getLogger("congvan.crl")


class RevocationLists:
    """Republishes our CRL and warns of expiring ones; the scheduler drives it."""

    def __init__(
        self,
        passphrase: Callable[[], str],
        *,
        days: int,
        refresh_before: timedelta,
        warn_before: timedelta,
        check_every: timedelta,
    ) -> None:
        if refresh_before >= timedelta(days=days):
            raise ValueError("refresh_before must be shorter than a CRL's validity")
        self.passphrase = passphrase
        self.days = days
        self.refresh_before = refresh_before
        self.warn_before = warn_before
        self.check_every = check_every

    def check(self, uow: UnitOfWork, now: datetime) -> dict[str, str]:
        """Republish ours if due and warn of the others; what happened, by issuer."""
        outcome: dict[str, str] = {}
        ours = _our_ca_fingerprint(uow)
        for crl in uow.signatures.latest_crl_rows():
            issuer = crl.issuer_fingerprint
            left = as_utc(crl.next_update) - now
            if issuer == ours and left < self.refresh_before:
                try:
                    keystore.publish_crl(uow, passphrase=self.passphrase(), now=now, days=self.days)
                except CongvanError as exc:
                    log.error(
                        "our CRL could not be republished",
                        extra={"action": "crl.republish_failed", "error": exc.message},
                    )
                else:
                    log.info("CRL republished", extra={"action": "crl.republished"})
                    outcome[issuer] = "republished"
                    continue
            if left < self.warn_before:
                name = _issuer_name(bytes(crl.der))
                expired = left <= timedelta(0)
                log.warning(
                    "a CRL in use has expired" if expired else "a CRL in use expires soon",
                    extra={
                        "action": "crl.expired" if expired else "crl.expiring",
                        "issuer": name,
                        "next_update": as_utc(crl.next_update).isoformat(),
                        "hours_left": round(left.total_seconds() / 3600, 1),
                    },
                )
                outcome[issuer] = "expired" if expired else "expiring"
        return outcome

    def on_timer(self, uow: UnitOfWork, timer: DueTimer, now: datetime) -> None:
        """The check timer fired: check, and set the next one (exactly one)."""
        try:
            with uow.savepoint():  # a savepoint: a failure undoes only this check
                self.check(uow, now)
        except Exception:
            log.exception("CRL check failed", extra={"action": "crl.check_failed"})
        uow.timers.cancel(CRL_CHECK, CRL_CHECK)
        self._set_timer(uow, now + self.check_every)

    def ensure_timer(self, uow: UnitOfWork, now: datetime) -> None:
        """Set the check timer unless one is set; the first check is due at once."""
        if not uow.timers.of_kind(CRL_CHECK):
            self._set_timer(uow, now)

    def _set_timer(self, uow: UnitOfWork, due_at: datetime) -> None:
        uow.timers.add(
            [
                {
                    "id": new_id(),
                    "kind": CRL_CHECK,
                    "ref_id": CRL_CHECK,
                    "document_id": None,
                    "due_at": due_at,
                }
            ]
        )


def _our_ca_fingerprint(uow: UnitOfWork) -> str | None:
    rows = [r for r in uow.signatures.roots() if r.key_pem]
    return rows[-1].fingerprint if rows else None


def _issuer_name(der: bytes) -> str:
    try:
        return x509.load_der_x509_crl(der).issuer.rfc4514_string()
    except ValueError:
        return "(unreadable CRL)"
