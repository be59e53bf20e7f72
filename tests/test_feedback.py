"""POST /api/help/feedback over real HTTP, and ``helpline feedback list``.

Black-box acceptance tests written from the planned interface of issue 3.
"""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from helpline.cli import cli
from helpline.domain.keys import Permission

from .conftest import VALID_REQUEST, Credentials, MakeKey, StartServer

FEEDBACK = "/api/help/feedback"
ENVELOPE_FIELDS = {"success", "failureReason", "error", "errorMsg", "warningMsg"}
LISTED_FIELDS = {"id", "organization", "user_email", "feedback", "created_at"}
BAD_STRUCTURE = "JSON doesn't match expected object structure"
INVALID = "Invalid feedback content"


def send(
    api: httpx.Client, credentials: Credentials, payload: Any, **headers: str
) -> httpx.Response:
    return api.post(FEEDBACK, json=payload, headers=credentials.headers(**headers))


def envelope(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body) >= ENVELOPE_FIELDS
    return body


def run(database_url: str, *arguments: str) -> Result:
    return CliRunner().invoke(cli, [*arguments, "--database", database_url])


def listed(database_url: str, *arguments: str) -> list[dict[str, Any]]:
    result = run(database_url, "feedback", "list", *arguments, "--json")
    assert result.exit_code == 0, result.output
    entries: list[dict[str, Any]] = json.loads(result.stdout)
    return entries


def millis(moment: str) -> int:
    parsed = datetime.datetime.fromisoformat(moment)
    assert parsed.utcoffset() == datetime.timedelta(0)
    return int(parsed.timestamp() * 1000)


# Success and what is stored


def test_feedback_is_acknowledged_with_every_field(
    api: httpx.Client, credentials: Credentials
) -> None:
    response = send(api, credentials, {"feedback": "The new interface is nicer!"})

    body = envelope(response)
    assert response.status_code == 200
    assert {name: body[name] for name in ENVELOPE_FIELDS} == {
        "success": True,
        "failureReason": None,
        "error": False,
        "errorMsg": None,
        "warningMsg": None,
    }


def test_feedback_is_stored_trimmed_with_organization_and_user(
    api: httpx.Client, make_key: MakeKey, database_url: str
) -> None:
    credentials = make_key("acme", user_email="alice@acme.example")
    before_ms = int(time.time() * 1000)

    send(api, credentials, {"feedback": "  Great new console!\n "})

    after_ms = int(time.time() * 1000)
    [entry] = listed(database_url)
    assert set(entry) >= LISTED_FIELDS
    assert entry["organization"] == "acme"
    assert entry["user_email"] == "alice@acme.example"
    assert entry["feedback"] == "Great new console!"
    assert before_ms - 1_000 <= millis(entry["created_at"]) <= after_ms + 1_000


def test_feedback_keeps_tabs_and_newlines_inside_the_text(
    api: httpx.Client, credentials: Credentials, database_url: str
) -> None:
    text = "Two things:\n\t1. faster search\n\t2. dark mode"

    body = send(api, credentials, {"feedback": text}).json()

    assert body["success"] is True
    assert listed(database_url)[0]["feedback"] == text


@pytest.mark.parametrize("text", ["x" * 5_000, "é" * 5_000, "😀" * 5_000])
def test_feedback_of_exactly_5000_characters_is_accepted(
    api: httpx.Client, credentials: Credentials, database_url: str, text: str
) -> None:
    body = send(api, credentials, {"feedback": text}).json()

    assert (body["success"], body["error"]) == (True, False), body
    assert listed(database_url)[0]["feedback"] == text


def test_feedback_list_shows_newest_first(
    api: httpx.Client, credentials: Credentials, database_url: str
) -> None:
    for text in ["first", "second", "third"]:
        send(api, credentials, {"feedback": text})

    entries = listed(database_url)

    assert [entry["feedback"] for entry in entries] == ["third", "second", "first"]
    assert len({entry["id"] for entry in entries}) == 3


