"""The open-ticket listings, read on the API's own reader connection.

Both walk ``ix_tickets_open_by_organization`` (or its per-submitter twin) from the
newest entry down, and the total comes from ``organization_counters``, never from
counting rows. A page costs the entries it skips: page N of ``openTickets`` steps
over (N - 1) x 100 index entries (OFFSET), which the vendor's page numbers leave no
cursor to avoid; measured in ``bench/``, page 5,000 of a million tickets is slow.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from helpline.storage.records import OpenTicketsPage, OpenTicketsWindow, TicketSummary

_COLUMNS = "id, created_at_ms, status, subject"
OPEN_PAGE_SQL = f"""
SELECT {_COLUMNS} FROM tickets INDEXED BY ix_tickets_open_by_organization
WHERE organization_id = ? AND is_open = 1
ORDER BY created_at_ms DESC, id DESC
LIMIT ? OFFSET ?
"""  # noqa: S608 - no value is formatted in, only the column list
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
    with _snapshot(connection):
        counted = connection.execute(OPEN_COUNT_SQL, (organization_id,)).fetchone()
        rows = connection.execute(
            OPEN_PAGE_SQL, (organization_id, page_size + 1, (page - 1) * page_size)
        ).fetchall()
    total = counted[0] if counted else 0
    return OpenTicketsPage(total, rows[:page_size], has_next_page=len(rows) > page_size)


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
