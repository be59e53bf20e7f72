"""POST /api/help/ticket over real HTTP: authentication, validation, storage."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import select
import socket
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from helpline.domain.clock import now_ms
from helpline.domain.idempotency import IdempotencyClaim
from helpline.domain.keys import Permission
from helpline.domain.tickets import Submitter, TicketRules, prepare_ticket
from helpline.http import wire
from helpline.storage.admin import AdminStore
from helpline.storage.records import Created, CreateOutcome, KeyReused, Replayed
from helpline.storage.schema import idempotency_keys
from helpline.storage.store import open_store

from .conftest import (
    REFERENCE_REQUEST,
    VALID_REQUEST,
    Credentials,
    MakeKey,
    StartServer,
    key_of,
)

ENVELOPE_FIELDS = {
    "success",
    "ticketId",
    "failureReason",
    "error",
    "errorMsg",
    "warningMsg",
}
BAD_STRUCTURE = "JSON doesn't match expected object structure"


def post(
    api: httpx.Client, credentials: Credentials, payload: Any, **headers: str
) -> httpx.Response:
    return api.post(
        "/api/help/ticket", json=payload, headers=credentials.headers(**headers)
    )


def assert_envelope(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body) >= ENVELOPE_FIELDS
    return body


# Success and what is stored


def test_valid_request_is_stored_and_acknowledged(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    response = post(api, credentials, VALID_REQUEST)

    body = assert_envelope(response)
    assert response.status_code == 200
    assert body == {
        "success": True,
        "ticketId": body["ticketId"],
        "failureReason": None,
        "error": False,
        "errorMsg": None,
        "warningMsg": None,
    }
    assert 0 < body["ticketId"] < 2**31
    ticket = admin.get_ticket(body["ticketId"])
    assert ticket.subject == VALID_REQUEST["subject"]
    assert ticket.body == VALID_REQUEST["body"]
    assert ticket.collaborators == ["it@acme.example"]
    assert ticket.serial_numbers == ["RCAM-1234-ABCD"]
    assert (ticket.product_type, ticket.service_type) == ("Camera", "Support")
    assert ticket.organization == credentials.organization
    assert ticket.submitter_email == credentials.user_email
    assert ticket.api_key_prefix == credentials.prefix
    assert ticket.status == "Open"
    assert [event.kind for event in ticket.events] == ["created"]


def test_console_access_grant_expires_after_the_configured_hours(
    start_server: StartServer, credentials: Credentials, admin: AdminStore
) -> None:
    server = start_server(ticket_rules=TicketRules(console_access_hours=5))
    response = httpx.post(
        f"{server.url}/api/help/ticket",
        json={"subject": "Grant", "consoleAccessGranted": True},
        headers=credentials.headers(),
    )

    ticket = admin.get_ticket(response.json()["ticketId"])
    assert ticket.console_access_granted is True
    assert ticket.console_access_expires_at_ms is not None
    lifetime_ms = ticket.console_access_expires_at_ms - ticket.created_at_ms
    assert lifetime_ms == 5 * 3_600_000


def test_ticket_without_grant_has_no_expiry(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    response = post(api, credentials, {"subject": "No grant"})

    ticket = admin.get_ticket(response.json()["ticketId"])
    assert ticket.console_access_granted is None
    assert ticket.console_access_expires_at_ms is None


def test_reference_request_answers_invalid_email_address(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    response = post(api, credentials, REFERENCE_REQUEST)

    body = assert_envelope(response)
    assert response.status_code == 200
    assert body["failureReason"] == "Invalid email address"
    assert body["error"] is True
    assert body["success"] is False
    assert body["ticketId"] is None
    assert "collaborators[0]" in body["errorMsg"]
    assert admin.count_tickets() == 0


def test_ticket_ids_are_unique_under_concurrent_creates(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    def create(number: int) -> int:
        response = post(api, credentials, {"subject": f"Concurrent {number}"})
        return int(response.json()["ticketId"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(create, range(200)))

    assert len(set(ids)) == 200
    assert admin.count_tickets() == 200


def test_concurrent_creates_each_answer_their_own_ticket(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    # Many at once share a batch; each answer must name the ticket it made, and
    # each idempotency key the ticket of its own request.
    def create(number: int) -> tuple[int, int]:
        key = {"Idempotency-Key": f"k-{number}"} if number % 3 == 0 else {}
        payload = {"subject": f"Mine is {number}"}
        first = post(api, credentials, payload, **key).json()["ticketId"]
        again = post(api, credentials, payload, **key).json()["ticketId"]
        return int(first), int(again) if key else int(first)

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(create, range(120)))

    for number, (first, again) in enumerate(answers):
        assert admin.get_ticket(first).subject == f"Mine is {number}"
        assert again == first
    assert admin.count_tickets() == 120 + 80


# Authentication


@pytest.mark.parametrize(
    ("headers", "named_header"),
    [
        ({"x-auth-scheme": "api-token"}, "x-auth-apikey"),
        ({"x-auth-apikey": "", "x-auth-scheme": "api-token"}, "x-auth-apikey"),
        ({"x-auth-apikey": "KEY"}, "x-auth-scheme"),
        ({"x-auth-apikey": "KEY", "x-auth-scheme": ""}, "x-auth-scheme"),
    ],
)
def test_missing_credentials_answer_401_naming_the_header(
    api: httpx.Client,
    credentials: Credentials,
    headers: dict[str, str],
    named_header: str,
) -> None:
    sent = {
        name: value.replace("KEY", credentials.token) for name, value in headers.items()
    }
    response = api.post("/api/help/ticket", json=VALID_REQUEST, headers=sent)

    body = assert_envelope(response)
    assert response.status_code == 401
    assert body["error"] is True
    assert f"Missing {named_header} header" in body["errorMsg"]


def test_unknown_scheme_answers_401_listing_the_supported_one(
    api: httpx.Client, credentials: Credentials
) -> None:
    response = post(api, credentials, VALID_REQUEST, **{"x-auth-scheme": "bearer"})

    assert response.status_code == 401
    assert "x-auth-scheme" in response.json()["errorMsg"]
    assert "api-token" in response.json()["errorMsg"]


def test_unknown_revoked_and_wrong_keys_get_the_same_answer(
    api: httpx.Client, make_key: MakeKey, admin: AdminStore
) -> None:
    revoked = make_key(user_email="old@acme.example")
    admin.revoke_api_key(revoked.prefix, now_ms=0)
    live = make_key()
    presented = [
        revoked.token,
        live.token[:-4] + "AAAA",
        "hlk_zzzzzzzzzz_" + "A" * 43,
        "not-a-key",
    ]

    answers = []
    for token in presented:
        response = api.post(
            "/api/help/ticket",
            json=VALID_REQUEST,
            headers={"x-auth-apikey": token, "x-auth-scheme": "api-token"},
        )
        answers.append((response.status_code, response.json()))

    assert answers[0][0] == 401
    assert "x-auth-apikey" in answers[0][1]["errorMsg"]
    assert all(answer == answers[0] for answer in answers)
    assert admin.count_tickets() == 0


def test_key_without_create_permission_answers_403(
    api: httpx.Client, make_key: MakeKey, admin: AdminStore
) -> None:
    reader = make_key(permissions=frozenset({Permission.READ_TICKETS}))

    response = post(api, reader, VALID_REQUEST)

    assert response.status_code == 403
    assert "tickets:create" in assert_envelope(response)["errorMsg"]
    assert admin.count_tickets() == 0


def test_key_use_is_recorded_as_last_used(
    start_server: StartServer, credentials: Credentials, admin: AdminStore
) -> None:
    server = start_server()
    httpx.post(
        f"{server.url}/api/help/ticket",
        json=VALID_REQUEST,
        headers=credentials.headers(),
    )
    server.stop()  # the writer records key use at the latest when it stops

    [key] = admin.list_api_keys()
    assert key.last_used_at_ms is not None


# Malformed requests


@pytest.mark.parametrize(
    ("content", "named_path"),
    [
        (b"{not json", None),
        (b"", None),
        (b"[]", None),
        (b"null", None),
        (b'"a string"', None),
        (b'{"subject": 5}', "subject"),
        (b'{"subject": ["a"]}', "subject"),
        (b'{"body": {"text": "x"}}', "body"),
        (b'{"collaborators": "a@b.example"}', "collaborators"),
        (b'{"collaborators": [1]}', "collaborators[0]"),
        (b'{"serialNumbers": [null, true]}', "serialNumbers[1]"),
        (b'{"consoleAccessGranted": "yes"}', "consoleAccessGranted"),
        (b'{"productType": 3.5}', "productType"),
        (b'{"extra": 1, "serviceType": false}', "serviceType"),
        (b'{"subject": "\xff\xfe"}', None),
        (b'{"extra": ' + b"[" * 100_000, None),
        (
            b'{"extra": 1, "collaborators": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
            None,
        ),
        (b'{"extra": 1', None),
        (b'{"subject": "a"} trailing', None),
    ],
)
def test_malformed_body_answers_400_with_vendor_message(
    api: httpx.Client,
    credentials: Credentials,
    admin: AdminStore,
    content: bytes,
    named_path: str | None,
) -> None:
    response = api.post(
        "/api/help/ticket",
        content=content,
        headers=credentials.headers(**{"content-type": "application/json"}),
    )

    body = assert_envelope(response)
    assert response.status_code == 400
    assert body["msg"] == BAD_STRUCTURE
    assert body["error"] is True
    if named_path is not None:
        assert body["errorMsg"].startswith(f"{named_path}:")
    assert admin.count_tickets() == 0


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
    ],
)
def test_wrong_content_type_answers_415(
    api: httpx.Client, credentials: Credentials, content_type: str | None
) -> None:
    headers = credentials.headers()
    if content_type is not None:
        headers["content-type"] = content_type

    response = api.post(
        "/api/help/ticket", content=json.dumps(VALID_REQUEST), headers=headers
    )

    assert response.status_code == 415
    assert "application/json" in assert_envelope(response)["errorMsg"]


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/problem+json"]
)
def test_json_content_types_are_accepted(
    api: httpx.Client, credentials: Credentials, content_type: str
) -> None:
    response = api.post(
        "/api/help/ticket",
        content=json.dumps(VALID_REQUEST),
        headers=credentials.headers(**{"content-type": content_type}),
    )

    assert response.json()["success"] is True


def test_declared_oversized_body_answers_413(
    start_server: StartServer, credentials: Credentials
) -> None:
    server = start_server(max_body_bytes=1000)
    payload = {"subject": "Big", "body": "x" * 2000}

    response = httpx.post(
        f"{server.url}/api/help/ticket", json=payload, headers=credentials.headers()
    )

    assert response.status_code == 413
    assert "1000 bytes" in assert_envelope(response)["errorMsg"]


def read_response(conn: socket.socket) -> bytes:
    """One whole HTTP response with a Content-Length, read off a raw socket."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += conn.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def test_streamed_oversized_body_answers_413_before_the_body_ends(
    start_server: StartServer, credentials: Credentials, admin: AdminStore
) -> None:
    server = start_server(max_body_bytes=64 * 1024)
    head = (
        "POST /api/help/ticket HTTP/1.1\r\nHost: test\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        f"x-auth-apikey: {credentials.token}\r\nx-auth-scheme: api-token\r\n\r\n"
    )
    chunk = b"x" * 16384

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(head.encode())
        for _ in range(8):  # 128 KiB of a body that never ends
            conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            answered, _, _ = select.select([conn], [], [], 0.05)
            if answered:
                break  # stop sending once the server has spoken
        answer = read_response(conn)

    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"65536 bytes" in answer
    assert admin.count_tickets() == 0


