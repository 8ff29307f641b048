"""The trust folder's files: what is pinned can be changed by its owner only."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

from congvan.actions.signing import pki
from congvan.actions.signing.truststore import TrustStore


def test_a_pinned_root_is_written_for_its_owner_to_change_whatever_the_umask(
    tmp_path: Path,
) -> None:
    root = pki.create_ca("Root", "PKI", passphrase="x", valid_from=datetime.now(UTC), valid_days=30)
    store = TrustStore(tmp_path / "trust")
    previous = os.umask(0o002)
    try:
        path = store.pin(root.certificate)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert store.is_pinned(root.certificate)
