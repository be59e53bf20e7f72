"""Generated requests against a live server, checked against the served description.

Schemathesis reads ``/api/openapi/public.json`` from the running server, so the
description is tested as served, not as written in the source. Every answer must be
one the description promises: a documented status (never a 5xx), the documented
content type, a body matching the response schema and headers matching theirs.

Why a plain test with ``@given`` inside rather than ``schema.parametrize()`` or
``schemathesis.pytest.from_fixture``: the server, its database and the API key are
function-scoped fixtures, and a schema loaded at import time could not know the
server's port. Loading the schema inside the test and driving the operation's
Hypothesis strategy from an inner ``@given`` function keeps one server and one key
for all examples of a run, with no fixture-scope health check to silence.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Credentials, LiveServer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.mark.parametrize(
    ("mode", "examples"),
    [
        pytest.param(GenerationMode.POSITIVE, 100, id="valid-data"),
        pytest.param(GenerationMode.NEGATIVE, 80, id="invalid-data"),
    ],
)
def test_generated_create_ticket_requests_get_documented_answers(
    server: LiveServer,
    credentials: Credentials,
    mode: GenerationMode,
    examples: int,
) -> None:
    schema = schemathesis.openapi.from_url(
        f"{server.url}/api/openapi/public.json", timeout=10
    )
    operation = schema["/api/help/ticket"]["POST"]
    cases = operation.as_strategy(mode, headers=credentials.headers())
    statuses: set[int] = set()
    tickets_created = 0

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
    )
    @given(case=cases)
    def answers_as_described(case: schemathesis.Case) -> None:
        nonlocal tickets_created
        response = case.call_and_validate(
            base_url=server.url,
            headers=credentials.headers(),
            checks=CHECKS,
            timeout=10,
        )
        statuses.add(response.status_code)
        if response.status_code == 200 and response.json()["success"]:
            tickets_created += 1

    answers_as_described()

    assert max(statuses) < 500
    # The run must have reached the interesting paths, not only early refusals.
    if mode is GenerationMode.POSITIVE:
        assert tickets_created > 0
    else:
        assert 400 in statuses


@pytest.mark.parametrize(
    "path",
    [
        "/api/help/openTickets",
        "/api/help/openTicketsV2",
        "/api/help/rma",
        "/api/help/feedback",
        "/api/help/ticketWithFile",
    ],
)
@pytest.mark.parametrize(
    "mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str
)
def test_generated_requests_to_the_family_get_documented_answers(
    server: LiveServer, credentials: Credentials, path: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(
        f"{server.url}/api/openapi/public.json", timeout=10
    )
    cases = schema[path]["POST"].as_strategy(mode, headers=credentials.headers())
    statuses: set[int] = set()

    @settings(max_examples=30, deadline=None, derandomize=True, database=None)
    @given(case=cases)
    def answers_as_described(case: schemathesis.Case) -> None:
        response = case.call_and_validate(
            base_url=server.url,
            headers=credentials.headers(),
            checks=CHECKS,
            timeout=10,
        )
        statuses.add(response.status_code)

    answers_as_described()

    assert max(statuses) < 500
