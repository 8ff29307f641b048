"""What an evidence verdict says of a signature the wire would defer: offline, no wait."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from congvan.actions.exchange.envelope import clock_ahead, deferred
from congvan.actions.exchange.evidence_report import offline, signature_code
from congvan.states.errors import (
    RevocationUnknown,
    SignatureError,
    SigningTimeInvalid,
    VerificationDeferred,
)


def _raised(
    make: Callable[[Any, str], VerificationDeferred], cause: SignatureError
) -> VerificationDeferred:
    """``make``'s error as the verifier raises it: from ``cause``."""
    exc = make(cause, "000.00.01.H57")
    exc.__cause__ = cause
    return exc


def test_a_signature_made_after_the_moment_it_is_judged_at_says_so_not_crls() -> None:
    # Given a receipt signed after the acceptance the trail records for it
    cause = SigningTimeInvalid("The signing time lies after the moment of verification.")
    exc = _raised(clock_ahead, cause)
    # Then the bundle's verdict tells the clocks, not a CRL it would lack
    said = offline(exc)
    assert signature_code(exc) == "clock_ahead"
    assert "after the moment it is judged at" in said and "clock" in said
    assert "CRL" not in said


def test_a_revocation_that_cannot_be_told_names_the_crl_the_bundle_needs() -> None:
    cause = RevocationUnknown("No CRL in force covers the issuer.")
    exc = _raised(deferred, cause)
    said = offline(exc)
    assert signature_code(exc) == "revocation_unknown"
    assert "the bundle needs the issuer's CRL in force when it was signed" in said
