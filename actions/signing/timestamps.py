"""RFC 3161 timestamps of a CMS signature: ask a TSA, check its answer, verify a token.

A signature timestamp (RFC 3161 appendix A, RFC 5652 countersignature practice) stamps
the SHA-256 of the SignerInfo's signature value. The token is a CMS SignedData over a
``TSTInfo`` (genTime, message imprint, nonce) signed by the timestamp authority, and
travels as the unsigned attribute id-aa-signatureTimeStampToken of that SignerInfo.

Verifying a token checks, and raises ``TimestampInvalid`` at the first failure: it is a
token, its imprint is the hash of the signature value, its own signature verifies, and
the TSA's certificate chains to the trust roots given (the same pinned roots and CRLs as
every verification, as of the token's genTime), with the critical extended key usage
timeStamping alone. The request goes over httpx with a transport callers may inject.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from asn1crypto import cms as asn1_cms
from asn1crypto import core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko.sign.validation.status import TimestampSignatureStatus

from congvan.states.errors import SignatureMalformed, TimestampInvalid, WeakAlgorithm

from .certpath import validation_context
from .cms import asn1_cert
from .der import reading_failure
from .strict import check_strict_timestamp_token

DIGEST = "sha256"
QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
MAX_REPLY_BYTES = 64 * 1024


class TimeStampResp(core.Sequence):  # type: ignore[misc]
    """RFC 3161 TimeStampResp; asn1crypto's own wants a token even in a refusal."""

    _fields = [  # noqa: RUF012 - asn1crypto's declaration style
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", asn1_cms.ContentInfo, {"optional": True}),
    ]


class TimestampUnavailable(Exception):
    """The timestamp authority could not be reached or did not grant a usable token."""


@dataclass(frozen=True)
class Stamp:
    """A verified timestamp: when, by which authority, and the token itself."""

    gen_time: datetime
    authority: str  # the TSA certificate's subject, as people read it
    authority_sha256: str
    token: bytes = field(repr=False)


# -- requesting ------------------------------------------------------------------------


def imprint_of(signature_value: bytes) -> bytes:
    """What a signature timestamp stamps: the SHA-256 of the signature value."""
    return hashlib.sha256(signature_value).digest()


