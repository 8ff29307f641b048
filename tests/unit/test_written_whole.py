"""Where a command writes a file: a place it cannot write is said for what it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from congvan.states.errors import InvalidInput
from congvan.workflow.cli.files import written_whole


def refusal(name: Path) -> str:
    with pytest.raises(InvalidInput) as refused, written_whole(str(name), "CRL") as sink:
        sink.write(b"never")
    return refused.value.message


def test_a_file_is_written_whole_and_a_place_it_cannot_be_is_said(tmp_path: Path) -> None:
    (tmp_path / "afile").write_bytes(b"kept")
    with written_whole(str(tmp_path / "our.crl"), "CRL") as sink:
        sink.write(b"crl")
    assert (tmp_path / "our.crl").read_bytes() == b"crl"

    # Under a file (however deep): a file, not a folder
    for name in (tmp_path / "afile" / "x.crl", tmp_path / "afile" / "deeper" / "x.crl"):
        assert (
            refusal(name)
            == f"{tmp_path / 'afile'} is a file, not a folder: the CRL cannot be written under it."
        )
    # In a folder not there; onto a folder
    assert (
        refusal(tmp_path / "none" / "x.crl")
        == f"The folder {tmp_path / 'none'} for the CRL does not exist."
    )
    assert "is not a regular file" in refusal(tmp_path)
    assert (tmp_path / "afile").read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "our.crl"]
