"""Open-ticket listings (openTickets, openTicketsV2) and ``tickets set-status``.

Black-box acceptance tests written from the planned interface of issue 3: real HTTP
on a loopback socket, a fresh SQLite file per test, the CLI through click.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from helpline.cli import cli
from helpline.domain.clock import iso_utc, iso_utc_each
from helpline.domain.keys import Permission
from helpline.storage.admin import AdminStore
from helpline.storage.schema import tickets as tickets_table

from .conftest import Credentials, MakeKey, StartServer

OPEN_TICKETS = "/api/help/openTickets"
OPEN_TICKETS_V2 = "/api/help/openTicketsV2"
OPEN_TICKETS_FIELDS = {
    "currentPage",
    "hasNexPage",
    "totalTickets",
    "tickets",
    "error",
    "errorMsg",
    "warningMsg",
}
OPEN_TICKETS_V2_FIELDS = {"tickets", "userTickets", "error", "errorMsg", "warningMsg"}
FIELDS_OF = {OPEN_TICKETS: OPEN_TICKETS_FIELDS, OPEN_TICKETS_V2: OPEN_TICKETS_V2_FIELDS}
TICKET_FIELDS = {"id", "createdAt", "status", "subject"}
BAD_STRUCTURE = "JSON doesn't match expected object structure"
ISO_UTC_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
# 2023-11-14T22:13:20Z: far from "now", so windows never catch real creation times.
BASE_MS = 1_700_000_000_000
STATUSES = ["Open", "Pending", "Solved", "Closed"]
CAP_WARNING = "more than 1000 open tickets in the window; the newest 1000 are listed"
VALID_RMA = {
    "contactName": "John Doe",
    "contactPhoneNumber": "+15551234567",
    "deviceName": "Rhombus Camera Pro",
    "problem": "Camera not recording properly",
    "serialNumber": "RCAM-1234-ABCD",
    "returnShippingAddress": {
        "returnAddressStreet": "123 Main Street",
        "returnAddressCity": "San Francisco",
        "returnAddressState": "CA",
        "returnAddressPostalCode": "94105",
        "returnAddressCountry": "United States",
    },
}


# Helpers


def open_ticket(
    api: httpx.Client, credentials: Credentials, subject: str | None = "A ticket"
) -> int:
    payload = {"subject": subject} if subject is not None else {"body": "No subject."}
    response = api.post("/api/help/ticket", json=payload, headers=credentials.headers())
    assert response.json()["success"] is True, response.text
    return int(response.json()["ticketId"])


def open_many(api: httpx.Client, credentials: Credentials, count: int) -> list[int]:
    return [open_ticket(api, credentials, f"Ticket {n}") for n in range(count)]


def list_open(
    api: httpx.Client,
    credentials: Credentials,
    payload: Any = None,
    path: str = OPEN_TICKETS,
) -> httpx.Response:
    return api.post(
        path, json={} if payload is None else payload, headers=credentials.headers()
    )


def list_open_v2(
    api: httpx.Client, credentials: Credentials, payload: Any = None
) -> httpx.Response:
    return list_open(api, credentials, payload, path=OPEN_TICKETS_V2)


def ids(listed: list[dict[str, Any]]) -> list[int]:
    return [ticket["id"] for ticket in listed]


def millis(created_at: str) -> int:
    moment = datetime.datetime.fromisoformat(created_at)
    assert moment.utcoffset() == datetime.timedelta(0)
    return (moment - EPOCH) // datetime.timedelta(milliseconds=1)


def set_created_at(admin: AdminStore, ticket_id: int, created_at_ms: int) -> None:
    with admin.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE tickets SET created_at_ms = :ms WHERE id = :id"),
            {"ms": created_at_ms, "id": ticket_id},
        )


def clone_ticket(
    admin: AdminStore, ticket_id: int, *, count: int, first_created_at_ms: int
) -> None:
    """Copy a ticket made through the API ``count`` times, a millisecond apart.

    Every column but the id and the creation time is copied as stored, so the
    copies are whatever a real ticket of that key is.
    """
    with admin.engine.begin() as connection:
        columns = [
            column.name
            for column in tickets_table.columns
            if column.name not in {"id", "created_at_ms"}
        ]
        names = ", ".join(columns)
        connection.execute(
            sa.text(
                f"INSERT INTO tickets ({names}, created_at_ms) "  # noqa: S608
                "WITH RECURSIVE n(i) AS "
                "(SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :count) "
                f"SELECT {names}, :first + n.i FROM tickets, n WHERE tickets.id = :id"
            ),
            {"count": count, "first": first_created_at_ms, "id": ticket_id},
        )


def newest_open_ids(admin: AdminStore, limit: int) -> list[int]:
    with admin.engine.begin() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT id FROM tickets WHERE status IN ('Open', 'Pending') "
                "ORDER BY created_at_ms DESC, id DESC LIMIT :limit"
            ),
            {"limit": limit},
        )
        return [int(row[0]) for row in rows]


def run(database_url: str, *arguments: str) -> Result:
    return CliRunner().invoke(cli, [*arguments, "--database", database_url])


def set_status(database_url: str, ticket_id: int, status: str) -> None:
    result = run(database_url, "tickets", "set-status", str(ticket_id), status)
    assert result.exit_code == 0, result.output


def shown(database_url: str, ticket_id: int) -> dict[str, Any]:
    result = run(database_url, "tickets", "show", str(ticket_id), "--json")
    assert result.exit_code == 0, result.output
    ticket: dict[str, Any] = json.loads(result.stdout)
    return ticket


def status_events(database_url: str, ticket_id: int) -> list[dict[str, Any]]:
    events = shown(database_url, ticket_id)["events"]
    return [event for event in events if event["kind"] == "status_changed"]


# openTickets: the answer


def test_open_tickets_answers_every_field_of_the_schema(
    api: httpx.Client, credentials: Credentials
) -> None:
    ticket_id = open_ticket(api, credentials, "Camera connectivity issue")

    response = list_open(api, credentials, {"pageNumber": 1})

    body = response.json()
    assert response.status_code == 200
    assert set(body) >= OPEN_TICKETS_FIELDS
    assert {name: body[name] for name in OPEN_TICKETS_FIELDS - {"tickets"}} == {
        "currentPage": 1,
        "hasNexPage": False,
        "totalTickets": 1,
        "error": False,
        "errorMsg": None,
        "warningMsg": None,
    }
    [item] = body["tickets"]
    assert set(item) == TICKET_FIELDS
    assert (item["id"], item["status"]) == (ticket_id, "Open")
    assert item["subject"] == "Camera connectivity issue"


def test_ticket_without_subject_is_listed_with_null_subject(
    api: httpx.Client, credentials: Credentials
) -> None:
    open_ticket(api, credentials, subject=None)

    [item] = list_open(api, credentials).json()["tickets"]

    assert "subject" in item
    assert item["subject"] is None


def test_empty_organization_gets_an_empty_first_page(
    api: httpx.Client, credentials: Credentials
) -> None:
    body = list_open(api, credentials).json()

    assert body["tickets"] == []
    assert (body["totalTickets"], body["hasNexPage"], body["error"]) == (
        0,
        False,
        False,
    )


def test_each_organization_sees_only_its_own_open_tickets(
    api: httpx.Client, make_key: MakeKey
) -> None:
    acme, globex = make_key("acme"), make_key("globex", user_email="it@globex.example")
    acme_ids = open_many(api, acme, 2)
    globex_ids = open_many(api, globex, 1)

    for_acme = list_open(api, acme).json()
    for_globex = list_open(api, globex).json()

    assert ids(for_acme["tickets"]) == acme_ids[::-1]
    assert for_acme["totalTickets"] == 2
    assert ids(for_globex["tickets"]) == globex_ids
    assert for_globex["totalTickets"] == 1


def test_reader_key_sees_tickets_of_every_key_of_its_organization(
    api: httpx.Client, make_key: MakeKey
) -> None:
    writer = make_key(user_email="writer@acme.example")
    reader = make_key(
        user_email="reader@acme.example",
        permissions=frozenset({Permission("tickets:read")}),
    )
    ticket_id = open_ticket(api, writer)

    response = list_open(api, reader)

    assert response.status_code == 200
    assert ids(response.json()["tickets"]) == [ticket_id]


def test_solved_and_closed_tickets_are_not_listed_but_pending_is(
    api: httpx.Client, credentials: Credentials, database_url: str
) -> None:
    opened, pending, solved, closed = open_many(api, credentials, 4)
    set_status(database_url, pending, "Pending")
    set_status(database_url, solved, "Solved")
    set_status(database_url, closed, "Closed")

    body = list_open(api, credentials).json()

    assert ids(body["tickets"]) == [pending, opened]
    assert [item["status"] for item in body["tickets"]] == ["Pending", "Open"]
    assert body["totalTickets"] == 2


def test_reopened_ticket_is_listed_and_counted_again(
    api: httpx.Client, credentials: Credentials, database_url: str
) -> None:
    ticket_id = open_ticket(api, credentials)
    set_status(database_url, ticket_id, "Closed")
    closed = list_open(api, credentials).json()

    set_status(database_url, ticket_id, "Open")
    reopened = list_open(api, credentials).json()

    assert (closed["tickets"], closed["totalTickets"]) == ([], 0)
    assert (ids(reopened["tickets"]), reopened["totalTickets"]) == ([ticket_id], 1)


@pytest.mark.parametrize("path", [OPEN_TICKETS, OPEN_TICKETS_V2])
def test_tickets_are_listed_newest_first_by_creation_time_then_id(
    api: httpx.Client, credentials: Credentials, admin: AdminStore, path: str
) -> None:
    first, second, third = open_many(api, credentials, 3)
    set_created_at(admin, first, BASE_MS + 5_000)
    set_created_at(admin, second, BASE_MS)
    set_created_at(admin, third, BASE_MS)

    body = list_open(api, credentials, path=path).json()

    assert ids(body["tickets"]) == [first, third, second]


def test_total_counts_only_tickets_actually_stored(
    api: httpx.Client, credentials: Credentials
) -> None:
    retry = credentials.headers(**{"Idempotency-Key": "once"})
    for _ in range(2):
        api.post("/api/help/ticket", json={"subject": "Once"}, headers=retry)
        api.post("/api/help/rma", json=VALID_RMA, headers=retry)
    api.post("/api/help/ticket", json={"subject": ""}, headers=credentials.headers())
    api.post(
        "/api/help/rma",
        json={**VALID_RMA, "serialNumber": "nope"},
        headers=credentials.headers(),
    )

    body = list_open(api, credentials).json()

    assert body["totalTickets"] == 1
    assert len(body["tickets"]) == 1


def test_total_follows_every_status_change(
    api: httpx.Client, credentials: Credentials, database_url: str
) -> None:
    changing, _steady = open_many(api, credentials, 2)
    totals = []

    for status in ["Solved", "Closed", "Pending", "Open", "Closed"]:
        set_status(database_url, changing, status)
        totals.append(list_open(api, credentials).json()["totalTickets"])

    assert totals == [1, 1, 2, 2, 1]


def test_rma_tickets_are_listed_with_plain_ones(
    api: httpx.Client, credentials: Credentials
) -> None:
    plain = open_ticket(api, credentials, "Plain ticket")
    rma = api.post("/api/help/rma", json=VALID_RMA, headers=credentials.headers())
    rma_id = rma.json()["ticketId"]

    listed = list_open(api, credentials).json()["tickets"]
    windowed = list_open_v2(api, credentials).json()["tickets"]

    assert ids(listed) == [rma_id, plain]
    assert listed[0]["subject"] == "RMA: Rhombus Camera Pro"
    assert list_open(api, credentials).json()["totalTickets"] == 2
    assert ids(windowed) == [rma_id, plain]


# openTickets: pages


def test_pages_hold_100_tickets_and_say_whether_another_follows(
    api: httpx.Client, credentials: Credentials
) -> None:
    created = open_many(api, credentials, 130)

    first = list_open(api, credentials, {"pageNumber": 1}).json()
    second = list_open(api, credentials, {"pageNumber": 2}).json()

    assert (first["currentPage"], len(first["tickets"])) == (1, 100)
    assert (first["hasNexPage"], first["totalTickets"]) == (True, 130)
    assert (second["currentPage"], len(second["tickets"])) == (2, 30)
    assert (second["hasNexPage"], second["totalTickets"]) == (False, 130)
    assert ids(first["tickets"]) + ids(second["tickets"]) == created[::-1]


def test_exactly_one_full_page_has_no_next_page(
    api: httpx.Client, credentials: Credentials
) -> None:
    open_many(api, credentials, 100)

    first = list_open(api, credentials, {"pageNumber": 1}).json()
    second = list_open(api, credentials, {"pageNumber": 2}).json()

    assert (len(first["tickets"]), first["hasNexPage"]) == (100, False)
    assert (second["tickets"], second["hasNexPage"]) == ([], False)


@pytest.mark.parametrize("payload", [{}, {"pageNumber": None}])
def test_missing_or_null_page_number_means_the_first_page(
    api: httpx.Client, credentials: Credentials, payload: dict[str, Any]
) -> None:
    ticket_id = open_ticket(api, credentials)

    body = list_open(api, credentials, payload).json()

    assert body["currentPage"] == 1
    assert ids(body["tickets"]) == [ticket_id]
    assert body["error"] is False


@pytest.mark.parametrize("page", [2, 3, 1000, 2**31 - 1])
def test_page_past_the_end_is_empty_not_an_error(
    api: httpx.Client, credentials: Credentials, page: int
) -> None:
    open_many(api, credentials, 3)

    response = list_open(api, credentials, {"pageNumber": page})

    body = response.json()
    assert response.status_code == 200
    assert (body["tickets"], body["hasNexPage"], body["currentPage"]) == (
        [],
        False,
        page,
    )
    assert (body["error"], body["errorMsg"], body["totalTickets"]) == (False, None, 3)


@pytest.mark.parametrize("page", [0, -1, -(2**31)])
def test_page_number_below_one_is_an_error_naming_it(
    api: httpx.Client, credentials: Credentials, page: int
) -> None:
    open_ticket(api, credentials)

    response = list_open(api, credentials, {"pageNumber": page})

    body = response.json()
    assert response.status_code == 200
    assert set(body) >= OPEN_TICKETS_FIELDS
    assert (body["error"], body["tickets"]) == (True, None)
    assert "pageNumber" in body["errorMsg"]


@pytest.mark.parametrize(
    ("content", "named_path"),
    [
        (b'{"pageNumber": "2"}', "pageNumber"),
        (b'{"pageNumber": true}', "pageNumber"),
        (b'{"pageNumber": 1.5}', "pageNumber"),
        (b'{"pageNumber": [1]}', "pageNumber"),
        (b"[]", None),
        (b"{not json", None),
    ],
)
def test_page_number_of_the_wrong_type_answers_400(
    api: httpx.Client,
    credentials: Credentials,
    content: bytes,
    named_path: str | None,
) -> None:
    response = api.post(
        OPEN_TICKETS,
        content=content,
        headers=credentials.headers(**{"content-type": "application/json"}),
    )

    body = response.json()
    assert response.status_code == 400
    assert set(body) >= OPEN_TICKETS_FIELDS
    assert (body["msg"], body["error"]) == (BAD_STRUCTURE, True)
    if named_path is not None:
        assert body["errorMsg"].startswith(f"{named_path}:")


@pytest.mark.parametrize(
    "created_at_ms",
    [
        1_796_294_224_059,  # 2026-12-03T10:37:04.059Z, the spec's example
        BASE_MS,  # a whole second
        BASE_MS + 7,
        1,
    ],
)
def test_created_at_is_iso_utc_matching_the_stored_millisecond(
    api: httpx.Client, credentials: Credentials, admin: AdminStore, created_at_ms: int
) -> None:
    ticket_id = open_ticket(api, credentials)
    set_created_at(admin, ticket_id, created_at_ms)

    [item] = list_open(api, credentials).json()["tickets"]
    [windowed] = list_open_v2(api, credentials).json()["tickets"]

    assert item["createdAt"].endswith("Z")
    assert millis(item["createdAt"]) == created_at_ms
    assert windowed["createdAt"] == item["createdAt"]


def test_created_at_has_millisecond_precision(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    ticket_id = open_ticket(api, credentials)
    set_created_at(admin, ticket_id, 1_796_294_224_059)

    [item] = list_open(api, credentials).json()["tickets"]

    assert item["createdAt"] == "2026-12-03T10:37:04.059Z"


def test_created_at_of_a_fresh_ticket_matches_the_stored_time(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    ticket_id = open_ticket(api, credentials)

    [item] = list_open(api, credentials).json()["tickets"]

    assert ISO_UTC_MILLIS.fullmatch(item["createdAt"])
    assert millis(item["createdAt"]) == admin.get_ticket(ticket_id).created_at_ms


# Hours apart, within one, out of order, before 1970, at both ends of a time's range.
MOMENTS_OF_A_LISTING = [
    1_796_294_224_059,
    1_796_294_224_058,
    1_796_290_800_000,
    1_796_290_799_999,
    1_796_294_224_059,
    0,
    -1,
    -3_600_001,
    253_402_300_799_999,
    -62_135_596_800_000,
]


def test_created_at_of_a_listing_is_each_tickets_own_iso_time() -> None:
    assert iso_utc_each(MOMENTS_OF_A_LISTING) == [
        iso_utc(ms) for ms in MOMENTS_OF_A_LISTING
    ]


@pytest.mark.parametrize("ms", [253_402_300_800_000, -62_135_596_800_001])
def test_a_listing_time_outside_years_1_to_9999_raises_as_one_time_does(
    ms: int,
) -> None:
    with pytest.raises((ValueError, OverflowError)):
        iso_utc(ms)
    with pytest.raises((ValueError, OverflowError)):
        iso_utc_each([0, ms])


# Both listings: authentication, permissions, unknown fields


@pytest.mark.parametrize("path", [OPEN_TICKETS, OPEN_TICKETS_V2])
def test_key_without_read_permission_answers_403(
    api: httpx.Client, make_key: MakeKey, path: str
) -> None:
    creator = make_key(permissions=frozenset({Permission("tickets:create")}))
    open_ticket(api, creator)

    response = list_open(api, creator, path=path)

    body = response.json()
    assert response.status_code == 403
    assert set(body) >= FIELDS_OF[path]
    assert "tickets:read" in body["errorMsg"]
    assert body["tickets"] is None


@pytest.mark.parametrize("path", [OPEN_TICKETS, OPEN_TICKETS_V2])
def test_missing_credentials_answer_401(
    api: httpx.Client, credentials: Credentials, path: str
) -> None:
    open_ticket(api, credentials)

    response = api.post(path, json={})

    body = response.json()
    assert response.status_code == 401
    assert set(body) >= FIELDS_OF[path]
    assert "x-auth-apikey" in body["errorMsg"]
    assert body["tickets"] is None


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        (OPEN_TICKETS, {"pageNumber": 1, "sortOrder": "asc"}),
        (OPEN_TICKETS_V2, {"startTimeMs": None, "sortOrder": "asc"}),
    ],
)
def test_unknown_fields_are_ignored_and_named_in_warning(
    api: httpx.Client, credentials: Credentials, path: str, payload: dict[str, Any]
) -> None:
    ticket_id = open_ticket(api, credentials)

    body = list_open(api, credentials, payload, path=path).json()

    assert body["error"] is False
    assert ids(body["tickets"]) == [ticket_id]
    assert "sortOrder: unknown field, ignored" in body["warningMsg"]


@pytest.mark.parametrize("path", [OPEN_TICKETS, OPEN_TICKETS_V2])
def test_listing_with_a_wrong_content_type_answers_415(
    api: httpx.Client, credentials: Credentials, path: str
) -> None:
    headers = credentials.headers(**{"content-type": "text/plain"})

    response = api.post(path, content=b"{}", headers=headers)

    assert response.status_code == 415
    assert set(response.json()) >= FIELDS_OF[path]
    assert "application/json" in response.json()["errorMsg"]


@pytest.mark.parametrize("path", [OPEN_TICKETS, OPEN_TICKETS_V2])
def test_listing_with_a_wrong_method_answers_405_with_allow(
    api: httpx.Client, credentials: Credentials, path: str
) -> None:
    response = api.get(path, headers=credentials.headers())

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert set(response.json()) >= FIELDS_OF[path]


@pytest.mark.parametrize("path", [OPEN_TICKETS, OPEN_TICKETS_V2])
def test_listing_with_an_oversized_body_answers_413(
    start_server: StartServer, credentials: Credentials, path: str
) -> None:
    server = start_server(max_body_bytes=1_000)

    response = httpx.post(
        server.url + path,
        json={"pageNumber": None, "padding": "x" * 2_000},
        headers=credentials.headers(),
    )

    assert response.status_code == 413
    assert set(response.json()) >= FIELDS_OF[path]


# openTicketsV2


def test_v2_answers_every_field_of_the_schema(
    api: httpx.Client, credentials: Credentials
) -> None:
    ticket_id = open_ticket(api, credentials, "Camera connectivity issue")

    response = list_open_v2(api, credentials, {"startTimeMs": None, "endTimeMs": None})

    body = response.json()
    assert response.status_code == 200
    assert set(body) >= OPEN_TICKETS_V2_FIELDS
    assert (body["error"], body["errorMsg"], body["warningMsg"]) == (False, None, None)
    [item] = body["tickets"]
    assert set(item) == TICKET_FIELDS
    assert (item["id"], item["status"]) == (ticket_id, "Open")
    assert item["subject"] == "Camera connectivity issue"
    assert body["userTickets"] == [item]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (None, None, [4, 3, 2, 1, 0]),
        (BASE_MS + 1_000, BASE_MS + 3_000, [3, 2, 1]),
        (BASE_MS + 2_000, BASE_MS + 2_000, [2]),
        (BASE_MS + 1_001, BASE_MS + 1_999, []),
        (None, BASE_MS + 1_000, [1, 0]),
        (BASE_MS + 3_000, None, [4, 3]),
        (BASE_MS + 4_001, None, []),
        (None, BASE_MS - 1, []),
        (0, BASE_MS, [0]),
    ],
)
def test_v2_window_is_inclusive_and_null_bounds_are_open_ended(
    api: httpx.Client,
    credentials: Credentials,
    admin: AdminStore,
    start: int | None,
    end: int | None,
    expected: list[int],
) -> None:
    created = open_many(api, credentials, 5)
    for index, ticket_id in enumerate(created):
        set_created_at(admin, ticket_id, BASE_MS + index * 1_000)

    body = list_open_v2(api, credentials, {"startTimeMs": start, "endTimeMs": end})

    assert body.json()["error"] is False
    assert ids(body.json()["tickets"]) == [created[index] for index in expected]
    assert ids(body.json()["userTickets"]) == [created[index] for index in expected]


def test_v2_absent_bounds_are_open_ended(
    api: httpx.Client, credentials: Credentials
) -> None:
    created = open_many(api, credentials, 2)

    body = list_open_v2(api, credentials, {}).json()

    assert ids(body["tickets"]) == created[::-1]
    assert body["error"] is False


@pytest.mark.parametrize(
    ("start", "end"), [(BASE_MS + 1, BASE_MS), (BASE_MS * 2, BASE_MS), (1, 0)]
)
def test_v2_inverted_window_is_an_error_naming_both_bounds(
    api: httpx.Client, credentials: Credentials, start: int, end: int
) -> None:
    open_ticket(api, credentials)

    response = list_open_v2(api, credentials, {"startTimeMs": start, "endTimeMs": end})

    body = response.json()
    assert response.status_code == 200
    assert set(body) >= OPEN_TICKETS_V2_FIELDS
    assert (body["error"], body["tickets"], body["userTickets"]) == (True, None, None)
    assert "startTimeMs" in body["errorMsg"]
    assert "endTimeMs" in body["errorMsg"]


@pytest.mark.parametrize(
    ("content", "named_path"),
    [
        (b'{"startTimeMs": "1000"}', "startTimeMs"),
        (b'{"endTimeMs": 1.5}', "endTimeMs"),
        (b'{"startTimeMs": 0, "endTimeMs": false}', "endTimeMs"),
    ],
)
def test_v2_bound_of_the_wrong_type_answers_400(
    api: httpx.Client, credentials: Credentials, content: bytes, named_path: str
) -> None:
    response = api.post(
        OPEN_TICKETS_V2,
        content=content,
        headers=credentials.headers(**{"content-type": "application/json"}),
    )

    body = response.json()
    assert response.status_code == 400
    assert set(body) >= OPEN_TICKETS_V2_FIELDS
    assert body["msg"] == BAD_STRUCTURE
    assert body["errorMsg"].startswith(f"{named_path}:")


def test_v2_user_tickets_are_those_of_the_callers_user_on_any_key(
    api: httpx.Client, make_key: MakeKey
) -> None:
    alice = make_key(user_email="alice@acme.example")
    alice_again = make_key(user_email="alice@acme.example")
    bob = make_key(user_email="bob@acme.example")
    alice_elsewhere = make_key("globex", user_email="alice@acme.example")
    first = open_ticket(api, alice)
    bobs = open_ticket(api, bob)
    second = open_ticket(api, alice_again)
    open_ticket(api, alice_elsewhere)

    for_alice = list_open_v2(api, alice).json()
    for_bob = list_open_v2(api, bob).json()

    assert ids(for_alice["tickets"]) == [second, bobs, first]
    assert ids(for_alice["userTickets"]) == [second, first]
    assert ids(for_bob["tickets"]) == [second, bobs, first]
    assert ids(for_bob["userTickets"]) == [bobs]


def test_v2_user_without_tickets_gets_an_empty_list(
    api: httpx.Client, make_key: MakeKey
) -> None:
    writer = make_key(user_email="writer@acme.example")
    reader = make_key(user_email="reader@acme.example")
    ticket_id = open_ticket(api, writer)

    body = list_open_v2(api, reader).json()

    assert ids(body["tickets"]) == [ticket_id]
    assert body["userTickets"] == []


def test_v2_excludes_solved_and_closed_tickets(
    api: httpx.Client, credentials: Credentials, database_url: str
) -> None:
    opened, pending, solved, closed = open_many(api, credentials, 4)
    set_status(database_url, pending, "Pending")
    set_status(database_url, solved, "Solved")
    set_status(database_url, closed, "Closed")

    body = list_open_v2(api, credentials).json()

    assert ids(body["tickets"]) == [pending, opened]
    assert ids(body["userTickets"]) == [pending, opened]
    assert [item["status"] for item in body["tickets"]] == ["Pending", "Open"]


def test_v2_lists_at_most_the_newest_1000_with_a_warning(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    original = open_ticket(api, credentials)
    set_created_at(admin, original, BASE_MS - 1)
    clone_ticket(admin, original, count=1_100, first_created_at_ms=BASE_MS)

    response = list_open_v2(api, credentials)

    body = response.json()
    assert response.status_code == 200
    assert ids(body["tickets"]) == newest_open_ids(admin, 1_000)
    assert ids(body["userTickets"]) == newest_open_ids(admin, 1_000)
    assert f"tickets: {CAP_WARNING}" in body["warningMsg"]
    assert f"userTickets: {CAP_WARNING}" in body["warningMsg"]
    assert body["error"] is False


def test_v2_cap_warns_only_for_the_list_that_was_cut(
    api: httpx.Client, make_key: MakeKey, admin: AdminStore
) -> None:
    alice = make_key(user_email="alice@acme.example")
    bob = make_key(user_email="bob@acme.example")
    bobs = open_ticket(api, bob)
    set_created_at(admin, bobs, BASE_MS - 1)
    clone_ticket(admin, bobs, count=1_000, first_created_at_ms=BASE_MS)
    alices = open_many(api, alice, 2)

    body = list_open_v2(api, alice).json()

    assert len(body["tickets"]) == 1_000
    assert ids(body["tickets"])[:2] == alices[::-1]
    assert ids(body["userTickets"]) == alices[::-1]
    assert f"tickets: {CAP_WARNING}" in body["warningMsg"]
    assert "userTickets:" not in body["warningMsg"]


def test_v2_exactly_1000_tickets_are_listed_without_a_warning(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    original = open_ticket(api, credentials)
    set_created_at(admin, original, BASE_MS - 1)
    clone_ticket(admin, original, count=999, first_created_at_ms=BASE_MS)

    body = list_open_v2(api, credentials).json()

    assert len(body["tickets"]) == 1_000
    assert len(body["userTickets"]) == 1_000
    assert body["warningMsg"] is None


def test_v2_cap_counts_only_tickets_inside_the_window(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    original = open_ticket(api, credentials)
    set_created_at(admin, original, BASE_MS - 1)
    clone_ticket(admin, original, count=1_100, first_created_at_ms=BASE_MS)

    window = {"startTimeMs": BASE_MS, "endTimeMs": BASE_MS + 499}
    body = list_open_v2(api, credentials, window).json()

    assert len(body["tickets"]) == 500
    assert millis(body["tickets"][0]["createdAt"]) == BASE_MS + 499
    assert millis(body["tickets"][-1]["createdAt"]) == BASE_MS
    assert body["warningMsg"] is None


# tickets set-status


def test_set_status_changes_the_status_and_reports_it(
    api: httpx.Client, credentials: Credentials, database_url: str, admin: AdminStore
) -> None:
    ticket_id = open_ticket(api, credentials)

    result = run(database_url, "tickets", "set-status", str(ticket_id), "Solved")

    assert result.exit_code == 0, result.output
    assert f"ticket {ticket_id}: Open -> Solved" in result.stderr
    assert admin.get_ticket(ticket_id).status == "Solved"


def test_set_status_records_before_after_actor_and_time(
    api: httpx.Client, credentials: Credentials, database_url: str
) -> None:
    ticket_id = open_ticket(api, credentials)
    before_ms = int(time.time() * 1000)

    result = run(
        database_url,
        "tickets",
        "set-status",
        str(ticket_id),
        "Solved",
        "--by",
        "alice@acme.example",
    )

    after_ms = int(time.time() * 1000)
    assert result.exit_code == 0, result.output
    events = shown(database_url, ticket_id)["events"]
    assert [event["kind"] for event in events] == ["created", "status_changed"]
    change = events[1]
    assert change["before"] == {"status": "Open"}
    assert change["after"] == {"status": "Solved"}
    assert change["actor"] == "alice@acme.example"
    assert before_ms - 1 <= change["created_at_ms"] <= after_ms + 1


def test_set_status_actor_defaults_to_operator(
    api: httpx.Client, credentials: Credentials, database_url: str
) -> None:
    ticket_id = open_ticket(api, credentials)

    set_status(database_url, ticket_id, "Pending")

    [change] = status_events(database_url, ticket_id)
    assert change["actor"] == "operator"


def test_each_status_change_is_recorded_in_order(
    api: httpx.Client, credentials: Credentials, database_url: str
) -> None:
    ticket_id = open_ticket(api, credentials)

    for status in ["Pending", "Solved", "Closed"]:
        set_status(database_url, ticket_id, status)

    changes = status_events(database_url, ticket_id)
    assert [(c["before"], c["after"]) for c in changes] == [
        ({"status": "Open"}, {"status": "Pending"}),
        ({"status": "Pending"}, {"status": "Solved"}),
        ({"status": "Solved"}, {"status": "Closed"}),
    ]


@pytest.mark.parametrize(
    ("given", "stored"),
    [("solved", "Solved"), ("CLOSED", "Closed"), ("pEnDiNg", "Pending")],
)
def test_set_status_matches_the_status_case_insensitively(
    api: httpx.Client,
    credentials: Credentials,
    database_url: str,
    admin: AdminStore,
    given: str,
    stored: str,
) -> None:
    ticket_id = open_ticket(api, credentials)

    result = run(database_url, "tickets", "set-status", str(ticket_id), given)

    assert result.exit_code == 0, result.output
    assert admin.get_ticket(ticket_id).status == stored
    assert f"Open -> {stored}" in result.stderr
    assert status_events(database_url, ticket_id)[0]["after"] == {"status": stored}


@pytest.mark.parametrize("status", ["Resolved", "Deleted", "", "Open!"])
def test_set_status_refuses_an_unknown_status_listing_the_four(
    api: httpx.Client,
    credentials: Credentials,
    database_url: str,
    admin: AdminStore,
    status: str,
) -> None:
    ticket_id = open_ticket(api, credentials)

    result = run(database_url, "tickets", "set-status", str(ticket_id), status)

    assert result.exit_code == 2
    assert all(name in result.stderr for name in STATUSES)
    assert admin.get_ticket(ticket_id).status == "Open"
    assert status_events(database_url, ticket_id) == []


def test_set_status_of_an_unknown_ticket_exits_1(database_url: str) -> None:
    result = run(database_url, "tickets", "set-status", "999", "Solved")

    assert result.exit_code == 1
    assert "no ticket has the id 999" in result.stderr


@pytest.mark.parametrize(
    ("statuses", "recorded"),
    [(["Solved", "Solved"], 1), (["Open"], 0), (["Closed", "closed", "CLOSED"], 1)],
)
def test_setting_the_current_status_again_records_nothing(
    api: httpx.Client,
    credentials: Credentials,
    database_url: str,
    statuses: list[str],
    recorded: int,
) -> None:
    ticket_id = open_ticket(api, credentials)

    for status in statuses:
        set_status(database_url, ticket_id, status)

    assert len(status_events(database_url, ticket_id)) == recorded


@pytest.mark.parametrize("path", ["/api/help/openTickets", "/api/help/openTicketsV2"])
@pytest.mark.parametrize("content_type", [None, "application/json"])
def test_an_empty_body_asks_for_the_defaults(
    api: httpx.Client, credentials: Credentials, path: str, content_type: str | None
) -> None:
    ticket_id = open_ticket(api, credentials)
    headers = credentials.headers()
    if content_type is not None:
        headers["content-type"] = content_type

    body = api.post(path, content=b"", headers=headers).json()

    assert body["error"] is False
    assert [ticket["id"] for ticket in body["tickets"]] == [ticket_id]


def test_an_empty_body_of_another_content_type_answers_415(
    api: httpx.Client, credentials: Credentials
) -> None:
    headers = {**credentials.headers(), "content-type": "text/plain"}

    response = api.post("/api/help/openTickets", content=b"", headers=headers)

    assert response.status_code == 415


def test_a_body_without_content_type_answers_415(
    api: httpx.Client, credentials: Credentials
) -> None:
    response = api.post(
        "/api/help/openTickets",
        content=b'{"pageNumber": 1}',
        headers=credentials.headers(),
    )

    assert response.status_code == 415
