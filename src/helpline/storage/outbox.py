"""The notification outbox: ticket events waiting to be fanned out, the messages
they become, the webhooks that receive them, and the dispatchers' claims.

A ticket created through the API has its messages planned and inserted in its
own transaction, by the store's writer (``created_messages``),
and its event carries no mark. Every other ticket event is written with
``outbox_pending = 1`` in the transaction of the change itself. A dispatcher then,
in one transaction, reads a batch of those events, inserts the messages a planner
makes of them and clears the mark, so an event becomes its messages exactly once.

Messages are claimed with a lease (and ``FOR UPDATE SKIP LOCKED`` on PostgreSQL),
delivered outside any transaction, and marked sent, retried later or dead. A
dispatcher that dies mid-delivery leaves a lease that runs out, and another
delivers the message again: at least once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from helpline.domain.tickets import NewTicket
from helpline.storage.admin import AdminStore
from helpline.storage.engine import PoolSettings, is_sqlite, make_engine
from helpline.storage.errors import NotFound, StorageUnavailable
from helpline.storage.schema import (
    agents,
    organizations,
    outbox_leases,
    outbox_messages,
    ticket_events,
    ticket_messages,
    tickets,
    webhooks,
)

PENDING = "pending"
SENT = "sent"
DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    organization_id: int
    organization: str
    url: str
    secret: str = field(repr=False)
    events: tuple[str, ...] | None  # None: every event
    created_at_ms: int
    # The secret a rotation replaced, and until when it signs beside ``secret``.
    previous_secret: str | None = field(default=None, repr=False)
    previous_secret_until_ms: int | None = None

    def previous_signs_until(self, now_ms: int) -> int | None:
        """When the secret a rotation replaced stops signing, if it still signs
        at ``now_ms``; None otherwise."""
        until = self.previous_secret_until_ms
        if self.previous_secret is None or until is None or until <= now_ms:
            return None
        return until

    def secrets_at(self, now_ms: int) -> tuple[str, ...]:
        """The secrets that sign a delivery made at ``now_ms``: the current one,
        and during a rotation's overlap the one it replaced."""
        if self.previous_secret is None or self.previous_signs_until(now_ms) is None:
            return (self.secret,)
        return (self.secret, self.previous_secret)


@dataclass(frozen=True, slots=True)
class EventToFanOut:
    """A ticket event with what its messages are made of: the ticket as it is now,
    and for a reply or note, the message's text and author."""

    id: int
    kind: str
    actor: str
    before: Any
    after: Any
    created_at_ms: int
    ticket: dict[str, Any]  # the ticket's columns, collaborators decoded
    organization: str
    message_body: str | None
    message_author: str | None


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message a planner makes of an event; the store adds its id."""

    channel: str  # "email" or "webhook"
    event_type: str
    destination: str
    payload: str
    webhook_id: int | None = None


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    event_id: int
    ticket_id: int
    channel: str
    event_type: str
    webhook_id: int | None
    destination: str
    payload: str
    state: str
    attempts: int
    next_attempt_at_ms: int
    last_error: str | None
    created_at_ms: int
    sent_at_ms: int | None


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What became of one claimed message: sent, to be retried, or dead.

    ``attempts`` is the count the claim left, so a stale dispatcher whose lease was
    taken over cannot overwrite the newer claimant's answer.
    """

    message_id: int
    attempts: int
    sent: bool
    error: str | None = None
    retry_at_ms: int | None = None  # None with an error: the message is dead


@dataclass(frozen=True, slots=True)
class OutboxDepth:
    """What waits: events not yet fanned out and messages not yet sent count as
    pending; ``retrying`` of those have failed at least once."""

    pending: int
    retrying: int
    dead: int
    oldest_pending_at_ms: int | None


Planner = Callable[[EventToFanOut, Sequence[Webhook]], list[NewMessage]]

