"""The API's store on PostgreSQL, for any number of stateless nodes on one database.

asyncpg on the event loop: measured on this kind of machine it answers about twice
as fast as psycopg's async mode. Writes go through the group-commit writer, one
transaction a batch, so every acknowledged ticket is in a durable commit. A batch's
new tickets, their events and their outbox messages are written with one
statement a table (``PostgresTransaction.finish``): measured here with 32-ticket
batches, a statement per ticket cost the server about three times as much.

What several nodes must agree on, they agree on through the database:

- ticket ids come from the ``tickets`` sequence (``integer``: inside int32);
- an idempotency key is claimed with ``INSERT … ON CONFLICT``, which waits for a
  claim that another node's transaction holds; once that commits, this node
  replays its answer;
- the counters (open tickets per organization and per day, tickets per status)
  are added once a batch, each table in key order, and claims are taken in key
  order, so that two nodes' batches take row locks in one order and cannot
  deadlock each other;
- the rate limit's token buckets are rows of ``rate_limit_buckets``, taken on the
  database's clock.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import asyncpg
import msgspec
import structlog

from helpline.domain.clock import now_ms
from helpline.domain.feedback import NewFeedback
from helpline.domain.idempotency import IDEMPOTENCY_WINDOW_MS, IdempotencyClaim
from helpline.domain.keys import ApiKey
from helpline.domain.ratelimit import retry_after_seconds
from helpline.domain.tickets import NewTicket, TicketStatus
from helpline.storage.engine import PoolSettings, postgres_dsn
from helpline.storage.errors import StorageUnavailable
from helpline.storage.listing import (
    DEEP_OFFSET,
    last_ms_of_day,
    split_by_submitter,
    ticket_day,
    window_bounds,
)
from helpline.storage.outbox import (
    WEBHOOK_ROW_COLUMNS,
    Planner,
    Webhook,
    created_messages,
    webhook_from_row,
)
from helpline.storage.records import (
    KEY_COLUMNS,
    Created,
    CreateOutcome,
    KeyReused,
    OpenTicketsPage,
    OpenTicketsWindow,
    Replayed,
    api_key_from_row,
)
from helpline.storage.tickets import attachment_row, ticket_row
from helpline.storage.writer import GroupCommitWriter, Job, Outcome, not_committed

T = TypeVar("T")
log = structlog.get_logger("helpline.storage")
_encode_json = msgspec.json.encode

# Failures of one job's data (classes 22 and 23) or of its transaction's luck
# (class 40: deadlock, serialization): the batch is worth retrying job by job.
# Anything else (the server gone, a timeout) fails the whole batch at once.
_RETRY_ALONE_CLASSES = ("22", "23", "40")

_KEY_BY_PREFIX = f"SELECT {KEY_COLUMNS} WHERE k.prefix = $1"
# A batch's new tickets and their 'created' events in one statement: a
# statement's own cost (a round trip, parse, plan, executor start) dwarfs a row's,
# and a batch is tens of tickets. Ids come from the tables' own sequences, in the
# batch's order; the rows come back with their position in the arrays.
_INSERT_TICKETS = """
WITH input AS (
    SELECT * FROM unnest(
        $1::integer[], $2::integer[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
        $12::boolean[], $13::bigint[], $14::text[], $15::bigint[], $16::bigint[],
        $17::boolean[], $18::text[], $19::smallint[]
    ) WITH ORDINALITY AS given (
        organization_id, api_key_id, submitter_email, kind, status, subject, body,
        collaborators, serial_numbers, product_type, service_type,
        console_access_granted, console_access_expires_at_ms, warnings,
        created_at_ms, updated_at_ms, is_open, after, outbox_pending, position
    )
), numbered AS (
    SELECT nextval('tickets_id_seq') AS ticket_id,
           nextval('ticket_events_id_seq') AS event_id, input.*
    FROM input
), new_tickets AS (
    INSERT INTO tickets (
        id, organization_id, api_key_id, submitter_email, kind, status, subject,
        body, collaborators, serial_numbers, product_type, service_type,
        console_access_granted, console_access_expires_at_ms, warnings,
        created_at_ms, updated_at_ms, is_open
    )
    SELECT ticket_id, organization_id, api_key_id, submitter_email, kind, status,
           subject, body, collaborators::json, serial_numbers::json, product_type,
           service_type, console_access_granted, console_access_expires_at_ms,
           warnings::json, created_at_ms, updated_at_ms, is_open
    FROM numbered
), created AS (
    INSERT INTO ticket_events (
        id, ticket_id, kind, actor, "before", "after", created_at_ms, outbox_pending
    )
    SELECT event_id, ticket_id, 'created', submitter_email, NULL, after::json,
           created_at_ms, outbox_pending
    FROM numbered
)
SELECT position, ticket_id, event_id FROM numbered
"""
# An organization's name, with each of its webhooks (none: one row of NULLs).
_AUDIENCE = f"""
SELECT o.name, w.*
FROM organizations AS o LEFT JOIN LATERAL (
    SELECT {WEBHOOK_ROW_COLUMNS} FROM webhooks WHERE organization_id = o.id
) AS w ON true
WHERE o.id = $1
ORDER BY w.id
"""  # noqa: S608 - only the column list is formatted in
# A batch's new messages in one statement, as its tickets are.
_MESSAGE_COLUMNS = 11
_INSERT_MESSAGES = """
INSERT INTO outbox_messages (
    event_id, ticket_id, channel, event_type, webhook_id, destination, payload,
    state, attempts, next_attempt_at_ms, created_at_ms
)
SELECT * FROM unnest(
    $1::integer[], $2::integer[], $3::text[], $4::text[], $5::integer[],
    $6::text[], $7::text[], $8::text[], $9::integer[], $10::bigint[], $11::bigint[]
)
"""
_INSERT_RMA = """
INSERT INTO rma_requests (
    ticket_id, contact_name, contact_phone_number, device_name, problem,
    serial_number, street, city, state, postal_code, country
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
"""
_INSERT_ATTACHMENT = """
INSERT INTO attachments (
    ticket_id, file_name, size_bytes, content_type, sha256, created_at_ms
) VALUES ($1, $2, $3, $4, $5, $6)
"""
_INSERT_FEEDBACK = """
INSERT INTO feedback (organization_id, api_key_id, user_email, feedback, created_at_ms)
VALUES ($1, $2, $3, $4, $5)
"""
# A batch's counts in one statement: its open tickets per organization
# ($1, $2), its tickets per status ($3-$5) and its open tickets per day ($6-$8),
# each array in key order. An empty array adds nothing.
_COUNT_NEW_TICKETS = """
WITH open_tickets AS (
    INSERT INTO organization_counters AS counter (organization_id, open_tickets)
    SELECT * FROM unnest($1::integer[], $2::integer[])
    ON CONFLICT (organization_id)
    DO UPDATE SET open_tickets = counter.open_tickets + excluded.open_tickets
), statuses AS (
    INSERT INTO ticket_status_counts AS counter (organization_id, status, tickets)
    SELECT * FROM unnest($3::integer[], $4::text[], $5::integer[])
    ON CONFLICT (organization_id, status)
    DO UPDATE SET tickets = counter.tickets + excluded.tickets
), open_days AS (
    INSERT INTO open_ticket_days AS counter (organization_id, day, open_tickets)
    SELECT * FROM unnest($6::integer[], $7::bigint[], $8::integer[])
    ON CONFLICT (organization_id, day)
    DO UPDATE SET open_tickets = counter.open_tickets + excluded.open_tickets
)
SELECT 1
"""
# Takes the key unless a live claim holds it; waits while another transaction's
# claim on it is uncommitted. An expired claim is taken over.
_TAKE_CLAIM = """
INSERT INTO idempotency_keys AS claim (
    organization_id, key, fingerprint, ticket_id, warning_msg, created_at_ms
) VALUES ($1, $2, $3, NULL, $4, $5)
ON CONFLICT (organization_id, key) DO UPDATE
SET fingerprint = excluded.fingerprint, ticket_id = NULL,
    warning_msg = excluded.warning_msg, created_at_ms = excluded.created_at_ms
WHERE claim.created_at_ms <= $6
RETURNING 1
"""
_FIND_CLAIM = """
SELECT fingerprint, ticket_id, warning_msg FROM idempotency_keys
WHERE organization_id = $1 AND key = $2
"""
_CLAIM_TICKET = """
UPDATE idempotency_keys SET ticket_id = $3 WHERE organization_id = $1 AND key = $2
"""
# SKIP LOCKED: a claim another node is taking over is left for the next purge.
_PURGE_CLAIMS = """
DELETE FROM idempotency_keys WHERE ctid IN (
    SELECT ctid FROM idempotency_keys WHERE created_at_ms <= $1
    LIMIT 10000 FOR UPDATE SKIP LOCKED
)
"""
_TOUCH_KEYS = """
UPDATE api_keys SET last_used_at_ms = used.at_ms
FROM unnest($1::integer[], $2::bigint[]) AS used (id, at_ms)
WHERE api_keys.id = used.id AND api_keys.last_used_at_ms IS DISTINCT FROM used.at_ms
"""
_COLUMNS = "id, created_at_ms, status, subject"
OPEN_PAGE_SQL = f"""
SELECT {_COLUMNS} FROM tickets
WHERE organization_id = $1 AND is_open
ORDER BY created_at_ms DESC, id DESC
LIMIT $2 OFFSET $3
"""  # noqa: S608 - no value is formatted in, only the column list
# A deep page, from the last millisecond of the day it starts in (see listing.py).
OPEN_PAGE_FROM_SQL = f"""
SELECT {_COLUMNS} FROM tickets
WHERE organization_id = $1 AND is_open AND created_at_ms <= $2
ORDER BY created_at_ms DESC, id DESC
LIMIT $3 OFFSET $4
"""  # noqa: S608
# The day the offset falls in and the open tickets of the newer days, as
# listing.day_of_offset finds them, summed on the server: the one day whose newer
# days hold at most the offset and which, with them, holds more. The running sum
# only grows, so no other day (nor a day of 0) qualifies; no row past the end.
OPEN_DAY_SQL = """
SELECT day, through - open_tickets FROM (
    SELECT day, open_tickets,
           sum(open_tickets) OVER (ORDER BY day DESC) AS through
    FROM open_ticket_days WHERE organization_id = $1
) AS days
WHERE through - open_tickets <= $2 AND through > $2
"""
OPEN_COUNT_SQL = (
    "SELECT open_tickets FROM organization_counters WHERE organization_id = $1"
)
# With each ticket's submitter, to pick the caller's own tickets out of the same rows.
OPEN_WINDOW_SQL = f"""
SELECT {_COLUMNS}, submitter_email FROM tickets
WHERE organization_id = $1 AND is_open AND created_at_ms BETWEEN $2 AND $3
ORDER BY created_at_ms DESC, id DESC
LIMIT $4
"""  # noqa: S608
OPEN_WINDOW_OF_SUBMITTER_SQL = f"""
SELECT {_COLUMNS} FROM tickets
WHERE organization_id = $1 AND submitter_email = $5 AND is_open
  AND created_at_ms BETWEEN $2 AND $3
ORDER BY created_at_ms DESC, id DESC
LIMIT $4
"""  # noqa: S608
# A token bucket on the database's clock, so that nodes' clocks need not agree.
# The refill is written out in each SET expression: those see the row as locked,
# after any concurrent update, where a CTE would see the statement's snapshot.
_REFILLED = """least($3::float8, bucket.tokens
    + greatest(0, excluded.refilled_at_ms - bucket.refilled_at_ms)
    * $2::float8 / 1000)"""
_TAKE_TOKEN = f"""
INSERT INTO rate_limit_buckets AS bucket (
    organization_id, tokens, refilled_at_ms, granted
)
SELECT $1, $3::float8 - 1,
       (extract(epoch FROM clock_timestamp()) * 1000)::bigint, true
ON CONFLICT (organization_id) DO UPDATE SET
    tokens = CASE WHEN {_REFILLED} >= 1 THEN {_REFILLED} - 1 ELSE {_REFILLED} END,
    granted = {_REFILLED} >= 1,
    refilled_at_ms = greatest(bucket.refilled_at_ms, excluded.refilled_at_ms)
RETURNING tokens, granted
"""  # noqa: S608 - only our own expression is formatted in

_CONNECTION_LOST = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
)


class Later:
    """A job's result that its transaction's ``finish`` makes known: the
    committer settles it once the batch's rows are written."""

    __slots__ = ("_result",)

    def __init__(self, result: Callable[[], Any]) -> None:
        self._result = result

    def result(self) -> Any:
        return self._result()


@dataclasses.dataclass(slots=True)
class _QueuedTicket:
    ticket: NewTicket
    claim_key: str | None
    # The 'after' of its 'created' event.
    after: dict[str, str]
    ticket_id: int = 0
    event_id: int = 0


class PostgresTransaction:
    """What a write job gets: the batch's connection, and the new tickets,
    counters and outbox messages it adds to, written once for the whole batch by
    ``finish``.

    With a ``planner``, new tickets' outbox messages are planned here, in their
    own transaction; without one, a dispatcher fans their events out later.
    """

    def __init__(
        self, connection: asyncpg.Connection, planner: Planner | None = None
    ) -> None:
        self.connection = connection
        self.planner = planner
        self._tickets: list[_QueuedTicket] = []
        # The queued tickets of the claims taken in this transaction.
        self._claimed: dict[tuple[int, str], _QueuedTicket] = {}
        self._open_tickets: Counter[int] = Counter()
        self._statuses: Counter[tuple[int, str]] = Counter()
        self._open_days: Counter[tuple[int, int]] = Counter()
        self._messages: list[tuple[Any, ...]] = []
        # Each organization's name and webhooks, read once a transaction.
        self._audiences: dict[int, tuple[str, list[Webhook]]] = {}

    def add_ticket(
        self, ticket: NewTicket, claim: IdempotencyClaim | None = None
    ) -> Later:
        """Queue a new ticket (with its event, RMA details, attachment and
        messages) for ``finish``, and the ticket's id for ``claim``, if given.
        The ``Later`` gives the ``Created`` outcome."""
        key = None if claim is None else claim.key
        queued = _QueuedTicket(ticket, key, {"status": ticket.status.value})
        self._tickets.append(queued)
        if key is not None:
            self._claimed[ticket.organization_id, key] = queued
        self._count_new_ticket(
            ticket.organization_id, ticket.status, created_at_ms=ticket.created_at_ms
        )
        return Later(lambda: Created(queued.ticket_id))

    def claimed_ticket(self, organization_id: int, key: str) -> _QueuedTicket | None:
        """The ticket queued in this transaction for the claim on ``key``."""
        return self._claimed.get((organization_id, key))

    async def plan_created(
        self, ticket: NewTicket, ticket_id: int, event_id: int, after: dict[str, str]
    ) -> None:
        """The mails and webhook deliveries of a new ticket's 'created' event."""
        assert self.planner is not None  # noqa: S101
        organization, hooks = await self._audience(ticket.organization_id)
        self._messages += created_messages(
            self.planner,
            ticket,
            ticket_id,
            event_id,
            organization=organization,
            hooks=hooks,
            after=after,
        )

    async def _audience(self, organization_id: int) -> tuple[str, list[Webhook]]:
        found = self._audiences.get(organization_id)
        if found is None:
            rows = await self.connection.fetch(_AUDIENCE, organization_id)
            name = rows[0]["name"]
            hooks = [
                webhook_from_row(organization_id, name, row[1:])
                for row in rows
                if row["id"] is not None
            ]
            found = self._audiences[organization_id] = (name, hooks)
        return found

    def _count_new_ticket(
        self, organization_id: int, status: TicketStatus, *, created_at_ms: int
    ) -> None:
        if status.is_open:
            self._open_tickets[organization_id] += 1
            self._open_days[organization_id, ticket_day(created_at_ms)] += 1
        self._statuses[organization_id, status.value] += 1

    async def finish(self) -> None:
        """Write the queued tickets and what comes with them, this batch's
        messages, and its counts, one row each, in key order."""
        if self._tickets:
            await self._write_tickets()
        if self._messages:
            await self.connection.execute(
                _INSERT_MESSAGES, *_arrays(self._messages, _MESSAGE_COLUMNS)
            )
        if self._statuses:
            await self.connection.execute(
                _COUNT_NEW_TICKETS,
                *_arrays(sorted(self._open_tickets.items()), 2),
                *_arrays(_flat(self._statuses), 3),
                *_arrays(_flat(self._open_days), 3),
            )

    async def _write_tickets(self) -> None:
        queued = self._tickets
        planning = self.planner is not None
        rows = [
            (
                *ticket_row(each.ticket),
                _encode_json(each.after).decode(),
                None if planning else 1,
            )
            for each in queued
        ]
        for position, ticket_id, event_id in await self.connection.fetch(
            _INSERT_TICKETS, *_arrays(rows, len(rows[0]))
        ):
            queued[position - 1].ticket_id = ticket_id
            queued[position - 1].event_id = event_id

        rma_rows, attachment_rows, claim_rows = [], [], []
        for each in queued:
            ticket, ticket_id = each.ticket, each.ticket_id
            if planning:
                await self.plan_created(ticket, ticket_id, each.event_id, each.after)
            if ticket.rma is not None:
                rma_rows.append((ticket_id, *dataclasses.astuple(ticket.rma)))
            if ticket.attachment is not None:
                attachment_rows.append(attachment_row(ticket_id, ticket))
            if each.claim_key is not None:
                claim_rows.append((ticket.organization_id, each.claim_key, ticket_id))
        for statement, batch in (
            (_INSERT_RMA, rma_rows),
            (_INSERT_ATTACHMENT, attachment_rows),
            (_CLAIM_TICKET, claim_rows),
        ):
            if batch:
                await self.connection.executemany(statement, batch)
        self._tickets = []


class PostgresCommitter:
    """Commits a batch in one transaction on a connection from the pool.

    A batch is first tried whole. When a job fails on its data, the transaction is
    rolled back and every job is run again in a transaction of its own, so that
    only the failing one fails. When the server cannot be reached, the batch fails
    at once: the callers answer 503 and retry.
    """

    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        *,
        timeout: float,
        planner: Planner | None = None,
    ) -> None:
        self._pool = pool
        self._timeout = timeout
        self._planner = planner

    async def open(self) -> None:
        """The pool is the store's to open."""

    async def close(self) -> None:
        """The pool is the store's to close."""

    async def commit(self, jobs: Sequence[Job[Any]]) -> list[Outcome]:
        try:
            async with self._pool().acquire(timeout=self._timeout) as connection:
                outcomes = await self._commit_together(connection, jobs)
                if outcomes is None:
                    outcomes = [
                        await self._commit_alone(connection, job) for job in jobs
                    ]
                return outcomes
        except _CONNECTION_LOST as error:
            log.warning("database_unreachable", error=type(error).__name__)
            raise StorageUnavailable("the database is not reachable") from error
        except asyncpg.PostgresError as error:
            log.warning("commit_failed", sqlstate=error.sqlstate)
            raise StorageUnavailable("the write was not committed") from error

    async def _commit_together(
        self, connection: asyncpg.Connection, jobs: Sequence[Job[Any]]
    ) -> list[Outcome] | None:
        """Outcomes of one shared transaction, or None to retry job by job."""
        transaction = connection.transaction()
        await transaction.start()
        try:
            handle = PostgresTransaction(connection, self._planner)
            results = [await job(handle) for job in jobs]
            await handle.finish()
            results = [_settled(result) for result in results]
        except Exception as error:
            await transaction.rollback()
            if not _worth_retrying_alone(error):
                raise
            log.info("batch_retried_job_by_job", error=type(error).__name__)
            return None
        await transaction.commit()
        return [(True, result) for result in results]

    async def _commit_alone(
        self, connection: asyncpg.Connection, job: Job[Any]
    ) -> Outcome:
        try:
            async with connection.transaction():
                handle = PostgresTransaction(connection, self._planner)
                result = await job(handle)
                await handle.finish()
                result = _settled(result)
        except _CONNECTION_LOST as error:
            # The jobs committed before this one stay committed and answered.
            log.warning("database_unreachable", error=type(error).__name__)
            return False, not_committed(error)
        except Exception as error:
            log.exception("write_job_failed")
            return False, not_committed(error)
        return True, result


def _arrays(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows of ``width`` values as ``width`` columns, for ``unnest``."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def _flat(counts: Counter[tuple[Any, Any]]) -> list[tuple[Any, Any, int]]:
    """A counter of two-part keys as (part, part, count) rows in key order."""
    return [(*key, count) for key, count in sorted(counts.items())]


def _settled(result: Any) -> Any:
    return result.result() if isinstance(result, Later) else result


def _worth_retrying_alone(error: Exception) -> bool:
    if isinstance(error, _CONNECTION_LOST):
        return False
    if isinstance(error, asyncpg.PostgresError):
        return str(error.sqlstate or "").startswith(_RETRY_ALONE_CLASSES)
    return True  # a job's own exception: find which one, and keep the others


class PostgresTicketStore:
    """``TicketStore`` on PostgreSQL: a pool for reads, group commit for writes."""

    def __init__(
        self,
        url: str,
        *,
        max_pending_writes: int = 10_000,
        pool: PoolSettings,
        planner: Planner | None = None,
    ) -> None:
        """With a ``planner``, a new ticket's outbox messages are written in its
        own transaction; without one, a dispatcher fans its event out later."""
        self._dsn = postgres_dsn(url)
        self._settings = pool
        self._pool: asyncpg.Pool | None = None
        self._writer = GroupCommitWriter(
            PostgresCommitter(
                self._connections, timeout=pool.connect_timeout, planner=planner
            ),
            max_pending=max_pending_writes,
            on_idle=self._write_bookkeeping,
        )
        self._key_use: dict[int, int] = {}

    async def start(self) -> None:
        timeout_ms = int(self._settings.statement_timeout * 1000)
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=1,
            max_size=max(2, self._settings.size),
            timeout=self._settings.connect_timeout,
            command_timeout=self._settings.statement_timeout + 1,
            server_settings={
                "application_name": "helpline",
                "statement_timeout": str(timeout_ms),
            },
            reset=_keep_session,
        )
        await self._writer.start()

    async def close(self) -> None:
        await self._writer.stop()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def find_api_key(self, prefix: str) -> ApiKey | None:
        row = await self._fetchrow(_KEY_BY_PREFIX, prefix)
        return None if row is None else api_key_from_row(row)

    def note_key_used(self, key_id: int, *, now_ms: int) -> None:
        self._key_use[key_id] = now_ms

    def rate_limiter(self, *, rate: float, burst: int) -> SharedRateLimiter:
        return SharedRateLimiter(self, rate=rate, burst=burst)

    def attachment_check(self) -> Callable[[str], bool]:
        # Another node may be publishing the same content this very moment, and its
        # holds live in its own process: an unneeded file is kept, not risked.
        return _always_attached

    async def create_ticket(
        self,
        ticket: NewTicket,
        *,
        claim: IdempotencyClaim | None,
        warning_msg: str | None,
    ) -> CreateOutcome:
        async def job(transaction: PostgresTransaction) -> CreateOutcome | Later:
            earlier = await _take_claim(
                transaction, ticket, claim, warning_msg=warning_msg
            )
            if earlier is not None:
                return earlier
            return transaction.add_ticket(ticket, claim)

        outcome = await self._writer.submit_async(
            job, order=_claim_order(ticket, claim)
        )
        # The committer settled the Later once the batch's tickets were written.
        return cast(CreateOutcome, outcome)

    async def record_feedback(
        self,
        feedback: NewFeedback,
        *,
        claim: IdempotencyClaim | None,
        warning_msg: str | None,
    ) -> CreateOutcome:
        async def write(connection: asyncpg.Connection) -> None:
            await connection.execute(
                _INSERT_FEEDBACK,
                feedback.organization_id,
                feedback.api_key_id,
                feedback.user_email,
                feedback.feedback,
                feedback.created_at_ms,
            )

        async def job(transaction: PostgresTransaction) -> CreateOutcome | Later:
            earlier = await _take_claim(
                transaction, feedback, claim, warning_msg=warning_msg
            )
            if earlier is not None:
                return earlier
            await write(transaction.connection)
            return Created(None)

        outcome = await self._writer.submit_async(
            job, order=_claim_order(feedback, claim)
        )
        # A key a ticket of this batch claimed is replayed Later, once it is written.
        return cast(CreateOutcome, outcome)

    async def open_tickets_page(
        self, *, organization_id: int, page: int, page_size: int
    ) -> OpenTicketsPage:
        offset = (page - 1) * page_size

        async def read(connection: asyncpg.Connection) -> OpenTicketsPage:
            # One snapshot for the count and the page.
            async with connection.transaction(
                isolation="repeatable_read", readonly=True
            ):
                total = await connection.fetchval(OPEN_COUNT_SQL, organization_id)
                if offset < DEEP_OFFSET:
                    rows = await connection.fetch(
                        OPEN_PAGE_SQL, organization_id, page_size + 1, offset
                    )
                else:
                    rows = await _deep_page(
                        connection,
                        organization_id=organization_id,
                        limit=page_size + 1,
                        offset=offset,
                    )
            tickets = [tuple(row) for row in rows[:page_size]]
            return OpenTicketsPage(
                total or 0, tickets, has_next_page=len(rows) > page_size
            )

        return await self._with_connection(read)

    async def open_tickets_in_window(
        self,
        *,
        organization_id: int,
        start_ms: int | None,
        end_ms: int | None,
        submitter_email: str,
        limit: int,
    ) -> OpenTicketsWindow:
        window = window_bounds(start_ms, end_ms)
        rows = await self._fetch(OPEN_WINDOW_SQL, organization_id, *window, limit)
        tickets, own = split_by_submitter(
            rows, submitter_email=submitter_email, limit=limit
        )
        if own is None:
            own_rows = await self._fetch(
                OPEN_WINDOW_OF_SUBMITTER_SQL,
                organization_id,
                *window,
                limit,
                submitter_email,
            )
            own = [tuple(row) for row in own_rows]
        return OpenTicketsWindow(tickets, own)

    async def ping(self) -> None:
        await self._fetchrow("SELECT count(*) FROM organizations")

    async def take_token(
        self, organization_id: int, *, rate: float, burst: int
    ) -> tuple[float, bool]:
        """Take a token from the organization's shared bucket: what is left and
        whether one was granted."""
        row = await self._fetchrow(_TAKE_TOKEN, organization_id, rate, float(burst))
        assert row is not None  # noqa: S101 - an upsert always returns its row
        return float(row["tokens"]), bool(row["granted"])

    def _connections(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StorageUnavailable("the store is not running")
        return self._pool

    async def _fetchrow(self, sql: str, *arguments: object) -> asyncpg.Record | None:
        return await self._with_connection(
            lambda connection: connection.fetchrow(sql, *arguments)
        )

    async def _fetch(self, sql: str, *arguments: object) -> list[asyncpg.Record]:
        return await self._with_connection(
            lambda connection: connection.fetch(sql, *arguments)
        )

    async def _with_connection(
        self, read: Callable[[asyncpg.Connection], Awaitable[T]]
    ) -> T:
        """Run ``read`` on a pooled connection; raises ``StorageUnavailable``."""
        pool = self._connections()
        try:
            async with pool.acquire(timeout=self._settings.connect_timeout) as conn:
                return await read(conn)
        except (*_CONNECTION_LOST, asyncpg.PostgresError) as error:
            raise StorageUnavailable(f"the database did not answer: {error}") from error

    async def _write_bookkeeping(self, transaction: PostgresTransaction) -> None:
        used, self._key_use = self._key_use, {}
        connection = transaction.connection
        if used:
            ids = sorted(used)
            await connection.execute(_TOUCH_KEYS, ids, [used[key] for key in ids])
        await connection.execute(_PURGE_CLAIMS, now_ms() - IDEMPOTENCY_WINDOW_MS)


class SharedRateLimiter:
    """Token buckets in the database, shared by every node; ``rate`` 0 is off."""

    def __init__(self, store: PostgresTicketStore, *, rate: float, burst: int) -> None:
        self._store = store
        self._rate = rate
        self._burst = max(burst, 1)

    async def acquire(self, organization_id: int) -> int | None:
        if self._rate <= 0:
            return None
        tokens, granted = await self._store.take_token(
            organization_id, rate=self._rate, burst=self._burst
        )
        return None if granted else retry_after_seconds(tokens, self._rate)


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """Nothing to undo when a connection goes back to the pool: the store keeps
    no session state (no LISTEN, no SET, no session advisory lock, no cursor), and
    asyncpg still rolls back a transaction left open. The default reset was one
    more round trip each time a connection was used."""


def _always_attached(_sha256: str) -> bool:
    return True


def _claim_order(
    made: NewTicket | NewFeedback, claim: IdempotencyClaim | None
) -> tuple[Any, ...]:
    # Claims first, in key order; writes without one after them.
    if claim is None:
        return (1,)
    return (0, made.organization_id, claim.key)


async def _take_claim(
    transaction: PostgresTransaction,
    made: NewTicket | NewFeedback,
    claim: IdempotencyClaim | None,
    *,
    warning_msg: str | None,
) -> CreateOutcome | Later | None:
    """Take the claim, if any; or the outcome to replay of the request that holds
    it. A taken claim's ticket id is filled in with the ticket (``add_ticket``).

    A claim taken earlier in this same batch has no ticket id yet: its replay is
    a ``Later``, settled with the id once the batch's tickets are written."""
    if claim is None:
        return None
    connection = transaction.connection
    organization_id, now_ms = made.organization_id, made.created_at_ms
    expired_before = now_ms - IDEMPOTENCY_WINDOW_MS
    taken = await connection.fetchval(
        _TAKE_CLAIM,
        organization_id,
        claim.key,
        claim.fingerprint,
        warning_msg,
        now_ms,
        expired_before,
    )
    if taken is not None:
        return None
    row = await connection.fetchrow(_FIND_CLAIM, organization_id, claim.key)
    fingerprint, ticket_id, first_warning_msg = row

    def replay(ticket_id: int | None) -> CreateOutcome:
        if fingerprint != claim.fingerprint:
            return KeyReused(ticket_id)
        return Replayed(ticket_id, first_warning_msg)

    queued = transaction.claimed_ticket(organization_id, claim.key)
    if queued is None:
        return replay(ticket_id)
    return Later(lambda: replay(queued.ticket_id))


async def _deep_page(
    connection: asyncpg.Connection, *, organization_id: int, limit: int, offset: int
) -> list[asyncpg.Record]:
    """``OPEN_PAGE_SQL``'s rows, found from the day the offset falls in."""
    day = await connection.fetchrow(OPEN_DAY_SQL, organization_id, offset)
    if day is None:
        return []  # past the last open ticket

    start_day, skipped = day
    rows: list[asyncpg.Record] = await connection.fetch(
        OPEN_PAGE_FROM_SQL,
        organization_id,
        last_ms_of_day(start_day),
        limit,
        offset - skipped,
    )
    return rows
