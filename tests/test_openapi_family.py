"""Every operation of the Help Webservice family, held against the reference."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import REFERENCE
from tests.test_openapi import JSON, Document, _resolve, _shapes

JSON_OPERATIONS = [
    "/api/help/ticket",
    "/api/help/openTickets",
    "/api/help/openTicketsV2",
    "/api/help/rma",
    "/api/help/feedback",
]
ALL_OPERATIONS = [*JSON_OPERATIONS, "/api/help/ticketWithFile"]


@pytest.fixture
def served(api: httpx.Client) -> Document:
    document: Document = api.get("/api/openapi/public.json").json()
    return document


@pytest.fixture
def reference() -> Document:
    path = REFERENCE / "rhombus-help-webservice.openapi.json"
    document: Document = json.loads(path.read_text(encoding="utf-8"))
    return document


def operation_of(document: Document, path: str) -> Any:
    """The operation with its references resolved, except the multipart request of
    the reference, whose server-framework types refer to themselves."""
    operation = dict(document["paths"][path]["post"])
    request_body = operation.pop("requestBody")
    resolved = _resolve(operation, document)
    if "multipart/form-data" not in request_body["content"]:
        request_body = _resolve(request_body, document)
    return {**resolved, "requestBody": request_body}


def test_helpline_serves_every_operation_of_the_reference(
    served: Document, reference: Document
) -> None:
    assert set(served["paths"]) == set(reference["paths"])


@pytest.mark.parametrize("path", ALL_OPERATIONS)
def test_ok_answer_matches_the_reference_property_by_property(
    served: Document, reference: Document, path: str
) -> None:
    ours = operation_of(served, path)["responses"]["200"]["content"][JSON]["schema"]
    theirs = operation_of(reference, path)["responses"]["200"]["content"][JSON][
        "schema"
    ]

    assert set(ours["properties"]) == set(theirs["properties"])
    assert _shapes(ours) == _shapes(theirs)


@pytest.mark.parametrize("path", JSON_OPERATIONS)
def test_request_matches_the_reference_property_by_property(
    served: Document, reference: Document, path: str
) -> None:
    ours = operation_of(served, path)["requestBody"]["content"][JSON]["schema"]
    theirs = operation_of(reference, path)["requestBody"]["content"][JSON]["schema"]

    assert set(ours["properties"]) == set(theirs["properties"])
    assert _shapes(ours) == _shapes(theirs)


@pytest.mark.parametrize("path", ALL_OPERATIONS)
def test_operation_ids_and_auth_scheme_header_match(
    served: Document, reference: Document, path: str
) -> None:
    ours, theirs = operation_of(served, path), operation_of(reference, path)
    header_names = {parameter["name"] for parameter in ours["parameters"]}

    assert ours["operationId"] == theirs["operationId"]
    assert "x-auth-scheme" in header_names


def test_ticket_with_file_takes_multipart_request_and_file_parts(
    served: Document,
) -> None:
    body = operation_of(served, "/api/help/ticketWithFile")["requestBody"]
    schema = _resolve(body["content"]["multipart/form-data"]["schema"], served)

    assert set(schema["properties"]) == {"request", "file"}
    assert schema["properties"]["file"]["format"] == "binary"
    assert schema["required"] == ["request"]


@pytest.mark.parametrize("path", ALL_OPERATIONS)
@pytest.mark.parametrize("status", ["400", "401", "403", "413", "415", "429", "503"])
def test_every_error_status_answers_with_the_operations_own_envelope(
    served: Document, path: str, status: str
) -> None:
    operation = operation_of(served, path)
    ok = operation["responses"]["200"]["content"][JSON]["schema"]
    failed = operation["responses"][status]["content"][JSON]["schema"]

    assert set(ok["properties"]) <= set(failed["properties"])
    assert ("msg" in failed["properties"]) == (status == "400")
