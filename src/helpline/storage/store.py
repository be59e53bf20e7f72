"""The storage interface the HTTP API uses, and the choice of backend by URL.

``open_store`` gives an ``SqliteTicketStore`` (``storage/sqlite.py``) for an
``sqlite:///`` URL and a ``PostgresTicketStore`` (``storage/postgres.py``) for a
``postgresql://`` one. Both promise the same: a create returns only once its write
is durable, and a failure means nothing of it was stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from helpline.domain.feedback import NewFeedback
from helpline.domain.idempotency import IdempotencyClaim
from helpline.domain.keys import ApiKey
from helpline.domain.ratelimit import RateLimiter
from helpline.domain.tickets import NewTicket
from helpline.storage.engine import PoolSettings, is_postgres
from helpline.storage.outbox import Planner
from helpline.storage.postgres import PostgresTicketStore
from helpline.storage.records import CreateOutcome, OpenTicketsPage, OpenTicketsWindow
from helpline.storage.sqlite import SqliteTicketStore


class TicketStore(Protocol):
    """Durable storage for the API: start it, use it from one event loop, close it.

    Every method that reaches the database raises ``StorageUnavailable`` when it
    cannot, and the writes also ``Overloaded`` when too many are pending.
    """

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Commit pending writes and release the database."""
        ...

    async def find_api_key(self, prefix: str) -> ApiKey | None:
        """The key with this public prefix, revoked or not, or None."""
        ...

    def note_key_used(self, key_id: int, *, now_ms: int) -> None:
        """Remember a key's use; written in the background within a few seconds."""
        ...

    def rate_limiter(self, *, rate: float, burst: int) -> RateLimiter:
        """Token buckets shared by every process serving this database; a ``rate``
        of 0 turns limiting off."""
        ...

    async def create_ticket(
        self,
        ticket: NewTicket,
        *,
        claim: IdempotencyClaim | None,
        warning_msg: str | None,
    ) -> CreateOutcome:
        """Store a ticket durably, or replay the earlier answer for its claim."""
        ...

    async def record_feedback(
        self,
        feedback: NewFeedback,
        *,
        claim: IdempotencyClaim | None,
        warning_msg: str | None,
    ) -> CreateOutcome:
        """Store feedback durably, or replay the earlier answer for its claim."""
        ...

    async def open_tickets_page(
        self, *, organization_id: int, page: int, page_size: int
    ) -> OpenTicketsPage:
        """Page ``page`` (from 1) of the organization's open tickets, newest first."""
        ...

    async def open_tickets_in_window(
        self,
        *,
        organization_id: int,
        start_ms: int | None,
        end_ms: int | None,
        submitter_email: str,
        limit: int,
    ) -> OpenTicketsWindow:
        """The organization's open tickets created in the window (bounds
        inclusive, None open-ended), newest first, at most ``limit``, and
        ``submitter_email``'s likewise (the same list when all listed are theirs)."""
        ...

    def attachment_check(self) -> Callable[[str], bool]:
        """A blocking test of whether any attachment refers to a blob's SHA-256,
        for deciding whether an unneeded upload's file may be removed."""
        ...

    async def ping(self) -> None:
        """Raises ``StorageUnavailable`` unless the database and its schema answer."""
        ...


def open_store(
    url: str,
    *,
    max_pending_writes: int = 10_000,
    pool: PoolSettings | None = None,
    planner: Planner | None = None,
) -> TicketStore:
    """The store for ``url``, not yet started; raises ``ValueError`` for an
    unsupported URL.

    ``planner`` turns a new ticket's event into its outbox messages in the
    ticket's own transaction; without it, the dispatchers fan the event out.
    """
    if is_postgres(url):
        return PostgresTicketStore(
            url,
            max_pending_writes=max_pending_writes,
            pool=pool or PoolSettings(),
            planner=planner,
        )
    return SqliteTicketStore(
        url, max_pending_writes=max_pending_writes, planner=planner
    )
