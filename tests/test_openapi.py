"""The served OpenAPI description, held against the vendor's published one.

Integrators generate clients from the vendor's description, so the operation they
call must look the same in ours: the same property names, types, formats and
nullability, the same headers and security scheme. Helpline's additions (error
statuses, ``Idempotency-Key``) must be described too, so generated clients know them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from helpline.domain.failures import FailureReason
from tests.conftest import REFERENCE

OPERATION_PATH = "/api/help/ticket"
JSON = "application/json"
Document = dict[str, Any]


def _resolve(node: Any, document: Document) -> Any:
    """``node`` with every local ``$ref`` replaced by what it points to."""
    if isinstance(node, list):
        return [_resolve(item, document) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return _resolve(target, document)
    return {name: _resolve(value, document) for name, value in node.items()}


def _create_ticket(document: Document) -> Document:
    operation: Document = _resolve(document["paths"][OPERATION_PATH]["post"], document)
    return operation


def _request_schema(operation: Document) -> Document:
    schema: Document = operation["requestBody"]["content"][JSON]["schema"]
    return schema


def _ok_schema(operation: Document) -> Document:
    schema: Document = operation["responses"]["200"]["content"][JSON]["schema"]
    return schema


def _shapes(schema: Document, path: str = "") -> dict[str, tuple[Any, ...]]:
    """Every property's path mapped to its (type, format, nullable).

    Array items appear as ``name[]`` and nested properties as ``name.inner``, so a
    difference anywhere below the top-level object shows up in the comparison.
    """
    shapes: dict[str, tuple[Any, ...]] = {}
    if path:
        shape = (schema.get("type"), schema.get("format"), schema.get("nullable"))
        shapes[path] = shape
    if "items" in schema:
        shapes.update(_shapes(schema["items"], f"{path}[]"))
    for name, prop in schema.get("properties", {}).items():
        shapes.update(_shapes(prop, f"{path}.{name}" if path else name))
    return shapes


@pytest.fixture
def served(api: httpx.Client) -> Document:
    response = api.get("/api/openapi/public.json")
    assert response.status_code == 200
    document: Document = response.json()
    return document


@pytest.fixture
def reference() -> Document:
    path = REFERENCE / "rhombus-help-webservice.openapi.json"
    document: Document = json.loads(path.read_text(encoding="utf-8"))
    return document


@pytest.mark.parametrize(
    "pick_schema",
    [
        pytest.param(_request_schema, id="request-body"),
        pytest.param(_ok_schema, id="response-200"),
    ],
)
def test_schema_properties_match_reference_in_name_type_format_nullable(
    served: Document,
    reference: Document,
    pick_schema: Callable[[Document], Document],
) -> None:
    ours = pick_schema(_create_ticket(served))
    theirs = pick_schema(_create_ticket(reference))

    assert set(ours["properties"]) == set(theirs["properties"])
    assert _shapes(ours) == _shapes(theirs)


def test_array_items_are_compared_by_the_shape_helper(reference: Document) -> None:
    shapes = _shapes(_request_schema(_create_ticket(reference)))

    assert shapes["collaborators[]"] == ("string", None, True)
    assert shapes["serialNumbers[]"] == ("string", None, True)


def test_operation_is_create_ticket_with_required_auth_scheme_header(
    served: Document, reference: Document
) -> None:
    operation = _create_ticket(served)
    headers = {
        parameter["name"]: parameter
        for parameter in operation["parameters"]
        if parameter["in"] == "header"
    }

    assert operation["operationId"] == "createTicket"
    assert operation["operationId"] == _create_ticket(reference)["operationId"]
    assert headers["x-auth-scheme"]["required"] is True
    assert headers["x-auth-scheme"]["schema"]["type"] == "string"


def test_security_is_an_api_key_in_the_x_auth_apikey_header(
    served: Document,
) -> None:
    (requirement,) = served["security"]
    (scheme_name,) = requirement
    scheme = served["components"]["securitySchemes"][scheme_name]

    assert scheme["type"] == "apiKey"
    assert scheme["in"] == "header"
    assert scheme["name"] == "x-auth-apikey"


@pytest.mark.parametrize("status", ["400", "401", "403", "413", "415", "429", "503"])
def test_helpline_error_status_is_described_with_the_envelope(
    served: Document, status: str
) -> None:
    response = _create_ticket(served)["responses"][status]
    schema = response["content"][JSON]["schema"]

    assert response["description"]
    assert {"success", "error", "errorMsg"} <= set(schema["properties"])


def test_bad_request_schema_carries_msg(served: Document) -> None:
    schema = _create_ticket(served)["responses"]["400"]["content"][JSON]["schema"]

    assert schema["properties"]["msg"]["type"] == "string"
    assert "msg" in schema.get("required", [])


@pytest.mark.parametrize("status", ["429", "503"])
def test_retryable_status_describes_retry_after_header(
    served: Document, status: str
) -> None:
    headers = _create_ticket(served)["responses"][status]["headers"]

    assert headers["Retry-After"]["schema"]["type"] == "integer"


def test_idempotency_key_header_is_described_and_optional(served: Document) -> None:
    parameters = {
        parameter["name"]: parameter
        for parameter in _create_ticket(served)["parameters"]
    }
    idempotency_key = parameters["Idempotency-Key"]

    assert idempotency_key["in"] == "header"
    assert idempotency_key["required"] is False
    assert idempotency_key["description"]


@pytest.mark.parametrize("reason", list(FailureReason), ids=str)
def test_failure_reason_description_names_every_catalogued_reason(
    served: Document, reason: FailureReason
) -> None:
    failure_reason = _ok_schema(_create_ticket(served))["properties"]["failureReason"]

    assert reason.value in failure_reason["description"]