_MESSAGE_COLUMNS = (
    outbox_messages.c.id,
    outbox_messages.c.event_id,
    outbox_messages.c.ticket_id,
    outbox_messages.c.channel,
    outbox_messages.c.event_type,
    outbox_messages.c.webhook_id,
    outbox_messages.c.destination,
    outbox_messages.c.payload,
    outbox_messages.c.state,
    outbox_messages.c.attempts,
    outbox_messages.c.next_attempt_at_ms,
    outbox_messages.c.last_error,
    outbox_messages.c.created_at_ms,
    outbox_messages.c.sent_at_ms,
)
_TICKET_COLUMNS = (
    tickets.c.id,
    tickets.c.organization_id,
    tickets.c.kind,
    tickets.c.status,
    tickets.c.subject,
    tickets.c.body,
    tickets.c.submitter_email,
    tickets.c.collaborators,
    tickets.c.product_type,
    tickets.c.service_type,
    tickets.c.created_at_ms,
    tickets.c.updated_at_ms,
)

_TICKET_NAMES = tuple(column.name for column in _TICKET_COLUMNS)
_FANNED_OUT = "UPDATE ticket_events SET outbox_pending = NULL WHERE id = {marker}"


class OutboxStore(AdminStore):
    """``AdminStore`` and the outbox: for dispatchers and the operator's commands.

    On SQLite, besides the store's engine, whose transactions take the write
    lock at BEGIN, it keeps one for plain reads, so that asking whether there is
    work never makes the API's writer wait. PostgreSQL's reads take no such lock,
    and share the store's engine.
    """

    def __init__(self, url: str, *, pool: PoolSettings | None = None) -> None:
        super().__init__(url, pool=pool)
        self._reads = make_engine(url, pool=pool) if is_sqlite(url) else self._engine

    def close(self) -> None:
        if self._reads is not self._engine:
            self._reads.dispose()
        super().close()

    def work_waiting(
        self, *, channels: Sequence[str], now_ms: int
    ) -> tuple[bool, bool]:
        """Whether events wait to be fanned out, and whether messages of these
        channels are due: two indexed reads that take no write lock."""
        events = (
            sa.select(ticket_events.c.id)
            .where(ticket_events.c.outbox_pending.is_not(None))
            .limit(1)
        )
        due = sa.select(outbox_messages.c.id).where(*_due(channels, now_ms)).limit(1)
        try:
            with self._reads.connect() as connection:
                has_events = connection.execute(events).first() is not None
                has_due = bool(channels) and connection.execute(due).first() is not None
        except sa.exc.OperationalError as error:
            raise StorageUnavailable(str(error.orig)) from error
        return has_events, has_due

    # Webhooks

    def add_webhook(
        self,
        organization: str,
        *,
        url: str,
        secret: str,
        events: Sequence[str] | None,
        now_ms: int,
    ) -> Webhook:
        """Raises ``NotFound`` for an unknown organization."""
        with self._transaction() as connection:
            organization_id = connection.execute(
                sa.select(organizations.c.id).where(
                    organizations.c.name == organization
                )
            ).scalar_one_or_none()
            if organization_id is None:
                raise NotFound(f"no organization is named {organization!r}")
            result = connection.execute(
                webhooks.insert().values(
                    organization_id=organization_id,
                    url=url,
                    secret=secret,
                    events=sa.null() if events is None else list(events),
                    created_at_ms=now_ms,
                )
            )
            primary_key = result.inserted_primary_key
            assert primary_key is not None  # noqa: S101
            return Webhook(
                id=int(primary_key[0]),
                organization_id=organization_id,
                organization=organization,
                url=url,
                secret=secret,
                events=None if events is None else tuple(events),
                created_at_ms=now_ms,
            )

    def list_webhooks(self, *, organization: str | None = None) -> list[Webhook]:
        query = _webhook_query().order_by(webhooks.c.id)
        if organization is not None:
            query = query.where(organizations.c.name == organization)
        with self._transaction() as connection:
            return [_webhook(row) for row in connection.execute(query)]

    def rotate_webhook_secret(
        self, webhook_id: int, *, secret: str, previous_until_ms: int
    ) -> Webhook:
        """Give the webhook ``secret``; the one it had signs beside it until
        ``previous_until_ms`` (a time already past ends it at once). Raises
        ``NotFound``."""
        with self._transaction() as connection:
            updated = connection.execute(
                webhooks.update()
                .where(webhooks.c.id == webhook_id)
                .values(
                    previous_secret=webhooks.c.secret,
                    previous_secret_until_ms=previous_until_ms,
                    secret=secret,
                )
            ).rowcount
            if not updated:
                raise NotFound(f"no webhook has the id {webhook_id}")
            row = connection.execute(
                _webhook_query().where(webhooks.c.id == webhook_id)
            ).one()
            return _webhook(row)

    def remove_webhook(self, webhook_id: int, *, now_ms: int) -> int:
        """Remove a webhook; its undelivered messages become dead, with the reason.
        Returns how many were. Raises ``NotFound``."""
        with self._transaction() as connection:
            removed = connection.execute(
                webhooks.delete().where(webhooks.c.id == webhook_id)
            ).rowcount
            if not removed:
                raise NotFound(f"no webhook has the id {webhook_id}")
            return int(
                connection.execute(
                    outbox_messages.update()
                    .where(
                        outbox_messages.c.webhook_id == webhook_id,
                        outbox_messages.c.state == PENDING,
                    )
                    .values(
                        state=DEAD,
                        lease_until_ms=None,
                        last_error=f"webhook {webhook_id} was removed",
                        next_attempt_at_ms=now_ms,
                    )
                ).rowcount
            )

    # Fanning events out into messages

    def fan_out(self, planner: Planner, *, limit: int, now_ms: int) -> int:
        """Turn up to ``limit`` pending events into their messages, in one
        transaction; returns how many events it took."""
        with self._transaction() as connection:
            rows = connection.execute(
                sa.select(
                    ticket_events.c.id.label("event_id"),
                    ticket_events.c.kind.label("event_kind"),
                    ticket_events.c.actor,
                    ticket_events.c.before,
                    ticket_events.c.after,
                    ticket_events.c.created_at_ms.label("event_at_ms"),
                    organizations.c.name.label("organization"),
                    *_TICKET_COLUMNS,
                )
                .join(tickets, tickets.c.id == ticket_events.c.ticket_id)
                .join(organizations, organizations.c.id == tickets.c.organization_id)
                .where(ticket_events.c.outbox_pending.is_not(None))
                .order_by(ticket_events.c.id)
                .limit(limit)
                .with_for_update(of=ticket_events, skip_locked=True)
            ).all()
            if not rows:
                return 0
            hooks = _webhooks_of(connection, {row.organization_id for row in rows})
            texts = _message_texts(connection, rows)
            planned: list[tuple[Any, ...]] = []
            for row in rows:
                event = _event_to_fan_out(row, texts)
                for message in planner(event, hooks.get(row.organization_id, ())):
                    planned.append(_message_row(event, message, now_ms))
            # Straight to the driver: these two statements run for every ticket
            # created, and SQLAlchemy's per-row work would cost more than the SQL.
            marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
            if planned:
                connection.exec_driver_sql(insert_messages_sql(marker), planned)
            connection.exec_driver_sql(
                _FANNED_OUT.format(marker=marker), [(row.event_id,) for row in rows]
            )
            return len(rows)

    # Claiming, delivering, recording

    def claim(
        self,
        *,
        channels: Sequence[str],
        limit: int,
        lease_ms: int,
        now_ms: int,
    ) -> list[OutboxMessage]:
        """Lease up to ``limit`` due messages of these channels to the caller, and
        count the attempt; another dispatcher skips them until the lease runs out."""
        if not channels:
            return []
        due = (
            sa.select(outbox_messages.c.id)
            .where(*_due(channels, now_ms))
            .order_by(outbox_messages.c.next_attempt_at_ms, outbox_messages.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._transaction() as connection:
            rows = connection.execute(
                outbox_messages.update()
                .where(outbox_messages.c.id.in_(due.scalar_subquery()))
                .values(
                    lease_until_ms=now_ms + lease_ms,
                    attempts=outbox_messages.c.attempts + 1,
                )
                .returning(*_MESSAGE_COLUMNS)
            ).all()
        return sorted((_message(row) for row in rows), key=lambda m: m.id)

    def record(self, results: Iterable[DeliveryResult], *, now_ms: int) -> None:
        """Write what became of claimed messages, in one transaction."""
        with self._transaction() as connection:
            for result in results:
                if result.sent:
                    values: dict[str, Any] = {
                        "state": SENT,
                        "sent_at_ms": now_ms,
                        "last_error": None,
                    }
                elif result.retry_at_ms is None:
                    values = {"state": DEAD, "last_error": result.error}
                else:
                    values = {
                        "next_attempt_at_ms": result.retry_at_ms,
                        "last_error": result.error,
                    }
                connection.execute(
                    outbox_messages.update()
                    .where(
                        outbox_messages.c.id == result.message_id,
                        outbox_messages.c.state == PENDING,
                        outbox_messages.c.attempts == result.attempts,
                    )
                    .values(lease_until_ms=None, **values)
                )

    def webhooks_by_id(self, webhook_ids: Iterable[int]) -> dict[int, Webhook]:
        """The webhooks with these ids that still exist."""
        query = _webhook_query().where(webhooks.c.id.in_(list(webhook_ids)))
        with self._transaction() as connection:
            return {row.id: _webhook(row) for row in connection.execute(query)}

    # Single claimant (SQLite)

    def hold_lease(self, name: str, holder: str, *, ttl_ms: int, now_ms: int) -> bool:
        """Take or renew the named lease; True while ``holder`` has it."""
        insert = (
            postgresql.insert(outbox_leases)
            if self._engine.dialect.name == "postgresql"
            else sqlite.insert(outbox_leases)
        )
        upsert = insert.values(
            name=name, holder=holder, expires_at_ms=now_ms + ttl_ms
        ).on_conflict_do_update(
            index_elements=[outbox_leases.c.name],
            set_={"holder": holder, "expires_at_ms": now_ms + ttl_ms},
            where=sa.or_(
                outbox_leases.c.holder == holder,
                outbox_leases.c.expires_at_ms < now_ms,
            ),
        )
        with self._transaction() as connection:
            connection.execute(upsert)
            current = connection.execute(
                sa.select(outbox_leases.c.holder).where(outbox_leases.c.name == name)
            ).scalar_one()
        return bool(current == holder)

    def release_lease(self, name: str, holder: str) -> None:
        with self._transaction() as connection:
            connection.execute(
                outbox_leases.delete().where(
                    outbox_leases.c.name == name, outbox_leases.c.holder == holder
                )
            )

    # What operators look at

    def depth(self) -> OutboxDepth:
        with self._transaction() as connection:
            pending, retrying, oldest = connection.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.count(outbox_messages.c.last_error),
                    sa.func.min(outbox_messages.c.next_attempt_at_ms),
                ).where(outbox_messages.c.state == PENDING)
            ).one()
            dead = connection.execute(
                sa.select(sa.func.count()).where(outbox_messages.c.state == DEAD)
            ).scalar_one()
            events = connection.execute(
                sa.select(sa.func.count()).where(
                    ticket_events.c.outbox_pending.is_not(None)
                )
            ).scalar_one()
        return OutboxDepth(
            pending=int(pending) + int(events),
            retrying=int(retrying),
            dead=int(dead),
            oldest_pending_at_ms=None if oldest is None else int(oldest),
        )

    def list_messages(
        self, *, state: str | None = None, ticket_id: int | None = None, limit: int
    ) -> list[OutboxMessage]:
        """Messages, newest first, optionally in one state or of one ticket."""
        query = sa.select(*_MESSAGE_COLUMNS).order_by(outbox_messages.c.id.desc())
        if state is not None:
            query = query.where(outbox_messages.c.state == state)
        if ticket_id is not None:
            query = query.where(outbox_messages.c.ticket_id == ticket_id)
        with self._transaction() as connection:
            return [_message(row) for row in connection.execute(query.limit(limit))]

    def purge_sent(self, *, sent_before_ms: int) -> int:
        """Delete messages sent before this time; returns how many. Pending and
        dead messages stay, whatever their age."""
        with self._transaction() as connection:
            return int(
                connection.execute(
                    outbox_messages.delete().where(
                        outbox_messages.c.state == SENT,
                        outbox_messages.c.sent_at_ms < sent_before_ms,
                    )
                ).rowcount
            )

    def retry(self, message_ids: Sequence[int], *, now_ms: int) -> list[int]:
        """Send these messages again as soon as a dispatcher can, whatever their
        state; returns the ids that exist."""
        with self._transaction() as connection:
            found = connection.execute(
                outbox_messages.update()
                .where(outbox_messages.c.id.in_(list(message_ids)))
                .values(
                    state=PENDING,
                    attempts=0,
                    next_attempt_at_ms=now_ms,
                    lease_until_ms=None,
                    sent_at_ms=None,
                )
                .returning(outbox_messages.c.id)
            ).scalars()
            return sorted(int(message_id) for message_id in found)


