"""The open-ticket listings, read on the API's own reader connection.

Both walk ``ix_tickets_open_by_organization`` (or its per-submitter twin) from the
newest entry down, and the total comes from ``organization_counters``, never from
counting rows.

A page found by OFFSET costs the entries it skips, and the vendor's page numbers
leave no cursor to avoid them. So a deep page of ``openTickets`` starts from the
day its first ticket was created in: ``open_ticket_days`` counts each day's open
tickets (kept exact by every write that opens or closes one), a running sum over
those rows, newest day first, tells which day the offset falls in and how many
open tickets the newer days hold, and the page query then starts at that day's
last millisecond and skips only the rest (PostgreSQL's store takes the same
steps in its own SQL). SQLite's goes one step further: a page nearer the day's
oldest ticket is read up from the day's first millisecond instead. A page costs
about half a day's tickets at most, plus one row per day, whatever its number;
the answer is the plain OFFSET query's, row for row, because the days and the
tickets are read in one snapshot.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from typing import Any, NamedTuple

from helpline.storage.records import OpenTicketsPage, OpenTicketsWindow, TicketSummary

_COLUMNS = "id, created_at_ms, status, subject"
OPEN_PAGE_SQL = f"""
SELECT {_COLUMNS} FROM tickets INDEXED BY ix_tickets_open_by_organization
WHERE organization_id = ? AND is_open = 1
ORDER BY created_at_ms DESC, id DESC
LIMIT ? OFFSET ?
"""  # noqa: S608 - no value is formatted in, only the column list
# The same, for a deep page: from the last millisecond of the day it starts in.
OPEN_PAGE_FROM_SQL = f"""
SELECT {_COLUMNS} FROM tickets INDEXED BY ix_tickets_open_by_organization
WHERE organization_id = ? AND is_open = 1 AND created_at_ms <= ?
ORDER BY created_at_ms DESC, id DESC
LIMIT ? OFFSET ?
"""  # noqa: S608
# Oldest first, from the first millisecond of that day: for a deep page nearer
# the day's oldest ticket than its newest, read upward and turned round.
OPEN_PAGE_UP_FROM_SQL = f"""
SELECT {_COLUMNS} FROM tickets INDEXED BY ix_tickets_open_by_organization
WHERE organization_id = ? AND is_open = 1 AND created_at_ms >= ?
ORDER BY created_at_ms, id
LIMIT ? OFFSET ?
"""  # noqa: S608
# An organization's days, newest first, for ``day_of_offset``. Summed here rather
# than by a window function in SQL: with SQLite in our process, measured on a
# year of days, the walk costs a half to a third of what SQLite's window takes,
# and it stops at the day it finds.
OPEN_DAYS_SQL = """
SELECT day, open_tickets FROM open_ticket_days WHERE organization_id = ?
ORDER BY day DESC
"""
OPEN_COUNT_SQL = (
    "SELECT open_tickets FROM organization_counters WHERE organization_id = ?"
)
# With each ticket's submitter, to pick the caller's own tickets out of the same rows.
OPEN_WINDOW_SQL = f"""
SELECT {_COLUMNS}, submitter_email
FROM tickets INDEXED BY ix_tickets_open_by_organization
WHERE organization_id = ? AND is_open = 1 AND created_at_ms BETWEEN ? AND ?
ORDER BY created_at_ms DESC, id DESC
LIMIT ?
"""  # noqa: S608
OPEN_WINDOW_OF_SUBMITTER_SQL = f"""
SELECT {_COLUMNS} FROM tickets INDEXED BY ix_tickets_open_by_submitter
WHERE organization_id = ? AND submitter_email = ? AND is_open = 1
  AND created_at_ms BETWEEN ? AND ?
ORDER BY created_at_ms DESC, id DESC
LIMIT ?
"""  # noqa: S608
# Bounds for an open-ended window: any millisecond a ticket can carry.
EARLIEST_MS = -(2**63)
LATEST_MS = 2**63 - 1
DAY_MS = 86_400_000
# Below this offset OFFSET alone is cheaper than finding the day first.
DEEP_OFFSET = 1_000
# What one more statement costs, in tickets an OFFSET skips in the same time
# (measured: about 10 µs, at 0.06 µs a ticket).
_STATEMENT_IN_SKIPPED_TICKETS = 150


class DayOfOffset(NamedTuple):
    """The day holding the open ticket at an offset."""

    day: int
    newer: int  # open tickets of the newer days
    open_tickets: int  # of the day itself


def ticket_day(created_at_ms: int) -> int:
    """The ``open_ticket_days`` day of a ticket created at ``created_at_ms``."""
    return created_at_ms // DAY_MS


def last_ms_of_day(day: int) -> int:
    """The latest creation time of a ticket of ``day``, within a time's range."""
    return min((day + 1) * DAY_MS - 1, LATEST_MS)


def first_ms_of_day(day: int) -> int:
    """The earliest creation time of a ticket of ``day``, within a time's range."""
    return max(day * DAY_MS, EARLIEST_MS)


