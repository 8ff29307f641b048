"""The trust folder's files: what is pinned can be changed by its owner only."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from congvan.actions.signing import pki
from congvan.actions.signing.truststore import TrustStore
from congvan.states.errors import InvalidInput


def test_a_pinned_root_is_written_for_its_owner_to_change_whatever_the_umask(
    tmp_path: Path,
) -> None:
    root = pki.create_ca(
        "Root", "PKI", passphrase="x" * 12, valid_from=datetime.now(UTC), valid_days=30
    )
    store = TrustStore(tmp_path / "trust")
    previous = os.umask(0o002)
    try:
        path = store.pin(root.certificate)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert store.is_pinned(root.certificate)


@pytest.mark.parametrize("loose", ["folder", "file"])
def test_a_trust_store_every_user_may_change_is_refused(tmp_path: Path, loose: str) -> None:
    # Given a pinned root, and then its folder or its file made writable by everyone
    root = pki.create_ca(
        "Root", "PKI", passphrase="x" * 12, valid_from=datetime.now(UTC), valid_days=30
    )
    store = TrustStore(tmp_path / "trust")
    path = store.pin(root.certificate)
    (store.directory if loose == "folder" else path).chmod(0o777 if loose == "folder" else 0o666)

    # Then nothing it holds is trusted: the store refuses, saying how to mend it
    with pytest.raises(InvalidInput, match="every user of this machine") as caught:
        TrustStore(store.directory).roots()
    assert "chmod o-w" in caught.value.message

    # And once mended, the root is trusted again
    (store.directory if loose == "folder" else path).chmod(0o755 if loose == "folder" else 0o644)
    assert TrustStore(store.directory).is_pinned(root.certificate)
