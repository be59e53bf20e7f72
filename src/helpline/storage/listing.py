"""The open-ticket listings, read on the API's own reader connection.

Both walk ``ix_tickets_open_by_organization`` (or its per-submitter twin) from the
newest entry down, and the total comes from ``organization_counters``, never from
counting rows. A page costs the entries it skips: page N of ``openTickets`` steps
over (N - 1) x 100 index entries (OFFSET), which the vendor's page numbers leave no
cursor to avoid; measured in ``bench/``, page 5,000 of a million tickets is slow.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from helpline.storage.records import OpenTicketsPage, TicketSummary

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
OPEN_WINDOW_SQL = f"""
SELECT {_COLUMNS} FROM tickets INDEXED BY ix_tickets_open_by_organization
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
    tickets = [TicketSummary(*row) for row in rows[:page_size]]
    total = counted[0] if counted else 0
    return OpenTicketsPage(total, tickets, has_next_page=len(rows) > page_size)


def open_tickets_in_window(
    connection: sqlite3.Connection,
    *,
    organization_id: int,
    start_ms: int | None,
    end_ms: int | None,
    submitter_email: str | None = None,
    limit: int,
) -> list[TicketSummary]:
    """Open tickets created in ``[start_ms, end_ms]``, newest first, at most
    ``limit``; only ``submitter_email``'s when given."""
    window = window_bounds(start_ms, end_ms)
    sql = OPEN_WINDOW_SQL
    parameters: tuple[object, ...] = (organization_id, *window, limit)
    if submitter_email is not None:
        sql = OPEN_WINDOW_OF_SUBMITTER_SQL
        parameters = (organization_id, submitter_email, *window, limit)
    return [TicketSummary(*row) for row in connection.execute(sql, parameters)]


@contextmanager
def _snapshot(connection: sqlite3.Connection) -> Iterator[None]:
    """One read transaction, so that several queries see the same commit."""
    connection.execute("BEGIN")
    try:
        yield
    finally:
        connection.execute("COMMIT")