def window_bounds(start_ms: int | None, end_ms: int | None) -> tuple[int, int]:
    """An inclusive window's bounds, an open end made the widest a time can be."""
    return (
        EARLIEST_MS if start_ms is None else start_ms,
        LATEST_MS if end_ms is None else end_ms,
    )


def open_tickets_page(
    connection: sqlite3.Connection,
    *,
    organization_id: int,
    page: int,
    page_size: int,
) -> OpenTicketsPage:
    """Page ``page`` (from 1) of an organization's open tickets, newest first."""
    offset = (page - 1) * page_size
    with _snapshot(connection):
        counted = connection.execute(OPEN_COUNT_SQL, (organization_id,)).fetchone()
        if offset < DEEP_OFFSET:
            rows = connection.execute(
                OPEN_PAGE_SQL, (organization_id, page_size + 1, offset)
            ).fetchall()
        else:
            rows = _deep_page(
                connection,
                organization_id=organization_id,
                limit=page_size + 1,
                offset=offset,
            )
    total = counted[0] if counted else 0
    return OpenTicketsPage(total, rows[:page_size], has_next_page=len(rows) > page_size)


def day_of_offset(days: Iterable[tuple[int, int]], offset: int) -> DayOfOffset | None:
    """The day, of ``(day, open tickets)`` rows newest first, that holds the open
    ticket at ``offset`` (from 0); None when the offset is past every open
    ticket."""
    newer = 0
    for day, open_tickets in days:
        if newer + open_tickets > offset:
            return DayOfOffset(day, newer, open_tickets)
        newer += open_tickets
    return None


def _deep_page(
    connection: sqlite3.Connection, *, organization_id: int, limit: int, offset: int
) -> list[Any]:
    """``OPEN_PAGE_SQL``'s rows, found from the day the offset falls in.

    The rows an OFFSET skips are the cost, so the page is read from whichever
    end of its day is nearer: down from the day's newest ticket, or up from its
    oldest and turned round, then on into the older days if the page ends there.
    """
    with closing(connection.execute(OPEN_DAYS_SQL, (organization_id,))) as days:
        found = day_of_offset(days, offset)
    if found is None:
        return []  # past the last open ticket

    # Read down, the OFFSET skips the day's tickets above the page; read up, those
    # below it, and a page that runs past the day's oldest needs one more statement.
    below_newest = offset - found.newer
    in_day = min(limit, found.open_tickets - below_newest)
    above_oldest = found.open_tickets - below_newest - in_day
    going_on = in_day < limit
    if below_newest <= above_oldest + going_on * _STATEMENT_IN_SKIPPED_TICKETS:
        return connection.execute(
            OPEN_PAGE_FROM_SQL,
            (organization_id, last_ms_of_day(found.day), limit, below_newest),
        ).fetchall()

    first_ms = first_ms_of_day(found.day)
    rows = connection.execute(
        OPEN_PAGE_UP_FROM_SQL, (organization_id, first_ms, in_day, above_oldest)
    ).fetchall()
    rows.reverse()
    if going_on and first_ms > EARLIEST_MS:  # no time is older than the earliest
        rows += connection.execute(
            OPEN_PAGE_FROM_SQL, (organization_id, first_ms - 1, limit - in_day, 0)
        ).fetchall()
    return rows


def open_tickets_in_window(
    connection: sqlite3.Connection,
    *,
    organization_id: int,
    start_ms: int | None,
    end_ms: int | None,
    submitter_email: str,
    limit: int,
) -> OpenTicketsWindow:
    """The organization's open tickets created in ``[start_ms, end_ms]``, newest
    first, at most ``limit``, and ``submitter_email``'s likewise."""
    window = window_bounds(start_ms, end_ms)
    rows = connection.execute(OPEN_WINDOW_SQL, (organization_id, *window, limit))
    tickets, own = split_by_submitter(
        rows.fetchall(), submitter_email=submitter_email, limit=limit
    )
    if own is None:
        own = connection.execute(
            OPEN_WINDOW_OF_SUBMITTER_SQL,
            (organization_id, submitter_email, *window, limit),
        ).fetchall()
    return OpenTicketsWindow(tickets, own)


def split_by_submitter(
    rows: Sequence[Any], *, submitter_email: str, limit: int
) -> tuple[list[TicketSummary], list[TicketSummary] | None]:
    """The tickets of rows read with ``OPEN_WINDOW_SQL`` (at most ``limit``), and
    the submitter's among them: the same list when all are theirs.

    The submitter's are None when the rows may leave some of theirs out, which
    they do only when the organization's list was cut (``limit`` rows) with fewer
    than ``limit`` of theirs in it; then they need a query of their own.
    """
    tickets: list[TicketSummary] = [row[:4] for row in rows]
    own = [
        ticket
        for ticket, row in zip(tickets, rows, strict=True)
        if row[4] == submitter_email
    ]
    if len(own) == len(tickets):
        return tickets, tickets
    return tickets, (own if len(rows) < limit else None)


@contextmanager
def _snapshot(connection: sqlite3.Connection) -> Iterator[None]:
    """One read transaction, so that several queries see the same commit."""
    connection.execute("BEGIN")
    try:
        yield
    finally:
        connection.execute("COMMIT")