def test_feedback_list_org_shows_only_that_organization(
    api: httpx.Client, make_key: MakeKey, database_url: str
) -> None:
    acme = make_key("acme")
    globex = make_key("globex", user_email="it@globex.example")
    send(api, acme, {"feedback": "from acme"})
    send(api, globex, {"feedback": "from globex"})

    only_acme = listed(database_url, "--org", "acme")
    only_globex = listed(database_url, "--org", "globex")
    everyone = listed(database_url)

    assert [entry["feedback"] for entry in only_acme] == ["from acme"]
    assert [entry["organization"] for entry in only_globex] == ["globex"]
    assert only_globex[0]["user_email"] == "it@globex.example"
    assert [entry["feedback"] for entry in everyone] == ["from globex", "from acme"]


def test_feedback_list_text_view_shows_the_feedback(
    api: httpx.Client, credentials: Credentials, database_url: str
) -> None:
    send(api, credentials, {"feedback": "Love the RMA flow"})

    result = run(database_url, "feedback", "list")

    assert result.exit_code == 0, result.output
    assert "Love the RMA flow" in result.stdout
    assert credentials.organization in result.stdout


def test_feedback_list_is_empty_without_feedback(database_url: str) -> None:
    assert listed(database_url) == []


def test_feedback_unknown_fields_are_ignored_and_named_in_warning(
    api: httpx.Client, credentials: Credentials, database_url: str
) -> None:
    body = send(api, credentials, {"feedback": "Nice", "rating": 5}).json()

    assert body["success"] is True
    assert "rating: unknown field, ignored" in body["warningMsg"]
    assert [entry["feedback"] for entry in listed(database_url)] == ["Nice"]


@pytest.mark.parametrize(
    "sent", ["first\r\nsecond", "first\rsecond"], ids=["crlf", "lone-cr"]
)
def test_feedback_line_endings_are_stored_as_line_feeds(
    api: httpx.Client, credentials: Credentials, database_url: str, sent: str
) -> None:
    body = send(api, credentials, {"feedback": sent}).json()

    assert body["success"] is True
    assert "feedback: line endings were normalized" in body["warningMsg"]
    assert [entry["feedback"] for entry in listed(database_url)] == ["first\nsecond"]


# Refused feedback: nothing stored


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"feedback": None},
        {"feedback": ""},
        {"feedback": " \n\t "},
        {"feedback": "x" * 5_001},
        {"feedback": "é" * 5_001},
        {"feedback": "bell\x07inside"},
        {"feedback": "nul\x00inside"},
        {"feedback": "escape\x1b[31m"},
        {"feedback": "delete\x7finside"},
        {"feedback": "next\x85line"},
        {"feedback": "csi\x9b31m"},
    ],
    ids=[
        "missing",
        "null",
        "empty",
        "blank",
        "5001-chars",
        "5001-two-byte-chars",
        "bell",
        "nul",
        "escape",
        "delete",
        "c1-next-line",
        "c1-csi",
    ],
)
def test_invalid_feedback_is_refused_and_not_stored(
    api: httpx.Client,
    credentials: Credentials,
    database_url: str,
    payload: dict[str, Any],
) -> None:
    response = send(api, credentials, payload)

    body = envelope(response)
    assert response.status_code == 200
    assert (body["success"], body["error"]) == (False, True)
    assert body["failureReason"] == INVALID
    assert isinstance(body["errorMsg"], str)
    assert body["errorMsg"]
    assert listed(database_url) == []


@pytest.mark.parametrize(
    ("content", "named_path"),
    [
        (b'{"feedback": 5}', "feedback"),
        (b'{"feedback": ["nice"]}', "feedback"),
        (b'{"feedback": {"text": "nice"}}', "feedback"),
        (b"[]", None),
        (b'"nice"', None),
        (b"{not json", None),
    ],
)
def test_feedback_of_the_wrong_type_answers_400(
    api: httpx.Client,
    credentials: Credentials,
    database_url: str,
    content: bytes,
    named_path: str | None,
) -> None:
    response = api.post(
        FEEDBACK,
        content=content,
        headers=credentials.headers(**{"content-type": "application/json"}),
    )

    body = envelope(response)
    assert response.status_code == 400
    assert (body["msg"], body["error"]) == (BAD_STRUCTURE, True)
    if named_path is not None:
        assert body["errorMsg"].startswith(f"{named_path}:")
    assert listed(database_url) == []