def _due(channels: Sequence[str], now_ms: int) -> list[sa.ColumnElement[bool]]:
    """Messages of these channels that are due and that nobody holds."""
    return [
        outbox_messages.c.state == PENDING,
        outbox_messages.c.next_attempt_at_ms <= now_ms,
        outbox_messages.c.channel.in_(channels),
        sa.or_(
            outbox_messages.c.lease_until_ms.is_(None),
            outbox_messages.c.lease_until_ms < now_ms,
        ),
    ]


def _webhook_query() -> sa.Select[Any]:
    return sa.select(
        webhooks.c.id,
        webhooks.c.organization_id,
        organizations.c.name.label("organization"),
        webhooks.c.url,
        webhooks.c.secret,
        webhooks.c.events,
        webhooks.c.created_at_ms,
        webhooks.c.previous_secret,
        webhooks.c.previous_secret_until_ms,
    ).join(organizations, organizations.c.id == webhooks.c.organization_id)


def _webhook(row: sa.Row[Any]) -> Webhook:
    return Webhook(
        id=row.id,
        organization_id=row.organization_id,
        organization=row.organization,
        url=row.url,
        secret=row.secret,
        events=None if row.events is None else tuple(row.events),
        created_at_ms=row.created_at_ms,
        previous_secret=row.previous_secret,
        previous_secret_until_ms=row.previous_secret_until_ms,
    )


