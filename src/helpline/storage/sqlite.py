"""The API's store on SQLite: keys to authenticate, tickets to create, listings.

Reads run on the event loop's thread. A key lookup is one indexed read
of a few microseconds in WAL mode, where readers never wait for the writer, so it
needs no cache and a revoked key stops working at once. Every write goes through the
group-commit writer, so a caller's ``await`` returns only once its write is durable.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from helpline.domain.clock import now_ms
from helpline.domain.feedback import NewFeedback
from helpline.domain.idempotency import IdempotencyClaim
from helpline.domain.keys import ApiKey
from helpline.domain.ratelimit import LocalRateLimiter
from helpline.domain.tickets import NewTicket
from helpline.storage.blobs import attached_in
from helpline.storage.engine import sqlite_file
from helpline.storage.errors import StorageUnavailable
from helpline.storage.listing import open_tickets_in_window, open_tickets_page
from helpline.storage.outbox import Planner
from helpline.storage.records import (
    KEY_COLUMNS,
    CreateOutcome,
    OpenTicketsPage,
    OpenTicketsWindow,
    api_key_from_row,
)
from helpline.storage.tickets import (
    NewTicketUpkeep,
    insert_feedback,
    insert_ticket,
    purge_expired_claims,
    record_key_use,
)
from helpline.storage.writer import GroupCommitWriter, SqliteCommitter, connect_sqlite

T = TypeVar("T")
_KEY_BY_PREFIX = f"SELECT {KEY_COLUMNS} WHERE k.prefix = ?"


class SqliteTicketStore:
    """``TicketStore`` on one SQLite file, for the one process that serves it."""

    def __init__(
        self,
        url: str,
        *,
        max_pending_writes: int = 10_000,
        planner: Planner | None = None,
    ) -> None:
        """With a ``planner``, a new ticket's outbox messages are written in its
        own transaction; without one, a dispatcher fans its event out later."""
        path = sqlite_file(url)
        if path is None:
            raise ValueError("Helpline needs an SQLite file, not an in-memory database")
        self._path = path
        self._reader: sqlite3.Connection | None = None
        self._upkeep = NewTicketUpkeep(planner)
        self._writer = GroupCommitWriter(
            SqliteCommitter(path, hooks=self._upkeep),
            max_pending=max_pending_writes,
            on_idle=self._write_bookkeeping,
        )
        self._key_use: dict[int, int] = {}

    async def start(self) -> None:
        self._reader = _connect_for_reading(self._path)
        await self._writer.start()

    async def close(self) -> None:
        """Commit pending writes and release the database."""
        await self._writer.stop()
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    async def find_api_key(self, prefix: str) -> ApiKey | None:
        """The key with this public prefix, revoked or not, or None.

        Raises ``StorageUnavailable`` when the database cannot be read.
        """
        row = self._read_one(_KEY_BY_PREFIX, (prefix,))
        return None if row is None else api_key_from_row(row)

    def note_key_used(self, key_id: int, *, now_ms: int) -> None:
        """Remember a key's use; written in the background within about a second."""
        self._key_use[key_id] = now_ms

    def rate_limiter(self, *, rate: float, burst: int) -> LocalRateLimiter:
        """Buckets in this process: an SQLite database has one serving process."""
        return LocalRateLimiter(rate=rate, burst=burst)

    def attachment_check(self) -> Callable[[str], bool]:
        return attached_in(self._path)

    async def create_ticket(
        self,
        ticket: NewTicket,
        *,
        claim: IdempotencyClaim | None,
        warning_msg: str | None,
    ) -> CreateOutcome:
        """Store a ticket durably, or replay the earlier answer for its claim.

        Raises ``StorageUnavailable`` or ``Overloaded``; then nothing was stored.
        """
        return await self._writer.submit(
            lambda connection: insert_ticket(
                connection, ticket, claim, warning_msg, self._upkeep
            )
        )

    async def record_feedback(
        self,
        feedback: NewFeedback,
        *,
        claim: IdempotencyClaim | None,
        warning_msg: str | None,
    ) -> CreateOutcome:
        """Store feedback durably, or replay the earlier answer for its claim."""
        return await self._writer.submit(
            lambda connection: insert_feedback(connection, feedback, claim, warning_msg)
        )

    async def open_tickets_page(
        self, *, organization_id: int, page: int, page_size: int
    ) -> OpenTicketsPage:
        """Page ``page`` (from 1) of the organization's open tickets, newest first."""
        return self._read(
            lambda reader: open_tickets_page(
                reader, organization_id=organization_id, page=page, page_size=page_size
            )
        )

    async def open_tickets_in_window(
        self,
        *,
        organization_id: int,
        start_ms: int | None,
        end_ms: int | None,
        submitter_email: str,
        limit: int,
    ) -> OpenTicketsWindow:
        """Open tickets created in the window (bounds inclusive, None open-ended):
        the organization's, and the submitter's."""
        return self._read(
            lambda reader: open_tickets_in_window(
                reader,
                organization_id=organization_id,
                start_ms=start_ms,
                end_ms=end_ms,
                submitter_email=submitter_email,
                limit=limit,
            )
        )

    async def ping(self) -> None:
        """Raises ``StorageUnavailable`` unless the database and its schema answer."""
        self._read_one("SELECT count(*) FROM organizations", ())

    def _read_one(self, sql: str, parameters: tuple[object, ...]) -> Any:
        """The first row of a query, as sqlite3 returns it, or None."""
        return self._read(lambda reader: reader.execute(sql, parameters).fetchone())

    def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``query`` on the reader; raises ``StorageUnavailable`` for a failure."""
        if self._reader is None:
            raise StorageUnavailable("the store is not running")
        try:
            return query(self._reader)
        except sqlite3.Error as error:
            raise StorageUnavailable(str(error)) from error

    def _write_bookkeeping(self, connection: sqlite3.Connection) -> None:
        used, self._key_use = self._key_use, {}
        record_key_use(connection, used)
        purge_expired_claims(connection, now_ms=now_ms())


def _connect_for_reading(path: Path) -> sqlite3.Connection:
    connection = connect_sqlite(path)
    connection.execute("PRAGMA query_only=ON")
    return connection
