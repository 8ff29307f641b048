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


def test_a_folder_that_takes_no_new_file_is_named_not_the_file_we_would_have_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a folder that is there but takes no file (read-only, not ours, /proc)
    def refused(*_args: object, **_kwargs: object) -> tuple[int, str]:
        raise OSError(30, "Read-only file system", str(tmp_path / ".x.crl.abc.part"))

    monkeypatch.setattr("congvan.workflow.cli.files.tempfile.mkstemp", refused)
    # Then the folder is named, with why, and never our temporary file's name
    said = refusal(tmp_path / "x.crl")
    assert said == f"The CRL cannot be written in the folder {tmp_path}: Read-only file system."
    assert ".part" not in said