def _webhooks_of(
    connection: sa.Connection, organization_ids: set[int]
) -> dict[int, list[Webhook]]:
    found: dict[int, list[Webhook]] = {}
    query = _webhook_query().where(webhooks.c.organization_id.in_(organization_ids))
    for row in connection.execute(query.order_by(webhooks.c.id)):
        found.setdefault(row.organization_id, []).append(_webhook(row))
    return found


def _message_texts(
    connection: sa.Connection, rows: Sequence[Any]
) -> dict[int, tuple[str, str]]:
    """The text and author name of every reply or note among these events."""
    ids = [
        int(row.after["message_id"])
        for row in rows
        if isinstance(row.after, dict) and "message_id" in row.after
    ]
    if not ids:
        return {}
    query = (
        sa.select(ticket_messages.c.id, ticket_messages.c.body, agents.c.name)
        .join(agents, agents.c.id == ticket_messages.c.agent_id)
        .where(ticket_messages.c.id.in_(ids))
    )
    return {row.id: (row.body, row.name) for row in connection.execute(query)}


def _event_to_fan_out(row: Any, texts: dict[int, tuple[str, str]]) -> EventToFanOut:
    body = author = None
    if isinstance(row.after, dict) and "message_id" in row.after:
        body, author = texts.get(int(row.after["message_id"]), (None, None))
    ticket = dict(zip(_TICKET_NAMES, row[-len(_TICKET_NAMES) :], strict=True))
    return EventToFanOut(
        id=row.event_id,
        kind=row.event_kind,
        actor=row.actor,
        before=row.before,
        after=row.after,
        created_at_ms=row.event_at_ms,
        ticket=ticket,
        organization=row.organization,
        message_body=body,
        message_author=author,
    )


