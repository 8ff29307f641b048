"""The directory of peers: where agencies served by other congvan instances take deliveries.

A peer entry names an agency's inbox URL and how deliveries to it are made; the agency's
organisational certificates, kept in the key store (kind ``agency``), are what its
packages, receipts and status messages are verified against, chained to the pinned roots
(DESIGN.md principles 9 and 10). The directory file (``congvan-directory/1``) carries both
from one instance to another: ``export_directory`` writes it for our own agencies,
``import_directory`` reads it, all or nothing.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cryptography import x509

from congvan.actions.signing import issuers, keystore
from congvan.actions.signing.certfiles import import_certificates
from congvan.actions.signing.description import owned_by
from congvan.actions.signing.truststore import TrustStore
from congvan.states import policy
from congvan.states.errors import (
    AlreadyExists,
    CongvanError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    UnknownPeer,
)
from congvan.states.inboxes import validate_inbox_url
from congvan.states.text import has_visible_text
from congvan.storage.clock import as_utc
from congvan.storage.peers import Peer
from congvan.storage.signatures import CertificateRow
from congvan.storage.unit_of_work import UnitOfWork

from .directory import add_agency, agency_names, validate_organ_id
from .jsontext import read_json

FORMAT = "congvan-directory/1"
MAX_DIRECTORY_BYTES = 16 * 1024 * 1024
# Where an instance's inbox for one agency lives under its base URL.
INBOX_PATH = "/v1/inbox"  # one inbox per installation: a package names its recipient
_ENTRY_FIELDS = (
    "agency_id",
    "name",
    "abbreviation",
    "inbox_url",
    "certificates",
    "timeout_seconds",
    "max_concurrency",
)
_REQUIRED_FIELDS = _ENTRY_FIELDS[:5]


@dataclass(frozen=True)
class PeerAdded:
    """What ``add_peer`` did: the entry as stored, and what was new."""

    peer: Peer
    created: bool  # a new entry, not an update of the agency's one
    agency_created: bool  # the agency was not in the directory before
    certificates: tuple[str, ...]  # fingerprints of the certificates stored now
    changed: bool = True  # False: the entry and its certificates were as given already


def _bounded(value: int, bounds: tuple[int, int], field: str) -> int:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        # (the value as the file or request wrote it: true, not Python's True)
        shown = json.dumps(value, ensure_ascii=False, default=str)
        raise InvalidInput(
            f"{field} is a whole number from {low} to {high}.", field=field, value=shown[:20]
        )
    return value


def agency_certificates(data: bytes, agency_id: str) -> list[x509.Certificate]:
    """The certificates in ``data``, each an agency profile certificate naming ``agency_id``."""
    certs = import_certificates(data)
    owned_by(certs, agency_id, "agency")
    return certs


def _store_certificates(
    uow: UnitOfWork, certs: Iterable[x509.Certificate], agency_id: str, now: datetime
) -> tuple[str, ...]:
    """Keep the agency's certificates (held to a peer's rules by ``add_peer``); one held
    already for it is left as it is."""
    stored = []
    for cert in certs:
        fp = keystore.fingerprint(cert)
        held = uow.signatures.certificate(fp)
        if held is not None:
            if held.kind == "agency" and held.agency_id == agency_id:
                continue
            raise AlreadyExists(
                f"This certificate is stored already, as {held.kind} "
                f"of {held.agency_id or 'no agency'}.",
                field="certificates",
                sha256=fp,
            )
        keystore.keep_agency_certificate(uow, cert, agency_id, now)
        stored.append(fp)
    return tuple(stored)


def add_peer(
    uow: UnitOfWork,
    agency_id: str,
    *,
    name: str,
    abbreviation: str,
    inbox_url: str,
    certificates: bytes | None,
    trust: TrustStore,
    timeout: int | None = None,
    concurrency: int | None = None,
    now: datetime,
    allow_http: bool = False,
    transport: str = "http",
) -> PeerAdded:
    """Add the agency's peer entry, or update it; the agency is added when missing.

    ``certificates`` (PEM, DER or PKCS#7) are the agency's organisational certificates;
    each must be one, naming this agency and chaining to a root pinned in ``trust``, and
    is kept beside those held already.
    ``name`` and ``abbreviation`` name the agency: a new one, or one another instance
    serves whose directory entry now names it otherwise (renamed, merged); left empty, an
    agency in the directory keeps its own. ``timeout`` and ``concurrency`` left out keep
    the entry's own (an update changes what it names), or take the defaults.
    """
    validate_organ_id(agency_id, "agency_id")
    url = validate_inbox_url(inbox_url, allow_http=allow_http, path_required=True)
    if transport not in policy.PEER_TRANSPORTS:
        raise InvalidInput(
            f"transport is one of {', '.join(policy.PEER_TRANSPORTS)}.",
            field="transport",
            allowed=list(policy.PEER_TRANSPORTS),
        )
    if timeout is not None:
        timeout = _bounded(timeout, policy.PEER_TIMEOUT_RANGE, "timeout_seconds")
    if concurrency is not None:
        concurrency = _bounded(concurrency, policy.PEER_CONCURRENCY_RANGE, "max_concurrency")
    certs = agency_certificates(certificates, agency_id) if certificates is not None else []
    issuers.require_pinned_chain(uow, trust, certs, "certificates")
    uow.agencies.hold(agency_id)  # its users or key are not added here meanwhile
    kept = uow.agencies.agency(agency_id)
    agency_created = kept is None
    renamed = False
    if kept is None:
        add_agency(uow, agency_id, name, abbreviation, now)
    else:
        keystore.refuse_served_here(
            uow,
            agency_id,
            now,
            field="agency_id",
            held="a peer entry is for an agency another instance serves",
        )
        if name.strip() or abbreviation.strip():
            names = agency_names(name or kept.name, abbreviation or kept.abbreviation)
            renamed = names != (kept.name, kept.abbreviation)
            if renamed:
                uow.agencies.rename(agency_id, *names)
    fingerprints = _store_certificates(uow, certs, agency_id, now)
    if not any(_verifiable(row, now) for row in uow.signatures.certificates(agency_id)):
        raise InvalidInput(
            f"certificates: agency {agency_id} holds no organisational certificate valid "
            "now, so nothing it signs (a receipt, a status) could be verified: give one "
            "(PEM, DER or PKCS#7; `congvan peers add --certificate`).",
            field="certificates",
            agency_id=agency_id,
        )
    before = uow.peers.get(agency_id)
    if timeout is None:
        timeout = before.timeout_seconds if before else policy.PEER_TIMEOUT_SECONDS
    if concurrency is None:
        concurrency = before.max_concurrency if before else policy.PEER_CONCURRENCY
    peer = Peer(
        agency_id=agency_id,
        inbox_url=url,
        transport=transport,
        timeout_seconds=timeout,
        max_concurrency=concurrency,
        created_at=before.created_at if before else now,
        updated_at=now,
    )
    if (
        before is not None
        and not fingerprints
        and not renamed
        and replace(before, updated_at=now) == peer
    ):
        # The same entry again (a directory file imported twice): nothing changed, nor its time
        return PeerAdded(before, False, agency_created, fingerprints, changed=False)
    created = uow.peers.put(peer)
    return PeerAdded(peer, created, agency_created, fingerprints)


def remove_peer(uow: UnitOfWork, agency_id: str) -> int:
    """Forget the agency's inbox; the agency and its certificates stay (documents name it).

    Returns how many dispatches to it were still to deliver: each fails at its next
    attempt, saying its peer is unknown, and is resent once the entry is back.
    """
    if not policy.is_organ_id(agency_id or "") or not uow.peers.remove(agency_id):
        raise NotFound(f"No peer entry for agency {agency_id}.", agency_id=agency_id)
    return uow.dispatches.waiting_for(agency_id)


def list_peers(
    uow: UnitOfWork, *, after: str | None = None, limit: int | None = None
) -> list[Peer]:
    """Peer entries by agency id: all of them, or ``limit`` after the agency id ``after``."""
    return uow.peers.list(after=after, limit=limit)


def peer_for(uow: UnitOfWork, organ_id: str) -> Peer:
    """Where a document for ``organ_id`` is delivered; ``UnknownPeer`` when nobody knows."""
    # An id no agency can have (PostgreSQL refuses NUL in a query) has no entry either.
    peer = uow.peers.get(organ_id) if policy.is_organ_id(organ_id or "") else None
    if peer is None:
        raise UnknownPeer(
            f"No peer entry for agency {organ_id}: add its inbox with `congvan peers add` "
            "or `congvan peers import`.",
            agency_id=organ_id,
        )
    return peer


def _entry_error(index: int, field: str, exc: CongvanError) -> CongvanError:
    """``exc`` again, its message and details naming the entry and the field."""
    named = copy.copy(exc)
    field = str(exc.details.get("field") or field)
    named.message = f"agencies[{index}].{field}: {exc.message}"
    named.details = {**exc.details, "index": index, "field": field}
    named.args = (named.message,)
    return named


def _entry_text(entry: Mapping[str, Any], index: int, field: str) -> str:
    value = entry.get(field)
    if not isinstance(value, str) or not has_visible_text(value):
        raise InvalidInput(
            f"agencies[{index}].{field}: a non-empty string is required.", index=index, field=field
        )
    return value


def _entry_certificates(entry: Mapping[str, Any], index: int) -> bytes:
    value = entry.get("certificates")
    field = "certificates"
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidInput(
            f"agencies[{index}].{field}: a non-empty list of PEM certificates is required.",
            index=index,
            field=field,
        )
    if any("PRIVATE KEY" in v for v in value):
        raise InvalidInput(
            f"agencies[{index}].{field}: a directory file carries certificates, never keys.",
            index=index,
            field=field,
        )
    if not all("-----BEGIN CERTIFICATE-----" in v for v in value):
        raise InvalidInput(
            f"agencies[{index}].{field}: each item is one PEM certificate "
            "(-----BEGIN CERTIFICATE-----).",
            index=index,
            field=field,
        )
    return "\n".join(value).encode("ascii", "replace")


_BOM = b"\xef\xbb\xbf"


def read_directory(data: bytes) -> list[dict[str, Any]]:
    """The entries of a ``congvan-directory/1`` file, their shape checked (not their values)."""
    if len(data) > MAX_DIRECTORY_BYTES:
        raise PayloadTooLarge(
            f"A directory file is at most {MAX_DIRECTORY_BYTES} bytes.", field="file"
        )
    # A byte order mark before the text, as Windows editors save UTF-8: not part of it
    text = data.removeprefix(_BOM)
    try:
        document = read_json(text, where="directory file")  # a key given twice is refused
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"The directory file is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).",
            field="file",
        ) from exc
    except RecursionError as exc:
        raise InvalidInput("The directory file nests too deep to read.", field="file") from exc
    except CongvanError:
        raise  # not UTF-8, a key given twice, too many values: said as such
    except ValueError as exc:  # a number of thousands of digits: Python reads none so long
        raise InvalidInput(
            "A number in the directory file is too long to read.", field="file"
        ) from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InvalidInput(
            f'A directory file is a JSON object with "format": "{FORMAT}".', field="format"
        )
    entries = document.get("agencies")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InvalidInput('"agencies" is a list of objects.', field="agencies")
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        unknown = sorted(set(entry) - set(_ENTRY_FIELDS))
        if unknown:
            raise InvalidInput(
                f"agencies[{index}].{unknown[0]}: not a field of a directory entry "
                f"({', '.join(_ENTRY_FIELDS)}).",
                index=index,
                field=unknown[0],
            )
        for field in _REQUIRED_FIELDS:
            if field not in entry:
                raise InvalidInput(f"agencies[{index}].{field}: missing.", index=index, field=field)
        agency_id = entry["agency_id"]
        if not isinstance(agency_id, str):
            raise InvalidInput(
                f"agencies[{index}].agency_id: an agency identifier (text).",
                index=index,
                field="agency_id",
            )
        if agency_id in seen:
            raise InvalidInput(
                f"agencies[{index}].agency_id: {agency_id} is listed twice.",
                index=index,
                field="agency_id",
            )
        seen.add(agency_id)
    return entries


def import_directory(
    uow: UnitOfWork, data: bytes, now: datetime, *, trust: TrustStore, allow_http: bool = False
) -> list[PeerAdded]:
    """Add or update a peer entry for every agency the file lists: all of them, or none.

    Nothing is committed here; an error names the entry (``agencies[i]``) and its field,
    and leaves the caller's unit of work to roll everything back.
    """
    added = []
    for index, entry in enumerate(read_directory(data)):
        try:
            agency_id = _entry_text(entry, index, "agency_id")
            name = _entry_text(entry, index, "name")
            abbreviation = _entry_text(entry, index, "abbreviation")
            inbox_url = _entry_text(entry, index, "inbox_url")
            certificates = _entry_certificates(entry, index)
            added.append(
                add_peer(
                    uow,
                    agency_id,
                    name=name,
                    abbreviation=abbreviation,
                    inbox_url=inbox_url,
                    certificates=certificates,
                    trust=trust,
                    timeout=entry.get("timeout_seconds"),  # left out: the entry's own
                    concurrency=entry.get("max_concurrency"),
                    now=now,
                    allow_http=allow_http,
                )
            )
        except CongvanError as exc:
            if "index" in exc.details:
                raise
            # Only an unreadable certificate says no field of its own.
            raise _entry_error(index, "certificates", exc) from exc
    return added


def default_inbox_url(base: str) -> Callable[[str], str]:
    """Each agency's inbox under ``base``: ``{agency_id}`` in it is replaced, else
    ``INBOX_PATH`` is appended. A brace naming anything else is refused (a placeholder
    misspelt, ``{agency}``, would be exported as it is)."""
    if "{" in base.replace("{agency_id}", "") or "}" in base.replace("{agency_id}", ""):
        raise InvalidInput(
            "The inbox URL base takes one placeholder, {agency_id}, and no other brace.",
            field="inbox_url_base",
        )
    if "{agency_id}" in base:
        return lambda agency_id: base.replace("{agency_id}", agency_id)
    return lambda agency_id: base.rstrip("/") + INBOX_PATH.format(agency_id=agency_id)


def export_directory(
    uow: UnitOfWork,
    agency_ids: Iterable[str],
    inbox_url_for: Callable[[str], str],
    *,
    now: datetime,
    allow_http: bool = False,
) -> bytes:
    """A ``congvan-directory/1`` file for our agencies (all those holding an organisational
    key when ``agency_ids`` is empty): their inboxes and agency certificates, no keys."""
    wanted = sorted(set(agency_ids))
    if not wanted:
        wanted = sorted(
            {r.agency_id for r in uow.signatures.certificates() if r.agency_id and _ours(r, now)}
        )
        if not wanted:
            raise NotFound(
                "No agency here holds an organisational key: issue one with "
                "`congvan keys issue-agency --agency …`."
            )
    entries = []
    for agency_id in wanted:
        agency = uow.agencies.agency(agency_id) if policy.is_organ_id(agency_id) else None
        if agency is None:
            raise NotFound(f"No agency {agency_id}.", agency_id=agency_id)
        certs = [r.cert_pem for r in uow.signatures.certificates(agency_id) if _ours(r, now)]
        if not certs:
            raise InvalidInput(
                f"Agency {agency_id} holds no valid organisational key here, so peers could "
                "verify nothing it signs: issue one with `congvan keys issue-agency`.",
                field="agency_id",
                agency_id=agency_id,
            )
        entries.append(
            {
                "agency_id": agency_id,
                "name": agency.name,
                "abbreviation": agency.abbreviation,
                "inbox_url": validate_inbox_url(
                    inbox_url_for(agency_id), allow_http=allow_http, path_required=True
                ),
                "certificates": certs,
            }
        )
    text = json.dumps({"format": FORMAT, "agencies": entries}, ensure_ascii=False, indent=2)
    return (text + "\n").encode("utf-8")


def _verifiable(row: CertificateRow, now: datetime) -> bool:
    """An organisational certificate of the agency that its signatures are verified by now."""
    return (
        row.kind == "agency"
        and row.revoked_at is None
        and as_utc(row.not_before) <= now < as_utc(row.not_after)
    )


def _ours(row: CertificateRow, now: datetime) -> bool:
    """An organisational certificate of one of our agencies, usable now: its key is here."""
    return bool(row.key_pem) and _verifiable(row, now)
