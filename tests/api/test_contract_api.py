"""The OpenAPI document against the server: schemathesis sends what the schema allows.

Every answer must be one the schema declares (status, media type, body), and none a 5xx.
The requests carry a real token of a user holding every role, so they reach the routes'
logic rather than stopping at authentication.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (  # the checks this contract is about
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from congvan.states.policy import ROLES
from congvan.workflow import directory
from tests.api.conftest import A, Api, MakeApi


@pytest.fixture
def contract_api(make_api: MakeApi) -> Api:
    """The app, with one document in it and a token for a user holding every role."""
    api = make_api()
    api.draft()
    with api.runtime.uow() as uow:
        user = directory.ensure_user(uow, A, "contract", list(ROLES), api.clock())
        api.tokens[A]["all"] = directory.create_token(uow, user, api.clock()).token
        uow.commit()
    return api


@pytest.fixture
def contract_schema(contract_api: Api) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", contract_api.client.app)


schema = schemathesis.pytest.from_fixture("contract_schema")


@schema.parametrize()
@settings(
    max_examples=8,
    derandomize=True,
    deadline=None,  # no wall-clock limits: a slow machine is not a broken contract
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_matches_the_schema(case: Any, contract_api: Api) -> None:
    case.call_and_validate(
        headers=contract_api.auth("all"),
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
