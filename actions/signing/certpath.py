"""The signer's certificate judged at a moment: path, key usage, profile, signing time.

Shared by the detached (``verification``) and the PDF-embedded (``pades``) signatures.
The path is validated at the moment ``at`` with the CRLs given and never the network;
pyHanko folds many causes into a few indications, and ``path_error`` names the cause
with the error a verdict raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko.sign.ades.report import AdESIndeterminate
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as cv_errors
from pyhanko_certvalidator.authority import CertTrustAnchor, TrustQualifiers

from congvan.states.certificates import CertificateDescription
from congvan.states.errors import (
    CertificateExpired,
    CertificateNotYetValid,
    CertificateProfileInvalid,
    CertificateRevoked,
    ChainUntrusted,
    KeyUsageInvalid,
    RevocationUnknown,
    SignatureError,
    SigningTimeInvalid,
    WeakAlgorithm,
)
from congvan.states.phrasing import moment

from . import profiles, revocation

SIGNER_KEY_USAGE = KeyUsageConstraints(
    key_usage=frozenset({"digital_signature", "non_repudiation"}), match_all_key_usages=True
)
_KEY_USAGE_MESSAGE = "The certificate's key usage must include digitalSignature and nonRepudiation."
# A signer's clock may run a little ahead of ours.
CLOCK_SKEW = timedelta(minutes=5)


def check_path(
    status: Any,
    crl_der: list[bytes],
    at: datetime,
    signer: CertificateDescription,
    profile: profiles.Profile,
    who: dict[str, str],
) -> revocation.LaterRevocation | None:
    """What pyHanko's path check leaves to us: key usage, profile, CRLs without a pointer.

    ``signer`` describes ``status.signing_cert``; returns a revocation after ``at``, if any.
    """
    cert = status.signing_cert
    try:
        # Again, because pyHanko 0.38 drops match_all_key_usages from the constraints it is
        # given (StandardCMSSignatureStatus.default_usage_constraints): it would accept a
        # certificate with digitalSignature alone.
        SIGNER_KEY_USAGE.validate(cert)
    except cv_errors.InvalidCertificateError as exc:
        raise KeyUsageInvalid(_KEY_USAGE_MESSAGE, reason=str(exc), **who) from exc
    check_profile(signer, profile, who)
    leaf = x509.load_der_x509_certificate(cert.dump())
    path = [leaf]
    if status.validation_path is not None:
        path += [
            c
            for c in (
                x509.load_der_x509_certificate(c.dump())
                for c in status.validation_path.iter_certs(include_root=True)
            )
            if c != leaf
        ]
    crls = [x509.load_der_x509_crl(c) for c in crl_der]
    return revocation.check_path(path, crls, at, who)


def check_profile(
    signer: CertificateDescription, profile: profiles.Profile, who: Mapping[str, str]
) -> None:
    """The certificate has the profile this use accepts."""
    if signer.profile != profile:
        raise CertificateProfileInvalid(
            f"This use needs {profiles.describe(profile)}; the signature was made with "
            f"{profiles.describe(signer.profile)}.",
            expected_profile=profile,
            certificate_profile=signer.profile,
            **who,
        )


def anchors(roots: list[asn1_x509.Certificate]) -> list[CertTrustAnchor]:
    """The pinned roots as trust anchors bound by their own path length constraint.

    pyHanko takes a root as a bare name and key unless told otherwise, and let a root made
    with ``pathlen:0`` (ours: it issues end entities only) anchor a path through a sub-CA
    that openssl refuses ("path length constraint exceeded"). The root's basic constraints
    are its trust anchor's (RFC 5937: constraints from the anchor's certificate). The
    attribute-certificate bound is given the same value: pyHanko reads it whenever the
    first is set, and fails on a None.
    """
    return [
        CertTrustAnchor(
            root,
            TrustQualifiers(
                max_path_length=root.max_path_length, max_aa_path_length=root.max_path_length
            ),
        )
        for root in roots
    ]


def validation_context(
    roots: list[asn1_x509.Certificate],
    crls: list[bytes],
    at: datetime,
    intermediates: Sequence[asn1_x509.Certificate] = (),
) -> ValidationContext:
    """``intermediates``: CA certificates held here a path may pass through to a pinned
    root when the signature does not carry them; they anchor nothing."""
    # One context per validation: it caches paths and revocation results.
    return ValidationContext(
        trust_roots=anchors(roots),  # asn1crypto objects: bytes crash despite the docstring
        other_certs=list(intermediates),
        crls=crls,
        allow_fetching=False,
        revocation_mode="hard-fail",
        moment=at,
        # A CRL issued after ``at`` still speaks about ``at`` (archive re-checks).
        retroactive_revinfo=True,
    )


async def path_error(
    status: Any,
    signed_data: asn1_cms.SignedData,
    roots: list[asn1_x509.Certificate],
    crls: list[bytes],
    at: datetime,
    who: dict[str, str],
    intermediates: Sequence[asn1_x509.Certificate] = (),
) -> SignatureError:
    """The error for a certificate path pyHanko did not accept."""
    indic = status.trust_problem_indic
    if status.revoked or indic in (
        AdESIndeterminate.REVOKED_NO_POE,
        AdESIndeterminate.REVOKED_CA_NO_POE,
    ):
        details = status.revocation_details
        if details is not None:
            return CertificateRevoked(
                revoked_at=details.revocation_date.isoformat(),
                reason=str(details.revocation_reason.native),
                ca_revoked=details.ca_revoked,
                **who,
            )
        return CertificateRevoked(**who)
    judged = {"checked_at": at.isoformat()}
    # pyHanko folds untrusted, not-yet-valid, weak, missing or stale CRLs and CA problems
    # into a few indications and only logs the cause: validate the path again to learn it.
    others = [c.chosen for c in signed_data["certificates"] if c.name == "certificate"]
    validator = CertificateValidator(
        status.signing_cert,
        others,
        validation_context=validation_context(roots, crls, at, intermediates),
    )
    try:
        await validator.async_validate_path()
    except cv_errors.NotYetValidError as exc:
        return CertificateNotYetValid(_not_yet(at), reason=exc.failure_msg, **judged, **who)
    except cv_errors.ExpiredError as exc:
        return CertificateExpired(_ran_out(at), reason=exc.failure_msg, **judged, **who)
    except cv_errors.RevokedError as exc:
        return CertificateRevoked(reason=exc.failure_msg, **who)
    except cv_errors.InsufficientRevinfoError as exc:  # no CRL, or a stale one
        return RevocationUnknown(reason=exc.failure_msg, **who)
    except cv_errors.DisallowedAlgorithmError as exc:
        return WeakAlgorithm(
            "A certificate on the path is signed with an algorithm that is not accepted.",
            reason=exc.failure_msg,
            **who,
        )
    except cv_errors.PathBuildingError as exc:
        return ChainUntrusted(reason=str(exc), **who)
    except cv_errors.PathValidationError as exc:  # e.g. a root's name with another key
        return ChainUntrusted(reason=exc.failure_msg, **who)
    except cv_errors.InvalidCertificateError as exc:
        if status.signing_cert.self_signed != "no":  # self-signed and not a pinned root
            return ChainUntrusted(
                "The certificate is self-signed and not a trusted root.", reason=str(exc), **who
            )
        return KeyUsageInvalid(_KEY_USAGE_MESSAGE, reason=str(exc), **who)
    except cv_errors.ValidationError as exc:
        return ChainUntrusted("The certificate path is not valid.", reason=str(exc), **who)
    if indic is AdESIndeterminate.OUT_OF_BOUNDS_NO_POE:
        return CertificateExpired(_ran_out(at), **judged, **who)
    if indic is AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND:
        return ChainUntrusted(**who)
    if indic is AdESIndeterminate.CHAIN_CONSTRAINTS_FAILURE:
        return KeyUsageInvalid(_KEY_USAGE_MESSAGE, **who)
    return SignatureError("The certificate path is not valid.", indication=str(indic), **who)


def _ran_out(at: datetime) -> str:
    # The moment in Vietnam time, as every moment told (the details keep it in UTC)
    return (
        f"A certificate of the signature's path had expired at {moment(at, 'en')}, "
        "when it is judged."
    )


def _not_yet(at: datetime) -> str:
    return (
        f"A certificate of the signature's path was not yet valid at {at.isoformat()}, "
        "when it is judged."
    )


# The reason a signing time in the verifier's future is given: between peers, a wait (or
# an operator setting a clock right) settles it, never a refusal.
AHEAD_OF_CLOCK = "ahead_of_clock"


def ahead_of_clock(exc: Exception) -> bool:
    """Whether ``exc`` says a signature lies ahead of the verifier's clock: made after the
    moment of verification, or under a certificate not valid yet at it."""
    return isinstance(exc, CertificateNotYetValid) or (
        isinstance(exc, SigningTimeInvalid) and exc.details.get("reason") == AHEAD_OF_CLOCK
    )


def check_signing_time(
    signing_time: datetime,
    at: datetime,
    cert: Any,
    signer: CertificateDescription,
    who: Mapping[str, Any],
) -> None:
    """The claimed signing time is not after ``at`` and lies inside the validity."""
    if signing_time > at + CLOCK_SKEW:
        raise SigningTimeInvalid(
            "The signing time lies after the moment of verification.",
            reason=AHEAD_OF_CLOCK,  # the signer's clock or ours is wrong
            signing_time=signing_time.isoformat(),
            checked_at=at.isoformat(),
            **who,
        )
    if signing_time < cert.not_valid_before:
        raise SigningTimeInvalid(
            "The certificate was not yet valid at the claimed signing time.",
            signing_time=signing_time.isoformat(),
            not_before=signer.not_before.isoformat(),
            **who,
        )
    if signing_time > cert.not_valid_after:
        raise SigningTimeInvalid(
            "The certificate had expired at the claimed signing time.",
            signing_time=signing_time.isoformat(),
            not_after=signer.not_after.isoformat(),
            **who,
        )
