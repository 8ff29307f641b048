"""Each exchange format's docstring is its reference: a test holds it to the code."""

from __future__ import annotations

import json
import re
from types import ModuleType

import pytest

from congvan.actions.exchange import package, receipts, status

FORMATS = [
    (package, package.HEADER_MEMBERS, "congvan-package/1"),
    (receipts, receipts.MEMBERS, "congvan-receipt/1"),
    (status, status.MEMBERS, "congvan-status/1"),
]


def example(module: ModuleType) -> dict[str, object]:
    doc = module.__doc__ or ""
    block = doc.split("wrapped here)::", 1)[1].split("\n\n")[1]
    content: dict[str, object] = json.loads("".join(line.strip() for line in block.splitlines()))
    return content


@pytest.mark.parametrize(("module", "members", "name"), FORMATS)
def test_the_docstring_names_every_member_and_the_format(
    module: ModuleType, members: tuple[str, ...], name: str
) -> None:
    documented = set(re.findall(r"^``(\w+)``", module.__doc__ or "", re.MULTILINE))

    assert set(members) <= documented
    assert module.FORMAT == name
    assert f'``"{name}"``' in (module.__doc__ or "")


@pytest.mark.parametrize(("module", "members", "name"), FORMATS)
def test_the_example_has_every_member_in_canonical_order(
    module: ModuleType, members: tuple[str, ...], name: str
) -> None:
    content = example(module)

    assert list(content) == sorted(members)
    assert content["format"] == name


def test_the_package_example_lists_its_parts_with_their_members() -> None:
    parts = example(package)["parts"]

    assert isinstance(parts, list)
    assert [list(p) for p in parts] == [sorted(package.PART_MEMBERS)] * len(parts)
    assert [p["name"] for p in parts][:2] == ["manifest.json", "signature.p7s"]
