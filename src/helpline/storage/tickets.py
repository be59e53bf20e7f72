"""The write jobs of a new ticket, run by the group-commit writer.

Plain SQL on the writer's ``sqlite3`` connection, kept in step with ``schema.py``:
the API tests read every ticket written here back through ``AdminStore``.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable

import msgspec

from helpline.domain.feedback import NewFeedback
from helpline.domain.idempotency import IDEMPOTENCY_WINDOW_MS, IdempotencyClaim
from helpline.domain.tickets import NewTicket
from helpline.storage.outbox import (
    WEBHOOK_ROW_COLUMNS,
    Planner,
    Webhook,
    created_messages,
    insert_messages_sql,
    webhook_from_row,
)
from helpline.storage.records import Created, CreateOutcome, KeyReused, Replayed

_INSERT_TICKET = """
INSERT INTO tickets (
    organization_id, api_key_id, submitter_email, kind, status, subject, body,
    collaborators, serial_numbers, product_type, service_type,
    console_access_granted, console_access_expires_at_ms, warnings,
    created_at_ms, updated_at_ms, is_open
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# The counters of the tickets a transaction added, after ``_LAST_TICKET`` at its
# start: once a transaction rather than once a ticket, three statements for the
# whole batch instead of three for each of its tickets. Rowids only grow, so the
# rows past the first id are exactly the batch's, and a job rolled back to its
# savepoint leaves none to count. NOT INDEXED keeps SQLite on that rowid range:
# left to itself, it walks a whole index in GROUP BY order instead.
_LAST_TICKET = "SELECT coalesce(max(id), 0) FROM tickets"
_COUNT_NEW_OPEN = """
INSERT INTO organization_counters (organization_id, open_tickets)
SELECT organization_id, count(*) FROM tickets NOT INDEXED
WHERE id > ? AND is_open = 1
GROUP BY organization_id
ON CONFLICT (organization_id) DO UPDATE
SET open_tickets = open_tickets + excluded.open_tickets
"""
# ``ticket_day``, rounded down as Python's // rounds (SQLite's / rounds toward 0).
_DAY_OF_CREATION = (
    "(created_at_ms - CASE WHEN created_at_ms < 0 THEN 86399999 ELSE 0 END) / 86400000"
)
_COUNT_NEW_OPEN_DAYS = f"""
INSERT INTO open_ticket_days (organization_id, day, open_tickets)
SELECT organization_id, {_DAY_OF_CREATION}, count(*) FROM tickets NOT INDEXED
WHERE id > ? AND is_open = 1
GROUP BY 1, 2
ON CONFLICT (organization_id, day) DO UPDATE
SET open_tickets = open_tickets + excluded.open_tickets
"""  # noqa: S608 - only our own expression is formatted in
# And their words, into the search index (migration 0008).
_INDEX_NEW = """
INSERT INTO tickets_search (rowid, subject, body)
SELECT id, subject, body FROM tickets NOT INDEXED WHERE id > ?
"""
_COUNT_NEW_STATUSES = """
INSERT INTO ticket_status_counts (organization_id, status, tickets)
SELECT organization_id, status, count(*) FROM tickets NOT INDEXED WHERE id > ?
GROUP BY organization_id, status
ON CONFLICT (organization_id, status) DO UPDATE
SET tickets = tickets + excluded.tickets
"""
_INSERT_RMA = """
INSERT INTO rma_requests (
    ticket_id, contact_name, contact_phone_number, device_name, problem,
    serial_number, street, city, state, postal_code, country
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_INSERT_ATTACHMENT = """
INSERT INTO attachments (
    ticket_id, file_name, size_bytes, content_type, sha256, created_at_ms
) VALUES (?, ?, ?, ?, ?, ?)
"""
_INSERT_FEEDBACK = """
INSERT INTO feedback (organization_id, api_key_id, user_email, feedback, created_at_ms)
VALUES (?, ?, ?, ?, ?)
"""
# outbox_pending: 1 leaves the event to a dispatcher's fan-out, NULL says that its
# messages were written with it.
_INSERT_EVENT = """
INSERT INTO ticket_events (
    ticket_id, kind, actor, "before", "after", created_at_ms, outbox_pending
) VALUES (?, 'created', ?, NULL, ?, ?, ?)
"""
_ORGANIZATION_NAME = "SELECT name FROM organizations WHERE id = ?"
_WEBHOOKS_OF = f"""
SELECT {WEBHOOK_ROW_COLUMNS} FROM webhooks WHERE organization_id = ? ORDER BY id
"""  # noqa: S608 - only the column list is formatted in
_INSERT_MESSAGES = insert_messages_sql("?")
_INSERT_CLAIM = """
INSERT INTO idempotency_keys (
    organization_id, key, fingerprint, ticket_id, warning_msg, created_at_ms
) VALUES (?, ?, ?, ?, ?, ?)
"""
_FIND_CLAIM = """
SELECT fingerprint, ticket_id, warning_msg, created_at_ms FROM idempotency_keys
WHERE organization_id = ? AND key = ?
"""
_DELETE_CLAIM = "DELETE FROM idempotency_keys WHERE organization_id = ? AND key = ?"
_PURGE_CLAIMS = "DELETE FROM idempotency_keys WHERE created_at_ms <= ?"
_TOUCH_KEY = "UPDATE api_keys SET last_used_at_ms = ? WHERE id = ?"

_encode_json = msgspec.json.encode


def insert_ticket(
    connection: sqlite3.Connection,
    ticket: NewTicket,
    claim: IdempotencyClaim | None,
    warning_msg: str | None,
    upkeep: NewTicketUpkeep | None = None,
) -> CreateOutcome:
    """Store a ticket with its creation event, RMA details and attachment, or
    replay the first answer for its idempotency claim.

    With an ``upkeep`` that plans messages, the event's outbox messages are
    written with it; otherwise the event waits for a dispatcher to fan it out.
    """
    return _once_per_claim(
        connection,
        ticket.organization_id,
        claim,
        warning_msg=warning_msg,
        now_ms=ticket.created_at_ms,
        write=lambda: _write_ticket(connection, ticket, upkeep),
    )


class NewTicketUpkeep:
    """What a write transaction's new tickets need besides their own rows: the
    per-organization counters the listings read instead of counting rows (open
    tickets, open tickets a day, tickets a status), the search index, and, with a
    ``planner``, their outbox messages.

    Told when the transaction begins, it writes each ticket's messages with the
    ticket (``write_messages``), counts the new tickets on the event loop's thread
    just before COMMIT (three small statements), and indexes them on the
    committing thread, where SQLite's work leaves the interpreter free.
    """

    def __init__(self, planner: Planner | None = None) -> None:
        self._planner = planner
        self._last_before = 0
        # Each organization's name and webhooks, read once a transaction.
        self._audiences: dict[int, tuple[str, list[Webhook]]] = {}

    @property
    def plans_messages(self) -> bool:
        return self._planner is not None

    def begun(self, connection: sqlite3.Connection) -> None:
        (self._last_before,) = connection.execute(_LAST_TICKET).fetchone()
        self._audiences.clear()

    def write_messages(
        self,
        connection: sqlite3.Connection,
        ticket: NewTicket,
        ticket_id: int,
        event_id: int,
        after: dict[str, str],
    ) -> None:
        """The mails and webhook deliveries of a new ticket's 'created' event, as
        a dispatcher's fan-out would plan them, without reading the ticket back."""
        assert self._planner is not None  # noqa: S101
        organization, hooks = self._audience(connection, ticket.organization_id)
        rows = created_messages(
            self._planner,
            ticket,
            ticket_id,
            event_id,
            organization=organization,
            hooks=hooks,
            after=after,
        )
        if rows:
            connection.executemany(_INSERT_MESSAGES, rows)

    def _audience(
        self, connection: sqlite3.Connection, organization_id: int
    ) -> tuple[str, list[Webhook]]:
        found = self._audiences.get(organization_id)
        if found is None:
            (name,) = connection.execute(
                _ORGANIZATION_NAME, (organization_id,)
            ).fetchone()
            hooks = [
                webhook_from_row(organization_id, name, row)
                for row in connection.execute(_WEBHOOKS_OF, (organization_id,))
            ]
            found = self._audiences[organization_id] = (name, hooks)
        return found

    def ending(self, connection: sqlite3.Connection) -> None:
        last = self._last_before
        connection.execute(_COUNT_NEW_OPEN, (last,))
        connection.execute(_COUNT_NEW_OPEN_DAYS, (last,))
        connection.execute(_COUNT_NEW_STATUSES, (last,))

    def committing(self, connection: sqlite3.Connection) -> None:
        connection.execute(_INDEX_NEW, (self._last_before,))


def insert_feedback(
    connection: sqlite3.Connection,
    feedback: NewFeedback,
    claim: IdempotencyClaim | None,
    warning_msg: str | None,
) -> CreateOutcome:
    """Store feedback, or replay the first answer for its idempotency claim."""

    def write() -> None:
        connection.execute(
            _INSERT_FEEDBACK,
            (
                feedback.organization_id,
                feedback.api_key_id,
                feedback.user_email,
                feedback.feedback,
                feedback.created_at_ms,
            ),
        )

    return _once_per_claim(
        connection,
        feedback.organization_id,
        claim,
        warning_msg=warning_msg,
        now_ms=feedback.created_at_ms,
        write=write,
    )


def _once_per_claim(
    connection: sqlite3.Connection,
    organization_id: int,
    claim: IdempotencyClaim | None,
    *,
    warning_msg: str | None,
    now_ms: int,
    write: Callable[[], int | None],
) -> CreateOutcome:
    """Run ``write`` (which returns the new ticket's id, if any) unless the claim was
    made before, and take the claim with it.

    Runs inside the writer's transaction, so checking and taking the claim is atomic
    with respect to every other write.
    """
    if claim is not None:
        earlier = _earlier_claim(connection, organization_id, claim, now_ms=now_ms)
        if earlier is not None:
            return earlier

    stored_id = write()

    if claim is not None:
        connection.execute(
            _INSERT_CLAIM,
            (
                organization_id,
                claim.key,
                claim.fingerprint,
                stored_id,
                warning_msg,
                now_ms,
            ),
        )
    return Created(stored_id)


def _write_ticket(
    connection: sqlite3.Connection, ticket: NewTicket, upkeep: NewTicketUpkeep | None
) -> int:
    """The ticket's rows and its outbox messages; its counters and search entry
    are ``NewTicketUpkeep``'s business at the end of the transaction."""
    cursor = connection.execute(_INSERT_TICKET, ticket_row(ticket))
    ticket_id = cursor.lastrowid
    assert ticket_id is not None  # noqa: S101
    after = {"status": ticket.status.value}
    planning = upkeep if upkeep is not None and upkeep.plans_messages else None
    event_id = connection.execute(
        _INSERT_EVENT,
        (
            ticket_id,
            ticket.submitter_email,
            _encode_json(after).decode(),
            ticket.created_at_ms,
            None if planning else 1,
        ),
    ).lastrowid
    assert event_id is not None  # noqa: S101
    if planning is not None:
        planning.write_messages(connection, ticket, ticket_id, event_id, after)
    if ticket.rma is not None:
        connection.execute(_INSERT_RMA, (ticket_id, *dataclasses.astuple(ticket.rma)))
    if ticket.attachment is not None:
        connection.execute(_INSERT_ATTACHMENT, attachment_row(ticket_id, ticket))
    return ticket_id


def attachment_row(ticket_id: int, ticket: NewTicket) -> tuple[object, ...]:
    """The attachments row of a new ticket that has one."""
    file = ticket.attachment
    assert file is not None  # noqa: S101
    return (
        ticket_id,
        file.file_name,
        file.size_bytes,
        file.content_type,
        file.sha256,
        ticket.created_at_ms,
    )


def ticket_row(ticket: NewTicket) -> tuple[object, ...]:
    return (
        ticket.organization_id,
        ticket.api_key_id,
        ticket.submitter_email,
        ticket.kind.value,
        ticket.status.value,
        ticket.subject,
        ticket.body,
        _json_or_null(ticket.collaborators),
        _json_or_null(ticket.serial_numbers),
        ticket.product_type,
        ticket.service_type,
        ticket.console_access_granted,
        ticket.console_access_expires_at_ms,
        _json_or_null(ticket.warnings or None),
        ticket.created_at_ms,
        ticket.created_at_ms,
        ticket.status.is_open,
    )


def _json_or_null(values: tuple[str, ...] | None) -> str | None:
    return None if values is None else _encode_json(values).decode()


def _earlier_claim(
    connection: sqlite3.Connection,
    organization_id: int,
    claim: IdempotencyClaim,
    *,
    now_ms: int,
) -> CreateOutcome | None:
    """The outcome of an earlier request with this key, or None to go ahead."""
    key = (organization_id, claim.key)
    row = connection.execute(_FIND_CLAIM, key).fetchone()
    if row is None:
        return None

    fingerprint, ticket_id, first_warning_msg, created_at_ms = row
    if created_at_ms <= now_ms - IDEMPOTENCY_WINDOW_MS:
        connection.execute(_DELETE_CLAIM, key)  # expired: the key is free again
        return None
    if fingerprint != claim.fingerprint:
        return KeyReused(ticket_id)
    return Replayed(ticket_id, first_warning_msg)


def record_key_use(connection: sqlite3.Connection, used: dict[int, int]) -> None:
    """Write when each key was last used: ``used`` maps key id to a time in ms."""
    connection.executemany(
        _TOUCH_KEY, [(at_ms, key_id) for key_id, at_ms in used.items()]
    )


def purge_expired_claims(connection: sqlite3.Connection, *, now_ms: int) -> None:
    connection.execute(_PURGE_CLAIMS, (now_ms - IDEMPOTENCY_WINDOW_MS,))