def test_feedback_with_a_wrong_content_type_answers_415(
    api: httpx.Client, credentials: Credentials, database_url: str
) -> None:
    headers = credentials.headers(**{"content-type": "text/plain"})

    response = api.post(FEEDBACK, content=b'{"feedback": "Nice"}', headers=headers)

    assert response.status_code == 415
    assert "application/json" in envelope(response)["errorMsg"]
    assert listed(database_url) == []


def test_feedback_with_a_wrong_method_answers_405_with_allow(
    api: httpx.Client, credentials: Credentials
) -> None:
    response = api.get(FEEDBACK, headers=credentials.headers())

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    envelope(response)


def test_feedback_with_an_oversized_body_answers_413(
    start_server: StartServer, credentials: Credentials, database_url: str
) -> None:
    server = start_server(max_body_bytes=1_000)

    response = httpx.post(
        server.url + FEEDBACK,
        json={"feedback": "x" * 2_000},
        headers=credentials.headers(),
    )

    assert response.status_code == 413
    envelope(response)
    assert listed(database_url) == []


# Authentication and permissions


def test_feedback_without_credentials_answers_401(
    api: httpx.Client, database_url: str
) -> None:
    response = api.post(FEEDBACK, json={"feedback": "Nice"})

    body = envelope(response)
    assert response.status_code == 401
    assert "x-auth-apikey" in body["errorMsg"]
    assert listed(database_url) == []


def test_key_without_feedback_permission_answers_403(
    api: httpx.Client, make_key: MakeKey, database_url: str
) -> None:
    tickets_only = make_key(
        permissions=frozenset(
            {Permission("tickets:create"), Permission("tickets:read")}
        )
    )

    response = send(api, tickets_only, {"feedback": "Nice"})

    body = envelope(response)
    assert response.status_code == 403
    assert "feedback:create" in body["errorMsg"]
    assert listed(database_url) == []


def test_feedback_only_key_sends_feedback_but_no_tickets(
    api: httpx.Client, make_key: MakeKey
) -> None:
    feedback_only = make_key(permissions=frozenset({Permission("feedback:create")}))

    sent = send(api, feedback_only, {"feedback": "Nice"})
    ticket = api.post(
        "/api/help/ticket", json=VALID_REQUEST, headers=feedback_only.headers()
    )
    listing = api.post(
        "/api/help/openTickets", json={}, headers=feedback_only.headers()
    )

    assert sent.json()["success"] is True
    assert ticket.status_code == 403
    assert listing.status_code == 403


def test_default_key_may_send_feedback(api: httpx.Client, database_url: str) -> None:
    run(database_url, "orgs", "create", "initech")
    created = run(
        database_url,
        "keys",
        "create",
        "--org",
        "initech",
        "--user",
        "a@initech.example",
    )
    headers = {"x-auth-apikey": created.stdout.strip(), "x-auth-scheme": "api-token"}

    response = api.post(FEEDBACK, json={"feedback": "Nice"}, headers=headers)

    assert response.status_code == 200
    assert response.json()["success"] is True


# Idempotency


def test_feedback_replay_answers_the_same_and_stores_nothing_new(
    api: httpx.Client, credentials: Credentials, database_url: str
) -> None:
    payload = {"feedback": "Nice", "rating": 5}

    first = send(api, credentials, payload, **{"Idempotency-Key": "fb-1"})
    second = send(api, credentials, payload, **{"Idempotency-Key": "fb-1"})

    assert first.json()["success"] is True
    assert second.json() == first.json()
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert len(listed(database_url)) == 1


def test_feedback_same_key_with_other_text_is_a_reused_key(
    api: httpx.Client, credentials: Credentials, database_url: str
) -> None:
    send(api, credentials, {"feedback": "Nice"}, **{"Idempotency-Key": "fb"})

    body = send(api, credentials, {"feedback": "Other"}, **{"Idempotency-Key": "fb"})

    assert body.json()["success"] is False
    assert body.json()["failureReason"] == "Idempotency key reused"
    assert [entry["feedback"] for entry in listed(database_url)] == ["Nice"]
