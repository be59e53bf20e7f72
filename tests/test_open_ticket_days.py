"""Deep pages of openTickets start from their day: ``open_ticket_days`` stays exact
through every write that opens or closes a ticket, and a page found through it is
the plain OFFSET query's page, row for row, on both backends.

The API stamps tickets with the present, so the tickets spread over several days
are written through the store itself, with the creation times chosen here.
"""

from __future__ import annotations

import asyncio
import functools
import random
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from helpline.domain.tickets import NewTicket, TicketStatus
from helpline.storage.admin import AdminStore
from helpline.storage.engine import make_engine, sqlite_file
from helpline.storage.errors import StorageUnavailable
from helpline.storage.listing import DAY_MS, DEEP_OFFSET, day_of_offset
from helpline.storage.migrate import upgrade
from helpline.storage.store import open_store
from helpline.storage.tickets import NewTicketUpkeep, insert_ticket
from helpline.storage.writer import GroupCommitWriter, SqliteCommitter

from .conftest import Credentials, PostgresDatabases, StartServer, key_of
from .test_open_tickets import VALID_RMA
from .test_ticket_with_file import post_form

# 2023-11-14, far from the present, so API-made tickets sort above these.
FIRST_DAY = 1_700_000_000_000 // DAY_MS
# Tickets per day, oldest first: an empty day, a day of one, and days that put
# the DEEP_OFFSET threshold inside a day.
TICKETS_PER_DAY = [420, 0, 1, 560, 330, 610]
# Most open; some created already solved or closed, so days differ from totals.
STATUSES = [TicketStatus.OPEN] * 6 + [
    TicketStatus.PENDING,
    TicketStatus.SOLVED,
    TicketStatus.CLOSED,
]
PAGE_SIZES = [1, 7, 100, 250, 1000]


# Helpers


def scalar(url: str, sql: str, **parameters: object) -> Any:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(sql), parameters).scalar_one()
    finally:
        engine.dispose()