# A webhook as ``webhook_from_row`` reads it with the drivers' own SQL.
WEBHOOK_ROW_COLUMNS = "id, url, secret, events, created_at_ms"


def webhook_from_row(
    organization_id: int, organization: str, row: Sequence[Any]
) -> Webhook:
    """A webhook from the ``WEBHOOK_ROW_COLUMNS`` of a driver's row, its events
    still JSON text."""
    webhook_id, url, secret, events, created_at_ms = row
    return Webhook(
        id=webhook_id,
        organization_id=organization_id,
        organization=organization,
        url=url,
        secret=secret,
        events=None if events is None else tuple(json.loads(events)),
        created_at_ms=created_at_ms,
    )


def created_messages(
    planner: Planner,
    ticket: NewTicket,
    ticket_id: int,
    event_id: int,
    *,
    organization: str,
    hooks: Sequence[Webhook],
    after: dict[str, str],
) -> list[tuple[Any, ...]]:
    """The ``_message_row`` values of a new ticket's 'created' event, planned in
    the ticket's own transaction, as ``fan_out`` would plan them later."""
    event = _created_event(
        ticket, ticket_id, event_id, organization=organization, after=after
    )
    return [
        _message_row(event, message, ticket.created_at_ms)
        for message in planner(event, hooks)
    ]