def test_default_body_limit_is_one_mebibyte(
    api: httpx.Client, credentials: Credentials
) -> None:
    response = post(api, credentials, {"subject": "Big", "body": "x" * (1 << 20)})

    assert response.status_code == 413


def test_unknown_fields_are_ignored_and_named_in_warning(
    api: httpx.Client, credentials: Credentials
) -> None:
    response = post(api, credentials, {**VALID_REQUEST, "priority": 1, "zone": "x"})

    body = response.json()
    assert body["success"] is True
    assert "priority: unknown field, ignored" in body["warningMsg"]
    assert "zone: unknown field, ignored" in body["warningMsg"]


def test_unknown_path_answers_404(api: httpx.Client, credentials: Credentials) -> None:
    response = api.post("/api/help/nothing", json={}, headers=credentials.headers())

    assert response.status_code == 404
    assert_envelope(response)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_answers_405_with_allow(api: httpx.Client, method: str) -> None:
    response = api.request(method, "/api/help/ticket")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert_envelope(response)


# Domain failures


@pytest.mark.parametrize(
    ("payload", "reason", "detail"),
    [
        (
            {"collaborators": ["not-an-address"]},
            "Invalid email address",
            "collaborators[0]",
        ),
        (
            {"collaborators": ["ok@acme.example", "a@@b"]},
            "Invalid email address",
            "collaborators[1]",
        ),
        ({"subject": None, "body": None}, "Missing subject and body", "subject"),
        ({"subject": "   ", "body": ""}, "Missing subject and body", "subject"),
        ({"subject": "s" * 201}, "Subject too long", "200"),
        ({"body": "b" * 50_001}, "Body too long", "50000"),
        (
            {"collaborators": [f"c{n}@acme.example" for n in range(21)]},
            "Too many collaborators",
            "20",
        ),
        (
            {"serialNumbers": [f"SN-{n:04d}" for n in range(51)]},
            "Too many serial numbers",
            "50",
        ),
        ({"serialNumbers": ["<string>"]}, "Invalid serial number", "serialNumbers[0]"),
        ({"serialNumbers": ["ABCDEF"]}, "Invalid serial number", "serialNumbers[0]"),
        ({"subject": "Hi\x00there"}, "Invalid characters", "subject"),
        ({"productType": "p" * 65}, "Invalid product type", "64"),
        ({"serviceType": "line\nbreak"}, "Invalid service type", "serviceType"),
    ],
)
def test_domain_failure_answers_200_and_stores_nothing(
    api: httpx.Client,
    credentials: Credentials,
    admin: AdminStore,
    payload: dict[str, Any],
    reason: str,
    detail: str,
) -> None:
    request = {"subject": "A subject", **payload}

    response = post(api, credentials, request)

    body = assert_envelope(response)
    assert response.status_code == 200
    assert (body["success"], body["error"], body["ticketId"]) == (False, True, None)
    assert body["failureReason"] == reason
    assert detail in body["errorMsg"]
    assert admin.count_tickets() == 0


