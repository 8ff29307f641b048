"""Fixtures of the tests with two installations exchanging documents."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from congvan.workflow.bootstrap import Runtime
from tests.databases import Databases
from tests.installations import Pair, make_pair


@pytest.fixture
def pair(
    make_runtime: Callable[..., Runtime], boot: Any, databases: Databases, db_kind: str
) -> Pair:
    """A (the sender) and B (the recipient), each its own database of the test's kind."""
    return make_pair(make_runtime, boot, databases, db_kind)
