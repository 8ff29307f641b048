"""Which certificates and revocation lists of the agencies we sign for are running out:
each opens an escalation, which closes once it is renewed or refreshed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from congvan.states import escalation as e
from congvan.storage.clock import as_utc
from congvan.storage.unit_of_work import UnitOfWork

from .lifecycle import Lifecycle


class TrustCheck(Lifecycle):
    """Opens and closes the escalations of certificates and revocation lists running out."""

    def check_trust(
        self, uow: UnitOfWork, now: datetime, *, crl_warn: timedelta, certificate_warn: timedelta
    ) -> dict[str, int]:
        """Open certificate_expiring / crl_expiring for every agency concerned, close those
        whose certificate was renewed or whose list was refreshed. Cost: the certificates
        and lists in use, never the documents. Returns how many opened and closed."""
        counts = {"opened": 0, "closed": 0}
        mine = [c for c in uow.signatures.certificates() if c.kind != "root" and c.agency_id]
        # The agencies this installation signs for: those whose organisational key is here.
        agencies = sorted({c.agency_id or "" for c in mine if c.kind == "agency" and c.key_pem})
        for crl in uow.signatures.latest_crl_rows():
            left = as_utc(crl.next_update) - now
            for agency_id in agencies:
                subject = f"{agency_id}:{crl.issuer_fingerprint}"
                if left < crl_warn:
                    detail = {
                        "issuer_fingerprint": crl.issuer_fingerprint,
                        "next_update": as_utc(crl.next_update).isoformat(),
                        "number": crl.number,
                    }
                    counts["opened"] += self._open_trust(
                        uow, e.CRL_EXPIRING, subject, agency_id, crl.next_update, now, detail
                    )
                else:
                    key = e.cause_key(e.CRL_EXPIRING, subject)
                    counts["closed"] += self.close(uow, key, "a fresh list is in force", now)
        certificates = [c for c in mine if c.agency_id in agencies]
        for cert in certificates:
            agency_id = cert.agency_id or ""
            subject = f"{agency_id}:{cert.fingerprint}"
            key = e.cause_key(e.CERTIFICATE_EXPIRING, subject)
            renewed = any(
                other.kind == cert.kind
                and other.agency_id == cert.agency_id
                and other.username == cert.username
                and other.revoked_at is None
                and as_utc(other.not_after) - now >= certificate_warn
                for other in certificates
            )
            expiring = as_utc(cert.not_after) - now < certificate_warn
            if expiring and cert.revoked_at is None and not renewed:
                detail = {
                    "fingerprint": cert.fingerprint,
                    "certificate": cert.kind,
                    "username": cert.username,
                    "common_name": cert.subject.common_name,
                    "not_after": as_utc(cert.not_after).isoformat(),
                }
                counts["opened"] += self._open_trust(
                    uow,
                    e.CERTIFICATE_EXPIRING,
                    subject,
                    agency_id,
                    cert.not_after,
                    now,
                    detail,
                )
            else:
                why = "renewed" if renewed else "no longer in use"
                counts["closed"] += self.close(uow, key, why, now)
        return counts

    def _open_trust(
        self,
        uow: UnitOfWork,
        kind: str,
        subject: str,
        agency_id: str,
        due: datetime,
        now: datetime,
        detail: Mapping[str, Any],
    ) -> int:
        opened = self.open(
            uow,
            kind=kind,
            subject_id=subject,
            agency_id=agency_id,
            urgency=1,  # a signing agency that cannot sign stops everything: high
            due_at=due,
            now=now,
            detail=detail,
        )
        return 1 if opened is not None else 0