def rows(url: str, sql: str, **parameters: object) -> list[tuple[Any, ...]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            found = connection.execute(sa.text(sql), parameters)
            return [tuple(row) for row in found]
    finally:
        engine.dispose()


def day_counters(url: str) -> dict[tuple[int, int], int]:
    """The rows of ``open_ticket_days``; a day whose tickets were all closed keeps
    a row at 0, which a count of tickets has no row for."""
    found = rows(url, "SELECT organization_id, day, open_tickets FROM open_ticket_days")
    return {(org, day): count for org, day, count in found if count != 0}


def counted_days(url: str) -> dict[tuple[int, int], int]:
    found = rows(
        url,
        "SELECT organization_id, created_at_ms / 86400000, count(*) FROM tickets "
        "WHERE is_open GROUP BY organization_id, created_at_ms / 86400000",
    )
    return {(org, day): count for org, day, count in found}


def plain_pages(url: str, organization_id: int) -> list[tuple[Any, ...]]:
    """Every open ticket as ``OPEN_PAGE_SQL`` orders them: a slice of this list is
    what its LIMIT and OFFSET answer."""
    return rows(
        url,
        "SELECT id, created_at_ms, status, subject FROM tickets "
        "WHERE organization_id = :org AND is_open "
        "ORDER BY created_at_ms DESC, id DESC",
        org=organization_id,
    )


def spread_tickets(
    organization_id: int, api_key_id: int, *, seed: int = 5
) -> list[NewTicket]:
    """Tickets over ``TICKETS_PER_DAY``, many sharing a millisecond, many on a
    day's first or last millisecond, where a day's bound could cut them wrong."""
    chooser = random.Random(seed)  # noqa: S311 - test data, not secrets
    made = []
    for index, count in enumerate(TICKETS_PER_DAY):
        start_ms = (FIRST_DAY + index) * DAY_MS
        for number in range(count):
            offset_ms = chooser.choice(
                [0, DAY_MS - 1, DAY_MS // 2, chooser.randrange(DAY_MS)]
            )
            made.append(
                NewTicket(
                    organization_id=organization_id,
                    api_key_id=api_key_id,
                    submitter_email="ops@acme.example",
                    subject=f"Day {index} ticket {number}",
                    body=None,
                    collaborators=None,
                    serial_numbers=None,
                    product_type=None,
                    service_type=None,
                    console_access_granted=None,
                    console_access_expires_at_ms=None,
                    created_at_ms=start_ms + offset_ms,
                    status=chooser.choice(STATUSES),
                )
            )
    chooser.shuffle(made)  # ids no longer follow creation times
    return made


def store_tickets(url: str, made: list[NewTicket]) -> None:
    """Write tickets through the API's own store, in group-commit batches."""

    async def write() -> None:
        store = open_store(url)
        await store.start()
        try:
            for first in range(0, len(made), 200):
                await asyncio.gather(
                    *(
                        store.create_ticket(ticket, claim=None, warning_msg=None)
                        for ticket in made[first : first + 200]
                    )
                )
        finally:
            await store.close()

    asyncio.run(write())


def store_pages(
    url: str, organization_id: int, asked: list[tuple[int, int]]
) -> list[tuple[int, list[tuple[Any, ...]], bool]]:
    """``(total, tickets, has_next_page)`` of each (page, page size) asked for."""

    async def read() -> list[tuple[int, list[tuple[Any, ...]], bool]]:
        store = open_store(url)
        await store.start()
        try:
            answers = []
            for page, page_size in asked:
                found = await store.open_tickets_page(
                    organization_id=organization_id, page=page, page_size=page_size
                )
                tickets = [tuple(ticket) for ticket in found.tickets]
                answers.append((found.total, tickets, found.has_next_page))
            return answers
        finally:
            await store.close()

    return asyncio.run(read())


def every_page(open_count: int) -> list[tuple[int, int]]:
    """Every page of every size, up to two past the last."""
    return [
        (page, page_size)
        for page_size in PAGE_SIZES
        for page in range(1, open_count // page_size + 3)
    ]


def expected_page(
    ordered: list[tuple[Any, ...]], page: int, page_size: int
) -> tuple[int, list[tuple[Any, ...]], bool]:
    offset = (page - 1) * page_size
    return (
        len(ordered),
        ordered[offset : offset + page_size],
        len(ordered) > offset + page_size,
    )


def assert_pages_match_offset(url: str, organization_id: int) -> None:
    ordered = plain_pages(url, organization_id)
    asked = every_page(len(ordered))
    assert len(ordered) > DEEP_OFFSET + 100  # the test is about deep pages

    answers = store_pages(url, organization_id, asked)

    wrong = [
        (page, page_size)
        for (page, page_size), answer in zip(asked, answers, strict=True)
        if answer != expected_page(ordered, page, page_size)
    ]
    assert wrong == []


def set_statuses(
    admin: AdminStore, ticket_ids: list[int], status: TicketStatus
) -> None:
    for ticket_id in ticket_ids:
        admin.set_status(
            ticket_id, status, actor="test", now_ms=int(time.time() * 1000)
        )


def ids_where(url: str, condition: str, limit: int) -> list[int]:
    found = rows(
        url,
        f"SELECT id FROM tickets WHERE {condition} "  # noqa: S608 - our own text
        "ORDER BY created_at_ms DESC, id DESC LIMIT :limit",
        limit=limit,
    )
    return [int(row[0]) for row in found]


# Deep pages


# Days newest first: 3 tickets on day 9, day 8 all closed, 2 on day 7.
DAYS = [(9, 3), (8, 0), (7, 2)]


@pytest.mark.parametrize(
    ("offset", "found"),
    [
        (0, (9, 0, 3)),
        (2, (9, 0, 3)),
        (3, (7, 3, 2)),
        (4, (7, 3, 2)),
        (5, None),
        (50, None),
    ],
)
def test_offset_falls_in_the_day_holding_that_ticket_never_a_closed_one(
    offset: int, found: tuple[int, int, int] | None
) -> None:
    assert day_of_offset(DAYS, offset) == found


def test_deep_pages_equal_the_offset_query_for_every_page_size(
    database_url: str, credentials: Credentials
) -> None:
    organization_id, api_key_id = key_of(database_url, credentials)
    store_tickets(database_url, spread_tickets(organization_id, api_key_id))

    assert day_counters(database_url) == counted_days(database_url)
    assert_pages_match_offset(database_url, organization_id)


def all_counters(url: str) -> list[Any]:
    """What the counters say next to what the tickets say, for comparing."""
    return [
        day_counters(url),
        counted_days(url),
        rows(url, "SELECT organization_id, open_tickets FROM organization_counters"),
        rows(
            url,
            "SELECT organization_id, count(*) FROM tickets WHERE is_open "
            "GROUP BY organization_id",
        ),
        rows(
            url,
            "SELECT organization_id, status, tickets FROM ticket_status_counts "
            "WHERE tickets > 0 ORDER BY organization_id, status",
        ),
        rows(
            url,
            "SELECT organization_id, status, count(*) FROM tickets "
            "GROUP BY organization_id, status ORDER BY organization_id, status",
        ),
    ]


def test_sqlite_counts_only_the_tickets_its_batch_kept(
    database_url: str, credentials: Credentials, backend: str
) -> None:
    """A job that fails after writing its ticket is rolled back to its savepoint:
    the batch's counters, counted once before COMMIT, leave its ticket out."""
    if backend != "sqlite":
        pytest.skip("the SQLite writer's batch counters")
    path = sqlite_file(database_url)
    assert path is not None
    made = spread_tickets(*key_of(database_url, credentials))[:300]

    def doomed(connection: sqlite3.Connection) -> None:
        insert_ticket(connection, made[0], None, None)
        raise RuntimeError("this job fails after writing its ticket")

    async def write() -> list[Any]:
        writer = GroupCommitWriter(SqliteCommitter(path, hooks=NewTicketUpkeep()))
        await writer.start()
        try:
            jobs: list[Any] = [
                functools.partial(
                    insert_ticket, ticket=ticket, claim=None, warning_msg=None
                )
                for ticket in made
            ]
            jobs[150:150] = [doomed]
            return await asyncio.gather(
                *(writer.submit(job) for job in jobs), return_exceptions=True
            )
        finally:
            await writer.stop()

    outcomes = asyncio.run(write())

    assert sum(isinstance(outcome, StorageUnavailable) for outcome in outcomes) == 1
    assert scalar(database_url, "SELECT count(*) FROM tickets") == len(made)
    days, counted, open_counts, open_counted, statuses, status_counted = all_counters(
        database_url
    )
    assert days == counted
    assert open_counts == open_counted
    assert statuses == status_counted


def test_status_changes_both_ways_keep_days_and_pages_exact(
    database_url: str, credentials: Credentials, admin: AdminStore
) -> None:
    organization_id, api_key_id = key_of(database_url, credentials)
    store_tickets(database_url, spread_tickets(organization_id, api_key_id))
    newest_open = ids_where(database_url, "is_open", 60)
    oldest_closed = ids_where(database_url, "NOT is_open", 20)

    set_statuses(admin, newest_open[:40], TicketStatus.SOLVED)
    set_statuses(admin, oldest_closed, TicketStatus.PENDING)
    set_statuses(admin, newest_open[40:], TicketStatus.CLOSED)
    set_statuses(admin, newest_open[40:], TicketStatus.OPEN)

    assert day_counters(database_url) == counted_days(database_url)
    assert_pages_match_offset(database_url, organization_id)


def test_open_to_open_and_closed_to_closed_leave_the_days_alone(
    database_url: str, credentials: Credentials, admin: AdminStore
) -> None:
    organization_id, api_key_id = key_of(database_url, credentials)
    store_tickets(database_url, spread_tickets(organization_id, api_key_id)[:50])
    before = day_counters(database_url)
    open_one = ids_where(database_url, "status = 'Open'", 1)
    solved_one = ids_where(database_url, "status = 'Solved'", 1)

    set_statuses(admin, open_one, TicketStatus.PENDING)
    set_statuses(admin, solved_one, TicketStatus.CLOSED)

    assert day_counters(database_url) == before == counted_days(database_url)


def test_api_creates_and_pages_agree_with_the_offset_query(
    database_url: str,
    credentials: Credentials,
    admin: AdminStore,
    start_server: StartServer,
) -> None:
    organization_id, api_key_id = key_of(database_url, credentials)
    store_tickets(database_url, spread_tickets(organization_id, api_key_id))
    server = start_server()
    headers = credentials.headers()

    with httpx.Client(base_url=server.url, timeout=10) as api:
        created = [
            api.post("/api/help/ticket", json={"subject": "New"}, headers=headers),
            api.post("/api/help/rma", json=VALID_RMA, headers=headers),
            post_form(api, credentials, file=("notes.txt", b"log lines", "text/plain")),
        ]
        assert [answer.json()["error"] for answer in created] == [False] * 3
        assert day_counters(database_url) == counted_days(database_url)

        ticket_id = created[0].json()["ticketId"]
        set_statuses(admin, [ticket_id], TicketStatus.SOLVED)
        assert day_counters(database_url) == counted_days(database_url)
        set_statuses(admin, [ticket_id], TicketStatus.OPEN)
        assert day_counters(database_url) == counted_days(database_url)

        ordered = plain_pages(database_url, organization_id)
        last = len(ordered) // 100 + 2
        answers = [
            api.post(
                "/api/help/openTickets", json={"pageNumber": page}, headers=headers
            ).json()
            for page in range(1, last + 1)
        ]

    listed = [[ticket["id"] for ticket in answer["tickets"]] for answer in answers]
    expected = [
        [ticket[0] for ticket in expected_page(ordered, page, 100)[1]]
        for page in range(1, last + 1)
    ]
    assert listed == expected
    assert [answer["hasNexPage"] for answer in answers] == [
        expected_page(ordered, page, 100)[2] for page in range(1, last + 1)
    ]


# The migration


@pytest.mark.parametrize("engine_name", ["sqlite", "postgresql"])
def test_upgrade_to_0007_counts_the_open_tickets_of_each_day(
    engine_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if engine_name == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        databases: PostgresDatabases = request.getfixturevalue("postgres")
        url = databases.url_of(databases.create_empty())
    engine = make_engine(url, immediate=True)
    upgrade(engine, revision="0006")
    # Two organizations; a ticket before 1970, whose day rounds down, not to 0.
    created = [
        (1, FIRST_DAY * DAY_MS, True),
        (1, FIRST_DAY * DAY_MS + DAY_MS - 1, True),
        (1, FIRST_DAY * DAY_MS + DAY_MS, True),
        (1, FIRST_DAY * DAY_MS + 5, False),
        (1, -1, True),
        (2, FIRST_DAY * DAY_MS, True),
    ]
    with engine.begin() as connection:
        for organization_id in (1, 2):
            connection.execute(
                sa.text(
                    "INSERT INTO organizations (id, name, created_at_ms) "
                    "VALUES (:id, :name, 0)"
                ),
                {"id": organization_id, "name": f"org{organization_id}"},
            )
            connection.execute(
                sa.text(
                    "INSERT INTO api_keys (id, organization_id, prefix, digest, "
                    "user_email, permissions, created_at_ms) "
                    "VALUES (:id, :id, :prefix, 'd', 'a@b.co', 'tickets:create', 0)"
                ),
                {"id": organization_id, "prefix": f"p{organization_id}"},
            )
        for organization_id, created_at_ms, is_open in created:
            connection.execute(
                sa.text(
                    "INSERT INTO tickets (organization_id, api_key_id, "
                    "submitter_email, kind, status, created_at_ms, updated_at_ms, "
                    "is_open) VALUES (:org, :org, 'a@b.co', 'ticket', :status, "
                    ":at, :at, :is_open)"
                ),
                {
                    "org": organization_id,
                    "status": "Open" if is_open else "Solved",
                    "at": created_at_ms,
                    "is_open": is_open,
                },
            )

    upgrade(engine)
    engine.dispose()

    expected = Counter(
        (organization_id, created_at_ms // DAY_MS)
        for organization_id, created_at_ms, is_open in created
        if is_open
    )
    assert day_counters(url) == dict(expected)
    assert (1, -1) in expected