class HttpxTimeStamper(TimeStamper):
    """pyHanko's TimeStamper speaking HTTP through httpx (its own client uses aiohttp)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(include_nonce=True)  # type: ignore[no-untyped-call]
        self.url = url
        self.timeout = timeout
        self.transport = transport

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> TimeStampResp:
        """The TSA's answer, read within the timeout for the whole exchange (not each read:
        an answer trickled a byte at a time is given up at the end of it) and never past
        ``MAX_REPLY_BYTES`` (what comes beyond is left unread)."""
        headers = {"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPE, "Accept-Encoding": "identity"}
        async with httpx.AsyncClient(transport=self.transport, timeout=self.timeout) as client:
            try:
                async with asyncio.timeout(self.timeout):
                    body = await _bounded_answer(client, self.url, req.dump(), headers)
            except TimeoutError as exc:
                raise TimestampUnavailable(
                    f"the timestamp authority gave no whole answer within {self.timeout:g} s"
                ) from exc
            except httpx.HTTPError as exc:
                raise TimestampUnavailable(
                    f"the timestamp authority is unreachable: {type(exc).__name__}: {exc}"
                ) from exc
        try:
            response: TimeStampResp = TimeStampResp.load(body, strict=True)
            return response
        except (ValueError, TypeError) as exc:
            raise TimestampUnavailable(
                f"the answer is not a TimeStampResp: {reading_failure(exc)}"
            ) from exc

    async def async_request_token(self, signature_value: bytes) -> bytes:
        """A token over ``signature_value`` whose answer was granted and matches the request."""
        imprint = imprint_of(signature_value)
        nonce, request = self.request_cms(imprint, DIGEST)  # type: ignore[no-untyped-call]
        response = await self.async_request_tsa_response(request)
        return token_of_response(response, nonce=nonce, imprint=imprint)


async def _bounded_answer(
    client: httpx.AsyncClient, url: str, query: bytes, headers: dict[str, str]
) -> bytes:
    """POST ``query``; the answer's body as sent, or TimestampUnavailable for an answer
    that is not 200 or is larger than ``MAX_REPLY_BYTES``."""
    async with client.stream("POST", url, content=query, headers=headers) as answer:
        if answer.status_code != 200:
            raise TimestampUnavailable(f"the timestamp authority answered {answer.status_code}")
        if answer.is_stream_consumed:  # a test's transport hands its answer whole
            body = bytearray(answer.content)
        else:
            body = bytearray()
            async for chunk in answer.aiter_raw():
                body += chunk
                if len(body) > MAX_REPLY_BYTES:
                    break  # left unread
    if len(body) > MAX_REPLY_BYTES:
        raise TimestampUnavailable("the timestamp authority's answer is too large")
    return bytes(body)


def request_token(
    url: str,
    signature_value: bytes,
    *,
    timeout: float,
    transport: httpx.AsyncBaseTransport | None = None,
) -> bytes:
    """Ask the TSA at ``url`` to stamp ``signature_value``; the token (DER ContentInfo).

    Raises ``TimestampUnavailable``. Not callable inside an event loop.
    """
    stamper = HttpxTimeStamper(url, timeout=timeout, transport=transport)
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(stamper.async_request_token(signature_value))
    finally:
        loop.close()


def token_of_response(
    response: TimeStampResp | tsp.TimeStampResp, *, nonce: int | None, imprint: bytes
) -> bytes:
    """The token of a TimeStampResp: granted, our nonce echoed, our imprint stamped."""
    try:
        status = response["status"]
        if status["status"].native not in ("granted", "granted_with_mods"):
            texts = "; ".join(status["status_string"].native or [])
            fail = ", ".join(sorted(status["fail_info"].native or []))
            raise TimestampUnavailable(
                f"the timestamp authority refused: {status['status'].native} {texts} {fail}".strip()
            )
        token = response["time_stamp_token"]
        if isinstance(token, core.Void):
            raise TimestampUnavailable("the answer is granted but carries no token")
        info = _tst_info(token)
        if nonce is not None and info["nonce"].native != nonce:
            raise TimestampUnavailable("the timestamp authority did not echo our nonce")
        _check_imprint(info, imprint)
        return bytes(token.dump())
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampUnavailable(f"the answer is malformed: {reading_failure(exc)}") from exc
    except TimestampInvalid as exc:
        raise TimestampUnavailable(exc.message) from exc


# -- embedding -------------------------------------------------------------------------

_TOKEN_ATTRIBUTE = "signature_time_stamp_token"


def signature_value(cms_der: bytes) -> bytes:
    """The signature value of the one SignerInfo of a CMS ContentInfo."""
    return bytes(_signer_info(asn1_cms.ContentInfo.load(cms_der))["signature"].native)


def embedded_token(cms_der: bytes) -> bytes | None:
    """The signature timestamp token the CMS carries, or None."""
    return token_in(_signer_info(asn1_cms.ContentInfo.load(cms_der)))


def token_in(signer_info: asn1_cms.SignerInfo) -> bytes | None:
    """The signature timestamp token among a SignerInfo's unsigned attributes, or None;
    ValueError when there are more (each verifier would read its own)."""
    attributes = signer_info["unsigned_attrs"]
    if isinstance(attributes, core.Void):
        return None
    tokens = [
        attribute["values"]
        for attribute in attributes
        if attribute["type"].native == _TOKEN_ATTRIBUTE
    ]
    if not tokens:
        return None
    if len(tokens) != 1 or len(tokens[0]) != 1:
        raise ValueError("a signature carries one timestamp token")
    return bytes(tokens[0][0].dump())


def with_timestamp(cms_der: bytes, token: bytes) -> bytes:
    """The CMS with ``token`` as its SignerInfo's signature timestamp (replacing one).

    Only the unsigned attributes change: the signed attributes and the signature keep
    their bytes, so the signature still verifies and ``openssl cms -verify`` takes it.
    """
    content_info = asn1_cms.ContentInfo.load(cms_der)
    signed_data = content_info["content"]
    signer_info = _signer_info(content_info)
    kept = []
    if not isinstance(signer_info["unsigned_attrs"], core.Void):
        kept = [a for a in signer_info["unsigned_attrs"] if a["type"].native != _TOKEN_ATTRIBUTE]
    stamp = asn1_cms.CMSAttribute(
        {"type": _TOKEN_ATTRIBUTE, "values": [asn1_cms.ContentInfo.load(token)]}
    )
    signer_info["unsigned_attrs"] = asn1_cms.CMSAttributes([*kept, stamp])
    signed_data["signer_infos"] = asn1_cms.SignerInfos([signer_info])
    content_info["content"] = signed_data
    return bytes(content_info.dump())


def _signer_info(content_info: asn1_cms.ContentInfo) -> asn1_cms.SignerInfo:
    if content_info["content_type"].native != "signed_data":
        raise ValueError("it is not a CMS SignedData")
    signer_infos = content_info["content"]["signer_infos"]
    if len(signer_infos) != 1:
        raise ValueError(f"it has {len(signer_infos)} signers instead of one")
    info: asn1_cms.SignerInfo = signer_infos[0]
    return info


# -- verifying -------------------------------------------------------------------------


def describe_token(token: bytes) -> dict[str, Any]:
    """What a token says about itself, unverified: genTime, serial, policy, TSA name."""
    info = _tst_info(asn1_cms.ContentInfo.load(token))
    tsa = info["tsa"]
    return {
        "gen_time": info["gen_time"].native,
        "serial_number": info["serial_number"].native,
        "policy": info["policy"].dotted,
        "tsa": "" if isinstance(tsa, core.Void) else str(tsa.chosen.human_friendly),
    }


async def async_verify_token(
    token: bytes,
    signed_value: bytes,
    *,
    trust_roots: Sequence[x509.Certificate],
    crls: Iterable[x509.CertificateRevocationList | bytes],
    intermediates: Sequence[x509.Certificate] = (),
) -> Stamp:
    """Check that ``token`` stamps ``signed_value`` and is signed by a trusted TSA.

    The TSA's certificate path is validated as of the token's genTime with the CRLs given
    (never the network), through the CAs held here (``intermediates``) when the token
    does not carry them. Raises ``TimestampInvalid``.
    """
    try:
        check_strict_timestamp_token(token)
    except (SignatureMalformed, WeakAlgorithm) as exc:
        raise TimestampInvalid(f"The timestamp token is malformed: {exc.message}") from exc
    try:
        content_info = asn1_cms.ContentInfo.load(token, strict=True)
        if content_info["content_type"].native != "signed_data":
            raise ValueError("it is not a CMS SignedData")
        signed_data = content_info["content"]
        info = _tst_info(content_info)
        gen_time = info["gen_time"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampInvalid(f"The timestamp token is malformed: {reading_failure(exc)}") from exc
    _check_imprint(info, imprint_of(signed_value))
    context = validation_context(
        [asn1_cert(c) for c in trust_roots],
        [c if isinstance(c, bytes) else c.public_bytes(Encoding.DER) for c in crls],
        gen_time,
        [asn1_cert(c) for c in intermediates],
    )
    try:
        status = TimestampSignatureStatus(
            **await validate_tst_signed_data(
                signed_data, context, lambda _algorithm: imprint_of(signed_value)
            )
        )
    except SignatureValidationError as exc:
        raise TimestampInvalid(f"The timestamp token is malformed: {exc.failure_message}") from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampInvalid(f"The timestamp token is malformed: {reading_failure(exc)}") from exc
    cert = status.signing_cert
    who = {"tsa": cert.subject.human_friendly, "gen_time": gen_time.isoformat()}
    if not (status.intact and status.valid):
        raise TimestampInvalid("The timestamp token's signature does not verify.", **who)
    if not status.trusted or status.trust_problem_indic is not None:
        raise TimestampInvalid(
            "The timestamp authority's certificate does not chain to a trusted root "
            "(or is expired or revoked at the token's time).",
            indication=str(status.trust_problem_indic),
            **who,
        )
    _check_tsa_usage(cert, who)
    return Stamp(
        gen_time=gen_time,
        authority=_common_name(cert),
        authority_sha256=cert.sha256.hex(),
        token=token,
    )


def verify_token(
    token: bytes,
    signed_value: bytes,
    *,
    trust_roots: Sequence[x509.Certificate],
    crls: Iterable[x509.CertificateRevocationList | bytes],
    intermediates: Sequence[x509.Certificate] = (),
) -> Stamp:
    """Verify a token; see ``async_verify_token``. Not callable inside an event loop."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(
            async_verify_token(
                token,
                signed_value,
                trust_roots=trust_roots,
                crls=crls,
                intermediates=intermediates,
            )
        )
    finally:
        loop.close()