def _created_event(
    ticket: NewTicket,
    ticket_id: int,
    event_id: int,
    *,
    organization: str,
    after: dict[str, str],
) -> EventToFanOut:
    """A new ticket's 'created' event as ``fan_out`` would read it back."""
    return EventToFanOut(
        id=event_id,
        kind="created",
        actor=ticket.submitter_email,
        before=None,
        after=after,
        created_at_ms=ticket.created_at_ms,
        ticket={
            "id": ticket_id,
            "organization_id": ticket.organization_id,
            "kind": ticket.kind.value,
            "status": ticket.status.value,
            "subject": ticket.subject,
            "body": ticket.body,
            "submitter_email": ticket.submitter_email,
            "collaborators": None
            if ticket.collaborators is None
            else list(ticket.collaborators),
            "product_type": ticket.product_type,
            "service_type": ticket.service_type,
            "created_at_ms": ticket.created_at_ms,
            "updated_at_ms": ticket.created_at_ms,
        },
        organization=organization,
        message_body=None,
        message_author=None,
    )


_NEW_MESSAGE_COLUMNS = (
    "event_id",
    "ticket_id",
    "channel",
    "event_type",
    "webhook_id",
    "destination",
    "payload",
    "state",
    "attempts",
    "next_attempt_at_ms",
    "created_at_ms",
)


def insert_messages_sql(marker: str) -> str:
    """The INSERT of ``_message_row``'s values, with parameter markers ``marker``:
    "?" or "%s"."""
    columns = ", ".join(_NEW_MESSAGE_COLUMNS)
    markers = ", ".join([marker] * len(_NEW_MESSAGE_COLUMNS))
    # Column names and parameter markers only: no value is in the text.
    return f"INSERT INTO outbox_messages ({columns}) VALUES ({markers})"  # noqa: S608


def _message_row(
    event: EventToFanOut, message: NewMessage, now_ms: int
) -> tuple[Any, ...]:
    """The values of ``_NEW_MESSAGE_COLUMNS`` for a new, pending message."""
    return (
        event.id,
        event.ticket["id"],
        message.channel,
        message.event_type,
        message.webhook_id,
        message.destination,
        message.payload,
        PENDING,
        0,
        now_ms,
        now_ms,
    )


def _message(row: Any) -> OutboxMessage:
    return OutboxMessage(**row._mapping)
