"""The storage interface the HTTP API uses: keys to authenticate, tickets to create.

Reads go through a small pool of connections on worker threads; every write goes
through the group-commit writer, so a caller's ``await`` returns only once its write
is durable.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

import sqlalchemy as sa

from helpline.domain.idempotency import IdempotencyClaim
from helpline.domain.keys import ApiKey, parse_permissions
from helpline.domain.tickets import NewTicket
from helpline.storage.engine import make_engine, sqlite_file
from helpline.storage.errors import StorageUnavailable
from helpline.storage.records import CreateOutcome
from helpline.storage.schema import api_keys, organizations
from helpline.storage.tickets import (
    insert_ticket,
    purge_expired_claims,
    record_key_use,
)
from helpline.storage.writer import GroupCommitWriter

_KEY_BY_PREFIX = (
    sa.select(
        api_keys.c.id,
        api_keys.c.organization_id,
        organizations.c.name.label("organization_name"),
        api_keys.c.prefix,
        api_keys.c.digest,
        api_keys.c.user_email,
        api_keys.c.permissions,
        api_keys.c.revoked_at_ms,
    )
    .join(organizations, organizations.c.id == api_keys.c.organization_id)
    .where(api_keys.c.prefix == sa.bindparam("prefix"))
)


class TicketStore:
    """Durable storage for the API: start it, use it from one event loop, close it.

    ``key_cache_seconds`` is how long a looked-up key is trusted before it is read
    again; a revoked key therefore stops working within that many seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        key_cache_seconds: float = 5.0,
        max_pending_writes: int = 10_000,
    ) -> None:
        self._readers = make_engine(url)
        path = sqlite_file(url)
        if path is None:
            raise ValueError("Helpline needs an SQLite file, not an in-memory database")
        self._writer = GroupCommitWriter(
            path, max_pending=max_pending_writes, on_idle=self._write_bookkeeping
        )
        self._key_cache_seconds = key_cache_seconds
        self._key_cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._key_use: dict[int, int] = {}

    def start(self) -> None:
        self._writer.start()

    async def close(self) -> None:
        """Commit pending writes and release the database."""
        await self._writer.stop()
        self._readers.dispose()

    async def find_api_key(self, prefix: str) -> ApiKey | None:
        """The key with this public prefix, or None; briefly cached either way."""
        now = time.monotonic()
        cached = self._key_cache.get(prefix)
        if cached is not None and cached[0] > now:
            return cached[1]

        key = await asyncio.to_thread(self._read_key, prefix)
        if self._key_cache_seconds > 0:
            if len(self._key_cache) > 10_000:
                self._key_cache.clear()
            self._key_cache[prefix] = (now + self._key_cache_seconds, key)
        return key

    def note_key_used(self, key_id: int, *, now_ms: int) -> None:
        """Remember a key's use; written in the background within about a second."""
        self._key_use[key_id] = now_ms

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
            lambda connection: insert_ticket(connection, ticket, claim, warning_msg)
        )

    async def ping(self) -> None:
        """Raises ``StorageUnavailable`` unless the database answers a query."""
        await asyncio.to_thread(self._ping)

    def _ping(self) -> None:
        try:
            with self._readers.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as error:
            raise StorageUnavailable(str(error)) from error

    def _read_key(self, prefix: str) -> ApiKey | None:
        try:
            with self._readers.connect() as connection:
                row = connection.execute(_KEY_BY_PREFIX, {"prefix": prefix}).first()
        except sa.exc.SQLAlchemyError as error:
            raise StorageUnavailable(str(error)) from error
        if row is None:
            return None
        return ApiKey(
            id=row.id,
            organization_id=row.organization_id,
            organization_name=row.organization_name,
            prefix=row.prefix,
            digest=row.digest,
            user_email=row.user_email,
            permissions=parse_permissions(row.permissions.split()),
            revoked=row.revoked_at_ms is not None,
        )

    def _write_bookkeeping(self, connection: sqlite3.Connection) -> None:
        used, self._key_use = self._key_use, {}
        record_key_use(connection, used)
        purge_expired_claims(connection, now_ms=int(time.time() * 1000))