def _tst_info(token: asn1_cms.ContentInfo) -> tsp.TSTInfo:
    encapsulated = token["content"]["encap_content_info"]
    if encapsulated["content_type"].native != "tst_info":
        raise ValueError("the token does not encapsulate a TSTInfo")
    info = encapsulated["content"].parsed
    if not isinstance(info, tsp.TSTInfo):
        raise ValueError("the token does not encapsulate a TSTInfo")
    return info


def _check_imprint(info: tsp.TSTInfo, imprint: bytes) -> None:
    stamped = info["message_imprint"]
    algorithm = stamped["hash_algorithm"]["algorithm"].native
    if algorithm != DIGEST or stamped["hashed_message"].native != imprint:
        raise TimestampInvalid(
            "The timestamp token stamps something else than this signature.",
            imprint_algorithm=str(algorithm),
        )


def _check_tsa_usage(cert: asn1_x509.Certificate, who: dict[str, str]) -> None:
    """RFC 3161 §2.3: one critical extended key usage, timeStamping alone."""
    parsed = x509.load_der_x509_certificate(cert.dump())
    try:
        extension = parsed.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        extension = None
    if (
        extension is None
        or not extension.critical
        or list(extension.value) != [ExtendedKeyUsageOID.TIME_STAMPING]
    ):
        raise TimestampInvalid(
            "The timestamp authority's certificate lacks the critical extended key usage "
            "timeStamping (alone).",
            **who,
        )


def _common_name(cert: asn1_x509.Certificate) -> str:
    subject = cert.subject.native
    name = subject.get("common_name") or cert.subject.human_friendly
    return ", ".join(name) if isinstance(name, list) else str(name)
