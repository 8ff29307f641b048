"""The OpenAPI document against the server: schemathesis sends what the schema allows.

Every answer must be one the schema declares (status, media type, body, headers), and none
a 5xx. The requests carry a real token of a user holding every role, so they reach the
routes' logic rather than stopping at authentication, and name documents brought through
the API to draft, review, reviewed and signed as well as ids made up, so answers about
documents in later states (signature, verdict, signed PDF) are checked too.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import (  # the checks this contract is about
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from congvan.states import DISPATCH, DOCUMENT, vocabulary
from congvan.states.policy import ROLES
from congvan.workflow import directory
from tests.api.conftest import A, Api, MakeApi, assert_error
from tests.api.test_review_flow_api import clean_letter, submit_and_check
from tests.api.test_signing_api import issue, reviewed_letter, sign, signing_api
from tests.factories import arrival


@dataclass(frozen=True)
class Seeded:
    """The app, with documents in each state a reader meets, and what to name them by."""

    api: Api
    documents: dict[str, str]  # by what was done to it: draft, in_review, reviewed, signed
    files: dict[str, str]  # the SHA-256 of a file attached to each, by document id
    authorities: list[str]


@pytest.fixture
def seeded(make_api: MakeApi) -> Seeded:
    """Documents brought through the real API to each state, and an all-roles token."""
    api = signing_api(make_api)
    issue(api)
    in_review = clean_letter(api, number=1401)
    submit_and_check(api, in_review)
    signed = reviewed_letter(api)
    assert 200 == sign(api, signed).status_code
    documents = {
        "draft": api.draft()["id"],
        "in_review": in_review,
        "reviewed": reviewed_letter(api),
        "signed": signed,
    }
    with api.runtime.uow() as uow:
        user = directory.ensure_user(uow, A, "contract", list(ROLES), api.clock())
        api.tokens[A]["all"] = directory.create_token(uow, user, api.clock()).token
        files = {d: uow.documents.attachments(d)[0].sha256 for d in documents.values()}
        authorities = [a.id for a in uow.authorities.for_agency(A)]
        uow.commit()
    return Seeded(api, documents, files, authorities)


@pytest.fixture
def contract_api(seeded: Seeded) -> Api:
    return seeded.api


@pytest.fixture
def contract_schema(seeded: Seeded) -> Any:
    schema = schemathesis.openapi.from_asgi("/openapi.json", seeded.api.client.app)
    known = {
        "document_id": list(seeded.documents.values()),
        "sha256": sorted(set(seeded.files.values())),
        "authority_id": seeded.authorities,
    }

    @schema.hook
    def flatmap_path_parameters(_context: Any, path_parameters: dict[str, Any] | None) -> Any:
        """Each id as generated, or one of the seeded ones (so answers about real ones)."""
        if path_parameters is None:  # an operation without any
            return st.none()
        return st.fixed_dictionaries(
            {
                name: st.sampled_from([*known.get(name, []), value])
                for name, value in path_parameters.items()
            }
        )

    return schema


def _zip(names: list[str]) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as archive:
        for name in names:
            archive.writestr(name, b"{}")
    return sink.getvalue()


# The inbox takes a package (a ZIP): random bytes, and archives that are not packages.
schemathesis.openapi.media_type(
    "application/zip",
    st.one_of(
        st.binary(max_size=300),
        st.sampled_from([_zip([]), _zip(["package.json"]), _zip(["../package.json"])]),
    ),
)


@schemathesis.check
def sends_only_declared_headers(_ctx: Any, response: Any, case: Any) -> bool | None:
    """Every header the route sets itself is one its answer declares."""
    answer = case.operation.responses.find_by_status_code(response.status_code)
    if answer is None:  # an answer the operation does not declare (405 to a probe)
        return None
    declared = {name.lower() for name, _ in answer.headers.items()}
    # The framing of the message, not the API's: its length, and (hop by hop, RFC 9110
    # 7.6.1) the connection closed after an answer that leaves a body unread.
    framing = {"content-type", "content-length", "connection"}
    undeclared = set(response.headers) - framing - declared
    assert not undeclared, f"undeclared headers {sorted(undeclared)} on {response.status_code}"
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    sends_only_declared_headers,
]

schema = schemathesis.pytest.from_fixture("contract_schema")


@schema.parametrize()
@settings(
    max_examples=8,
    derandomize=True,
    deadline=None,  # no wall-clock limits: a slow machine is not a broken contract
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_matches_the_schema(case: Any, contract_api: Api) -> None:
    case.call_and_validate(headers=contract_api.auth("all"), checks=CHECKS)


def test_every_read_of_a_document_in_each_state_matches_the_schema(
    seeded: Seeded, contract_schema: Any
) -> None:
    # Given documents in draft, in review, reviewed and signed, and every read of one
    reads = [
        path
        for path, methods in contract_schema.raw_schema["paths"].items()
        if "get" in methods and "{document_id}" in path
    ]
    assert len(reads) >= 9, reads
    answered: dict[str, set[int]] = {}
    for state, document_id in seeded.documents.items():
        for path in reads:
            parameters = {"document_id": document_id}
            if "{sha256}" in path:
                parameters["sha256"] = seeded.files[document_id]
            case = contract_schema[path]["GET"].Case(path_parameters=parameters)
            # When it is read, then the answer is one the schema declares, headers and all
            response = case.call_and_validate(headers=seeded.api.auth("all"), checks=CHECKS)
            answered.setdefault(state, set()).add(response.status_code)
    # and the signed one was read in full: signature, verdict, signed PDF, CMS
    assert {200} == answered["signed"], answered
    signature = seeded.api.get(f"/v1/documents/{seeded.documents['signed']}/signature")
    assert True is signature.json()["verdict"]["ok"], signature.text


def test_every_read_of_a_received_document_matches_the_schema(
    seeded: Seeded, contract_schema: Any
) -> None:
    # Given a letter another agency sent, with its files and the signed PDF
    files = (
        ("files/1227-UBND-TĐKT.pdf", "main", "application/pdf", b"%PDF-1.4 main"),
        ("signed/1227-UBND-TĐKT.pdf", "signed_pdf", "application/pdf", b"%PDF-1.4 main+"),
    )
    received, _stored = seeded.api.runtime.engine.receive(arrival(files=files))
    reads = {
        "/v1/received/{received_id}": {},
        "/v1/received/{received_id}/files/{name}": {"name": "1227-UBND-TĐKT.pdf"},
    }
    for signed in ("", "signed/"):
        for path, parameters in reads.items():
            named = {k: signed + v for k, v in parameters.items()}
            case = contract_schema[path]["GET"].Case(
                path_parameters={"received_id": received.id, **named}
            )
            # When it is read, then the answer is one the schema declares, headers and all
            response = case.call_and_validate(headers=seeded.api.auth("all"), checks=CHECKS)
            assert response.status_code == 200, response.text


# -- what the OpenAPI document says --------------------------------------------------------


def test_every_error_status_is_declared_with_the_error_body(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    error_ref = "#/components/schemas/ErrorBody"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if status.startswith(("2", "3")):  # a success, or 304 Not Modified
                    continue
                schema = answer["content"]["application/json"]["schema"]
                assert error_ref == schema["$ref"], (method, path, status)
            assert {"413", "422"} <= set(operation["responses"]), (method, path)
    fire = spec["paths"]["/v1/documents/{document_id}/events/{event}"]["post"]
    assert {"400", "401", "403", "404", "409", "412", "413", "415", "422", "501", "503"} == {
        s for s in fire["responses"] if not s.startswith("2")
    }
    event = next(p for p in fire["parameters"] if p["name"] == "event")
    assert list(DOCUMENT.events) == event["schema"]["enum"]


def test_every_answer_to_a_condition_is_declared(api: Api) -> None:
    # Given every operation of the OpenAPI document, on a document that exists
    spec = api.client.get("/openapi.json").json()
    doc = api.draft()
    page_size = api.runtime.settings.max_page_size
    seen = set()
    for path, operations in spec["paths"].items():
        url = re.sub(r"\{[^}]+\}", "x", path.replace("{document_id}", doc["id"]))
        for method, operation in operations.items():
            declared = set(operation["responses"])
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            if method == "get":
                # (a read takes both conditions, and says so)
                assert {"If-None-Match", "If-Match"} <= names, path
            for condition in ({"If-None-Match": "*"}, {"If-Match": '"no-such-tag"'}):
                # When it is asked with a condition (by a role it takes)
                said = api.by_a_role_it_takes(method.upper(), url, condition)
                # Then whatever it answers (304, 412, or its own answer) is declared
                assert str(said.status_code) in declared, (method, path, condition, said.text)
                seen.add(said.status_code)
            limits = [p for p in operation.get("parameters", []) if p["name"] == "limit"]
            # And a page's length is bounded as the server bounds it
            assert all(p["schema"]["maximum"] == page_size for p in limits), path
    assert {304, 412} <= seen


def test_every_route_refusing_a_body_of_another_media_type_declares_415(api: Api) -> None:
    # Given every operation the OpenAPI document says reads a body
    spec = api.client.get("/openapi.json").json()
    reading = [
        (method, path, operation)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]
    assert len(reading) > 10
    for method, path, operation in reading:
        # When a body comes as text/plain from a caller with a valid token of a role the
        # route takes (the media type is judged before anything else but who calls)
        url = re.sub(r"\{[^}]+\}", "x", path)
        headers = {"Content-Type": "text/plain"}
        answer = api.by_a_role_it_takes(method.upper(), url, headers, content=b"{}")
        # Then the route answers 415 exactly where the document declares it
        declared = "415" in operation["responses"]
        assert (answer.status_code == 415) == declared, (method, path, answer.text)


def test_the_create_body_types_its_metadata_part(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    body = spec["paths"]["/v1/documents"]["post"]["requestBody"]["content"]["multipart/form-data"]
    schemas = spec["components"]["schemas"]
    form = schemas[body["schema"]["$ref"].rsplit("/", 1)[1]]
    assert {"$ref": "#/components/schemas/DocumentIn"} == form["properties"]["metadata"]
    assert {"contentType": "application/json"} == body["encoding"]["metadata"]
    assert {"doc_type", "subject"} <= set(schemas["DocumentIn"]["required"])
    recipients = schemas["DocumentIn"]["properties"]["recipients"]["items"]
    assert {"$ref": "#/components/schemas/RecipientIn"} == recipients
    assert "organ_id" in schemas["RecipientIn"]["properties"]


def _response_schemas(spec: dict[str, Any]) -> dict[str, Any]:
    """Every schema a success answer can hold, by component name (reached through $refs)."""
    components = spec["components"]["schemas"]
    found: dict[str, Any] = {}
    todo: list[Any] = [
        answer.get("content", {})
        for operations in spec["paths"].values()
        for operation in operations.values()
        for status, answer in operation["responses"].items()
        if status.startswith("2")
    ]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            name = ref.rsplit("/", 1)[-1]
            if ref and name not in found:
                found[name] = components[name]
                todo.append(components[name])
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return found


def _loose(schema: Any, where: str) -> list[str]:
    """Places in ``schema`` that are any JSON object at all: nothing a client can type."""
    if isinstance(schema, list):
        return [p for i, s in enumerate(schema) for p in _loose(s, f"{where}[{i}]")]
    if not isinstance(schema, dict):
        return []
    here = []
    if schema.get("type") == "object" and "properties" not in schema:
        values = schema.get("additionalProperties", True)
        if values in (True, {}) and "propertyNames" not in schema:
            here.append(where)
    return here + [p for k, v in schema.items() for p in _loose(v, f"{where}.{k}")]


def test_success_answers_type_every_object(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    loose = [p for n, s in _response_schemas(spec).items() for p in _loose(s, n)]
    # An error's details differ by code, in an answer and in a verdict alike.
    assert ["NotVerified.properties.details"] == loose


def test_states_and_statuses_are_enums_taken_from_states(api: Api) -> None:
    schemas = api.client.get("/openapi.json").json()["components"]["schemas"]
    assert list(DOCUMENT.states) == schemas["DocumentState"]["enum"]
    assert list(DISPATCH.states) == schemas["DispatchState"]["enum"]
    assert list(vocabulary.JOB_STATUSES) == schemas["JobStatus"]["enum"]
    assert list(vocabulary.CHECK_STATUSES) == schemas["CheckStatus"]["enum"]
    assert list(vocabulary.TIMESTAMP_STATUSES) == schemas["TimestampStatus"]["enum"]
    assert list(vocabulary.TIMER_KINDS) == schemas["TimerKind"]["enum"]
    ref = "#/components/schemas/"
    assert {"$ref": ref + "DocumentState"} == schemas["DocumentSummary"]["properties"]["state"]
    assert {"$ref": ref + "DispatchState"} == schemas["DispatchOut"]["properties"]["state"]
    assert {"$ref": ref + "JobStatus"} == schemas["JobOut"]["properties"]["status"]
    assert {"$ref": ref + "CheckStatus"} == schemas["CheckResult"]["properties"]["status"]


def test_each_audit_entry_kind_is_told_by_its_event(api: Api) -> None:
    schemas = api.client.get("/openapi.json").json()["components"]["schemas"]
    items = schemas["HistoryPage"]["properties"]["items"]["items"]
    assert "event" == items["discriminator"]["propertyName"]
    mapping = items["discriminator"]["mapping"]
    dispatch_events = [f"dispatch.{e}" for e in DISPATCH.events]
    assert {"create", *DOCUMENT.events, *dispatch_events} == set(mapping)
    assert mapping["sign"].endswith("/SignEntry") and mapping["approve"].endswith("/PlainEntry")
    sign = schemas["SignPayload"]
    assert {"signature_id", "mode", "manifest_sha256"} <= set(sign["required"])
    assert "timeliness" in sign["properties"]
    dispatch = schemas["DispatchEntry"]["properties"]
    assert {"$ref": "#/components/schemas/DispatchState"} == dispatch["to_state"]


@pytest.mark.parametrize(
    ("path", "media_types"),
    [
        ("/v1/pki/crl", {"application/pkix-crl", "application/x-pem-file"}),
        (
            "/v1/pki/roots",
            {"application/x-pem-file", "application/pkix-cert", "application/pkcs7-mime"},
        ),
        ("/v1/documents/{document_id}/signed-pdf", {"application/pdf"}),
        ("/v1/documents/{document_id}/signature/cms", {"application/pkcs7-signature"}),
        ("/v1/documents/{document_id}/attachments/{sha256}", {"*/*"}),
        ("/v1/received/{received_id}/files/{name}", {"*/*"}),
    ],
)
def test_binary_answers_name_their_media_types(api: Api, path: str, media_types: set[str]) -> None:
    ok = api.client.get("/openapi.json").json()["paths"][path]["get"]["responses"]["200"]
    assert media_types == set(ok["content"])
    for content in ok["content"].values():
        assert {"type": "string", "format": "binary"} == content["schema"]


@pytest.mark.parametrize(
    "path",
    ["/v1/documents/{document_id}/manifest", "/v1/documents/{document_id}/signature/manifest"],
)
def test_a_manifest_is_described_as_the_json_it_is(api: Api, path: str) -> None:
    ok = api.client.get("/openapi.json").json()["paths"][path]["get"]["responses"]["200"]
    assert {"application/json": {"schema": {"$ref": "#/components/schemas/Manifest"}}} == (
        ok["content"]
    )


def test_the_docs_page_needs_no_internet(api: Api) -> None:
    page = api.client.get("/docs").text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assert assets and all(a.startswith("/") for a in assets), assets
    for asset in assets:
        assert 200 == api.client.get(asset).status_code, asset


# -- timestamps ----------------------------------------------------------------------------

_MOMENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
_OFFSET = re.compile(r"(Z|[+-]\d\d:\d\d)$")


def _moments(value: Any) -> list[str]:
    """Every date-and-time string anywhere in a JSON value."""
    if isinstance(value, dict):
        return [m for v in value.values() for m in _moments(v)]
    if isinstance(value, list):
        return [m for v in value for m in _moments(v)]
    return [value] if isinstance(value, str) and _MOMENT.match(value) else []


def test_every_timestamp_the_api_answers_carries_its_offset(api: Api) -> None:
    # Given a document submitted for review, so it has history, timers and a queue entry
    doc = api.draft()
    assert 200 == api.fire(doc["id"], "submit").status_code
    reads = [
        ("clerk", "/v1/documents"),
        ("clerk", f"/v1/documents/{doc['id']}"),
        ("clerk", f"/v1/documents/{doc['id']}/history"),
        ("reviewer", "/v1/review-queue"),
        ("operator", "/v1/metrics"),
    ]
    # When each is read, then every moment in it says which offset it is in
    seen = []
    for role, path in reads:
        response = api.get(path, role=role)
        assert 200 == response.status_code, response.text
        seen += [(path, m) for m in _moments(response.json())]
    assert {p for p, _ in seen} >= {r[1] for r in reads[:4]}  # the walk found moments
    assert [] == [(p, m) for p, m in seen if not _OFFSET.search(m)]


# -- paging --------------------------------------------------------------------------------


def _walk(api: Api, path: str, role: str, key: str) -> list[Any]:
    """Every item of a list, one item per page, following next_cursor."""
    seen: list[Any] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        body = api.get(path, role=role, params=params).json()
        assert len(body["items"]) <= 1, body
        seen += [i[key] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


def test_every_list_pages_the_same_way(api: Api) -> None:
    doc = api.draft()["id"]
    api.fire(doc, "submit")
    everything = {
        "/v1/agencies": ("operator", "id"),
        f"/v1/documents/{doc}/history": ("clerk", "version"),
        "/v1/review-queue": ("reviewer", "id"),
        "/v1/documents": ("clerk", "id"),
        "/v1/authorities": ("supervisor", "id"),
        "/v1/notification-routes": ("operator", "id"),
        "/v1/notifications": ("operator", "id"),
    }
    for path, (role, key) in everything.items():
        whole = api.get(path, role=role).json()
        assert {"items", "next_cursor"} <= set(whole), path
        assert [i[key] for i in whole["items"]] == _walk(api, path, role, key), path
        over = api.get(path, role=role, params={"limit": 201})
        assert {"field": "limit", "max": 200} == assert_error(over, 422, "invalid_input")
        bad = api.get(path, role=role, params={"cursor": "not-a-cursor"})
        assert {"field": "cursor"} == assert_error(bad, 422, "invalid_input"), path