def test_catalogue_refuses_unknown_and_canonicalizes_known_types(
    start_server: StartServer, credentials: Credentials, admin: AdminStore
) -> None:
    rules = TicketRules(product_types=("Camera", "Sensor"), service_types=("RMA",))
    server = start_server(ticket_rules=rules)
    url = f"{server.url}/api/help/ticket"

    unknown = httpx.post(
        url,
        json={"subject": "x", "productType": "Toaster"},
        headers=credentials.headers(),
    ).json()
    known = httpx.post(
        url,
        json={"subject": "x", "productType": "camera", "serviceType": "rma"},
        headers=credentials.headers(),
    ).json()

    assert unknown["failureReason"] == "Unknown product type"
    assert "Camera, Sensor" in unknown["errorMsg"]
    ticket = admin.get_ticket(known["ticketId"])
    assert (ticket.product_type, ticket.service_type) == ("Camera", "RMA")
    assert "productType: normalized to Camera" in known["warningMsg"]


# Normalization


def test_normalization_is_stored_and_reported(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    payload = {
        "subject": "  Camera offline \n again ",
        "body": " It stopped. ",
        "collaborators": [" IT@Acme.Example", None, "it@acme.example", "b@x.example"],
        "serialNumbers": ["rcam-1234", "RCAM-1234", None],
        "productType": " Camera ",
    }

    body = post(api, credentials, payload).json()

    ticket = admin.get_ticket(body["ticketId"])
    assert ticket.subject == "Camera offline again"
    assert ticket.body == "It stopped."
    assert ticket.collaborators == ["IT@acme.example", "b@x.example"]
    assert ticket.serial_numbers == ["RCAM-1234"]
    assert ticket.product_type == "Camera"
    warning = body["warningMsg"]
    assert "collaborators: 1 null entries were dropped" in warning
    assert "collaborators[2]: duplicate of IT@acme.example, dropped" in warning
    assert "serialNumbers[1]: duplicate of RCAM-1234, dropped" in warning
    assert "subject: line breaks" in warning
    assert "body: surrounding whitespace was trimmed" in warning


# Idempotency


def test_same_idempotency_key_replays_the_first_answer(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    payload = {**VALID_REQUEST, "extra": True}
    first = post(api, credentials, payload, **{"Idempotency-Key": "retry-1"})
    second = post(api, credentials, payload, **{"Idempotency-Key": "retry-1"})

    assert first.json() == second.json()
    assert first.json()["success"] is True
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert admin.count_tickets() == 1


def test_same_idempotency_key_with_other_body_is_a_domain_failure(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    post(api, credentials, VALID_REQUEST, **{"Idempotency-Key": "k"})

    response = post(
        api,
        credentials,
        {**VALID_REQUEST, "subject": "Other"},
        **{"Idempotency-Key": "k"},
    )

    body = response.json()
    assert response.status_code == 200
    assert body["failureReason"] == "Idempotency key reused"
    assert body["ticketId"] is None
    assert admin.count_tickets() == 1


def test_idempotency_keys_of_two_organizations_never_collide(
    api: httpx.Client, make_key: MakeKey, admin: AdminStore
) -> None:
    acme, globex = make_key("acme"), make_key("globex")

    first = post(api, acme, VALID_REQUEST, **{"Idempotency-Key": "shared"}).json()
    other = post(api, globex, VALID_REQUEST, **{"Idempotency-Key": "shared"}).json()

    assert first["ticketId"] != other["ticketId"]
    assert admin.count_tickets() == 2


def test_concurrent_retries_with_one_key_make_one_ticket(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    def create(_: int) -> int:
        response = post(api, credentials, VALID_REQUEST, **{"Idempotency-Key": "x"})
        return int(response.json()["ticketId"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(create, range(32)))

    assert len(ids) == 1
    assert admin.count_tickets() == 1


def test_one_key_twice_in_one_batch_replays_the_ticket_of_the_first(
    credentials: Credentials, database_url: str
) -> None:
    # Submitted together, the three share a batch: the second and third find the
    # first's claim before its ticket is written.
    organization_id, api_key_id = key_of(database_url, credentials)
    ticket = prepare_ticket(
        wire.CreateTicketRequest(subject="Once"),
        rules=TicketRules(),
        submitter=Submitter(organization_id, api_key_id, credentials.user_email),
        now_ms=now_ms(),
    )

    async def create_three() -> list[CreateOutcome]:
        store = open_store(database_url)
        await store.start()
        try:
            return list(
                await asyncio.gather(
                    *(
                        store.create_ticket(
                            ticket,
                            claim=IdempotencyClaim("k", fingerprint),
                            warning_msg=None,
                        )
                        for fingerprint in ("same", "same", "other")
                    )
                )
            )
        finally:
            await store.close()

    first, again, reused = asyncio.run(create_three())

    assert isinstance(first, Created)
    assert first.ticket_id is not None
    assert again == Replayed(first.ticket_id, None)
    assert reused == KeyReused(first.ticket_id)


def test_idempotency_key_expires_after_24_hours(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    first = post(api, credentials, VALID_REQUEST, **{"Idempotency-Key": "old"})
    with admin.engine.begin() as connection:
        connection.execute(
            sa.update(idempotency_keys).values(
                created_at_ms=idempotency_keys.c.created_at_ms - 24 * 3_600_000 - 1
            )
        )

    again = post(api, credentials, VALID_REQUEST, **{"Idempotency-Key": "old"})

    assert again.json()["ticketId"] != first.json()["ticketId"]
    assert "idempotent-replayed" not in again.headers


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "naïve"])
def test_malformed_idempotency_key_answers_400(
    api: httpx.Client, credentials: Credentials, key: str
) -> None:
    headers = [
        *(
            (name.encode(), value.encode())
            for name, value in credentials.headers().items()
        ),
        (b"content-type", b"application/json"),
        (b"idempotency-key", key.encode()),
    ]

    response = api.post(
        "/api/help/ticket", content=json.dumps(VALID_REQUEST), headers=headers
    )

    assert response.status_code == 400
    assert "Idempotency-Key" in assert_envelope(response)["errorMsg"]


# Rate limiting and overload


def test_rate_limit_answers_429_with_retry_after_per_organization(
    start_server: StartServer, make_key: MakeKey
) -> None:
    server = start_server(rate_limit_per_second=0.5, rate_limit_burst=2)
    acme, globex = make_key("acme"), make_key("globex")
    url = f"{server.url}/api/help/ticket"

    statuses = [
        httpx.post(url, json=VALID_REQUEST, headers=acme.headers()).status_code
        for _ in range(3)
    ]
    limited = httpx.post(url, json=VALID_REQUEST, headers=acme.headers())
    other = httpx.post(url, json=VALID_REQUEST, headers=globex.headers())

    assert statuses == [200, 200, 429]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert assert_envelope(limited)["error"] is True
    assert other.status_code == 200


def test_full_write_queue_answers_503_with_retry_after(
    start_server: StartServer, credentials: Credentials, admin: AdminStore
) -> None:
    server = start_server(max_pending_writes=0)

    response = httpx.post(
        f"{server.url}/api/help/ticket",
        json=VALID_REQUEST,
        headers=credentials.headers(),
    )

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert assert_envelope(response)["error"] is True
    assert admin.count_tickets() == 0


# Operations


def test_request_id_is_echoed_or_generated(
    api: httpx.Client, credentials: Credentials
) -> None:
    echoed = post(api, credentials, VALID_REQUEST, **{"X-Request-Id": "abc-123"})
    generated = post(api, credentials, VALID_REQUEST)

    assert echoed.headers["x-request-id"] == "abc-123"
    assert len(generated.headers["x-request-id"]) == 32


def test_health_and_readiness(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"
