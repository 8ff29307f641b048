"""The signed manifest: what a signature over a document and its attachments covers.

A signature never covers the files themselves but this manifest, which names every file by
its SHA-256. The manifest is JSON canonicalised per RFC 8785 (JCS): keys sorted by their
UTF-16 code units, no insignificant whitespace, strings as UTF-8 with only the escapes JSON
requires, so the same document always gives the same bytes on any machine and in any
language with a JCS implementation. Format ``congvan-manifest/1`` has these members:

``document_id``, ``revision``, ``agency_id``
    Which document, which revision of it, and the issuing agency's organ id.
``number``, ``symbol``, ``doc_type``, ``subject``, ``place``, ``issued_on``,
``signer_name``, ``signer_position``, ``signer_competence``, ``urgency``, ``due_date``
    The metadata as stored; a missing field is ``null``, dates are ISO ``YYYY-MM-DD``.
``legal_normative``
    ``true`` for a legal normative document (numbered in its type's series, written with
    its year); absent for any other, so documents signed before it existed keep their
    bytes.
``recipients``
    The organ ids of the recipients (nơi nhận), in their order.
``attachments``
    ``{"role", "filename", "media_type", "size", "sha256"}`` per file, in their order;
    ``sha256`` is lowercase hex of the file's bytes.
``format``
    Always ``"congvan-manifest/1"``.

Text is signed as stored: JCS does not normalise Unicode, so store Vietnamese text in NFC.
Example (one line in reality, wrapped here)::

    {"agency_id":"000.00.00.H57","attachments":[{"filename":"1227-UBND-TĐKT.pdf",
    "media_type":"application/pdf","role":"main","sha256":"9f86d0…0f00a08","size":48213}],
    "doc_type":"CV","document_id":"doc-1","due_date":null,"format":"congvan-manifest/1",
    "issued_on":"2021-02-06","number":1227,"place":"Thừa Thiên Huế",
    "recipients":["000.00.01.H57","000.00.02.H57"],"revision":3,
    "signer_competence":"KT. CHỦ TỊCH","signer_name":"Nguyễn Văn Phương",
    "signer_position":"PHÓ CHỦ TỊCH","subject":"V/v tăng cường gửi, nhận văn bản điện tử",
    "symbol":"UBND-TĐKT","urgency":0}
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from congvan.states.fields import SIGNED, SIGNED_WHEN_SET, SIGNED_WHEN_TRUE
from congvan.storage.canonical import canonical_bytes

FORMAT = "congvan-manifest/1"
# The metadata every manifest names, null when missing (states.fields); the docstring
# above is the format, and a test holds the two together.
METADATA_FIELDS = SIGNED
ATTACHMENT_FIELDS = ("role", "filename", "media_type", "size", "sha256")
# Every manifest's members (besides SIGNED_WHEN_TRUE and SIGNED_WHEN_SET, named when so).
MANIFEST_MEMBERS = (
    "document_id",
    "revision",
    "agency_id",
    *METADATA_FIELDS,
    "recipients",
    "attachments",
    "format",
)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def build_manifest(document: Mapping[str, Any], attachments: Sequence[Mapping[str, Any]]) -> bytes:
    """Return the canonical manifest bytes of a document revision and its files.

    ``document`` is a documents row as a mapping (``id`` or ``document_id``, ``revision``,
    ``agency_id``, the metadata fields; ``DocumentRow.as_dict()``) plus ``recipients``:
    organ ids, or mappings with an ``organ_id``. Raises ``ValueError`` when an identifying
    field or an attachment field is missing or malformed.
    """
    document_id = document.get("document_id", document.get("id"))
    for name, value in (
        ("document_id", document_id),
        ("revision", document.get("revision")),
        ("agency_id", document.get("agency_id")),
    ):
        if value is None or value == "":
            raise ValueError(f"the manifest needs the document's {name}")
    manifest: dict[str, Any] = {
        "document_id": document_id,
        "revision": document["revision"],
        "agency_id": document["agency_id"],
        **{name: _plain(document.get(name)) for name in METADATA_FIELDS},
        "recipients": [_organ_id(r) for r in document.get("recipients", ())],
        "attachments": [_attachment(i, a) for i, a in enumerate(attachments)],
        "format": FORMAT,
    }
    manifest.update({name: True for name in SIGNED_WHEN_TRUE if document.get(name)})
    manifest.update(
        {name: _plain(document[name]) for name in SIGNED_WHEN_SET if document.get(name)}
    )
    return canonical_bytes(manifest)


def _plain(value: Any) -> Any:
    # Dates may come as date objects from Python callers and as ISO strings from storage.
    return value.isoformat() if isinstance(value, date | datetime) else value


def _organ_id(recipient: str | Mapping[str, Any]) -> str:
    return recipient if isinstance(recipient, str) else str(recipient["organ_id"])


def _attachment(index: int, attachment: Mapping[str, Any]) -> dict[str, Any]:
    missing = [name for name in ATTACHMENT_FIELDS if attachment.get(name) is None]
    if missing:
        raise ValueError(f"attachment {index} lacks {', '.join(missing)}")
    if not _SHA256_HEX.fullmatch(str(attachment["sha256"])):
        raise ValueError(f"attachment {index}: sha256 must be 64 lowercase hex digits")
    size = attachment["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"attachment {index}: size must be a non-negative integer")
    return {name: attachment[name] for name in ATTACHMENT_FIELDS}
