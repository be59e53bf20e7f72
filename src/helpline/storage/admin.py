"""Operator-facing storage: organizations, keys and tickets, for the CLI.

Synchronous, on its own short-lived connections: the CLI runs beside a serving
process and SQLite's busy timeout lets both take turns.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import sqlalchemy as sa

from helpline.domain.keys import IssuedKey, Permission
from helpline.domain.rma import RmaDetails
from helpline.domain.tickets import TicketStatus
from helpline.storage.engine import (
    PoolSettings,
    WriteGate,
    hold_schema_lock,
    is_sqlite,
    make_engine,
    sqlite_file,
)
from helpline.storage.errors import AlreadyExists, NotFound, StorageUnavailable
from helpline.storage.listing import ticket_day
from helpline.storage.records import (
    ApiKeyInfo,
    AttachmentRecord,
    FeedbackRecord,
    Organization,
    StatusChange,
    TicketEvent,
    TicketRecord,
)
from helpline.storage.schema import (
    api_keys,
    attachments,
    feedback,
    organization_counters,
    organizations,
    rma_requests,
    ticket_events,
    ticket_status_counts,
    tickets,
)

_COUNT_OPEN_DAY = sa.text("""
INSERT INTO open_ticket_days AS counter (organization_id, day, open_tickets)
VALUES (:organization_id, :day, :first)
ON CONFLICT (organization_id, day)
DO UPDATE SET open_tickets = counter.open_tickets + :change
""")


class AdminStore:
    def __init__(self, url: str, *, pool: PoolSettings | None = None) -> None:
        self._engine = make_engine(url, immediate=True, pool=pool)
        path = sqlite_file(url) if is_sqlite(url) else None
        self._gate = None if path is None else WriteGate(path)

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        """One transaction, holding SQLite's write lock from BEGIN (after this
        process's turn at it) or PostgreSQL's row locks as taken."""
        try:
            with (
                nullcontext() if self._gate is None else self._gate.turn(),
                self._engine.begin() as connection,
            ):
                yield connection
        except sa.exc.IntegrityError as error:
            raise AlreadyExists(str(error.orig)) from error
        except sa.exc.OperationalError as error:
            raise StorageUnavailable(str(error.orig)) from error

    def create_organization(self, name: str, *, now_ms: int) -> Organization:
        """Raises ``AlreadyExists`` when the name is taken."""
        try:
            with self._transaction() as connection:
                return _insert_organization(connection, name, now_ms)
        except AlreadyExists:
            raise AlreadyExists(
                f"an organization named {name!r} already exists"
            ) from None

    def bootstrap(
        self, *, name: str, user_email: str, key: IssuedKey, now_ms: int
    ) -> bool:
        """Create the first organization and its key, unless any organization exists.

        The check and the inserts share one transaction under the schema lock, so
        nodes starting at once bootstrap once. Returns whether it did.
        """
        with self._transaction() as connection:
            hold_schema_lock(connection)
            existing = connection.execute(
                sa.select(sa.func.count()).select_from(organizations)
            ).scalar_one()
            if existing:
                return False
            organization = _insert_organization(connection, name, now_ms)
            _insert_key(
                connection,
                organization_id=organization.id,
                key=key,
                user_email=user_email,
                label="created on first start",
                permissions=frozenset(Permission),
                now_ms=now_ms,
            )
            return True

    def list_organizations(self) -> list[Organization]:
        key_count = (
            sa.select(sa.func.count())
            .where(api_keys.c.organization_id == organizations.c.id)
            .scalar_subquery()
        )
        ticket_count = (
            sa.select(sa.func.count())
            .where(tickets.c.organization_id == organizations.c.id)
            .scalar_subquery()
        )
        query = sa.select(
            organizations.c.id,
            organizations.c.name,
            organizations.c.created_at_ms,
            key_count.label("api_key_count"),
            ticket_count.label("ticket_count"),
        ).order_by(organizations.c.name)
        with self._transaction() as connection:
            return [Organization(**row._mapping) for row in connection.execute(query)]

    def add_api_key(
        self,
        *,
        organization: str,
        key: IssuedKey,
        user_email: str,
        label: str | None,
        permissions: frozenset[Permission],
        now_ms: int,
    ) -> ApiKeyInfo:
        """Store a key's digest for an organization; raises ``NotFound`` without it."""
        with self._transaction() as connection:
            organization_id = _organization_id(connection, organization)
            _insert_key(
                connection,
                organization_id=organization_id,
                key=key,
                user_email=user_email,
                label=label,
                permissions=permissions,
                now_ms=now_ms,
            )
            return _keys(connection, prefix=key.prefix)[0]

    def list_api_keys(self, *, organization: str | None = None) -> list[ApiKeyInfo]:
        with self._transaction() as connection:
            if organization is not None:
                _organization_id(connection, organization)
            return _keys(connection, organization=organization)

    def revoke_api_key(self, prefix: str, *, now_ms: int) -> ApiKeyInfo:
        """Revoke a key by its public prefix; revoking twice keeps the first time."""
        with self._transaction() as connection:
            found = _keys(connection, prefix=prefix)
            if not found:
                raise NotFound(f"no API key has the prefix {prefix!r}")
            connection.execute(
                api_keys.update()
                .where(api_keys.c.prefix == prefix, api_keys.c.revoked_at_ms.is_(None))
                .values(revoked_at_ms=now_ms)
            )
            return _keys(connection, prefix=prefix)[0]

    def list_tickets(
        self, *, organization: str | None = None, limit: int = 100
    ) -> list[TicketRecord]:
        """The newest tickets first, optionally of one organization."""
        with self._transaction() as connection:
            query = _ticket_query().order_by(tickets.c.id.desc()).limit(limit)
            if organization is not None:
                _organization_id(connection, organization)
                query = query.where(organizations.c.name == organization)
            return [_ticket(row) for row in connection.execute(query)]

    def get_ticket(self, ticket_id: int) -> TicketRecord:
        """A ticket with its history, attachments and RMA details; raises
        ``NotFound``."""
        with self._transaction() as connection:
            row = connection.execute(
                _ticket_query().where(tickets.c.id == ticket_id)
            ).one_or_none()
            if row is None:
                raise NotFound(f"no ticket has the id {ticket_id}")
            return _ticket(
                row,
                events=_events(connection, ticket_id),
                attachments=_attachments(
                    connection, attachments.c.ticket_id == ticket_id
                ),
                rma=_rma(connection, ticket_id),
            )

    def list_attachments(self, ticket_id: int) -> tuple[AttachmentRecord, ...]:
        """A ticket's files in the order they came; raises ``NotFound``."""
        with self._transaction() as connection:
            found = connection.execute(
                sa.select(tickets.c.id).where(tickets.c.id == ticket_id)
            ).one_or_none()
            if found is None:
                raise NotFound(f"no ticket has the id {ticket_id}")
            return _attachments(connection, attachments.c.ticket_id == ticket_id)

    def is_blob_attached(self, sha256: str) -> bool:
        """Whether any attachment refers to the file with this SHA-256."""
        query = sa.select(attachments.c.id).where(attachments.c.sha256 == sha256)
        with self._transaction() as connection:
            return connection.execute(query.limit(1)).first() is not None

    def get_attachment(self, attachment_id: int) -> AttachmentRecord:
        """One file's metadata; raises ``NotFound``."""
        with self._transaction() as connection:
            found = _attachments(connection, attachments.c.id == attachment_id)
            if not found:
                raise NotFound(f"no attachment has the id {attachment_id}")
            return found[0]

    def set_status(
        self, ticket_id: int, status: TicketStatus, *, actor: str, now_ms: int
    ) -> StatusChange:
        """Change a ticket's status and record the change; raises ``NotFound``.

        Setting the status a ticket already has changes and records nothing.
        """
        with self._transaction() as connection:
            found = connection.execute(
                sa.select(
                    tickets.c.status,
                    tickets.c.organization_id,
                    tickets.c.created_at_ms,
                )
                .where(tickets.c.id == ticket_id)
                .with_for_update()
            ).one_or_none()
            if found is None:
                raise NotFound(f"no ticket has the id {ticket_id}")
            before = TicketStatus(found.status)
            if before == status:
                return StatusChange(ticket_id, before.value, status.value)

            connection.execute(
                tickets.update()
                .where(tickets.c.id == ticket_id)
                .values(
                    status=status.value, is_open=status.is_open, updated_at_ms=now_ms
                )
            )
            # The counter tables in the order a server's batch adds to them, so
            # that the two never wait for each other's row locks in a cycle.
            opened = 1 if status.is_open else -1
            flipped = before.is_open != status.is_open
            if flipped:
                _count_open(connection, found.organization_id, opened)
            _count_status(connection, found.organization_id, before, -1)
            _count_status(connection, found.organization_id, status, 1)
            if flipped:
                day = ticket_day(found.created_at_ms)
                _count_open_day(connection, found.organization_id, day, opened)
            connection.execute(
                ticket_events.insert().values(
                    ticket_id=ticket_id,
                    kind="status_changed",
                    actor=actor,
                    before={"status": before.value},
                    after={"status": status.value},
                    created_at_ms=now_ms,
                    outbox_pending=1,
                )
            )
            return StatusChange(ticket_id, before.value, status.value)

    def list_feedback(
        self, *, organization: str | None = None, limit: int = 100
    ) -> list[FeedbackRecord]:
        """Feedback, newest first, optionally of one organization."""
        query = (
            sa.select(
                feedback.c.id,
                organizations.c.name.label("organization"),
                feedback.c.user_email,
                feedback.c.feedback,
                feedback.c.created_at_ms,
            )
            .join(organizations, organizations.c.id == feedback.c.organization_id)
            .order_by(feedback.c.created_at_ms.desc(), feedback.c.id.desc())
            .limit(limit)
        )
        with self._transaction() as connection:
            if organization is not None:
                _organization_id(connection, organization)
                query = query.where(organizations.c.name == organization)
            return [FeedbackRecord(**row._mapping) for row in connection.execute(query)]

    def count_tickets(self) -> int:
        with self._transaction() as connection:
            query = sa.select(sa.func.count()).select_from(tickets)
            return int(connection.execute(query).scalar_one())


def _insert_organization(
    connection: sa.Connection, name: str, now_ms: int
) -> Organization:
    result = connection.execute(
        organizations.insert().values(name=name, created_at_ms=now_ms)
    )
    primary_key = result.inserted_primary_key
    assert primary_key is not None  # noqa: S101
    return Organization(id=int(primary_key[0]), name=name, created_at_ms=now_ms)


def _organization_id(connection: sa.Connection, name: str) -> int:
    found = connection.execute(
        sa.select(organizations.c.id).where(organizations.c.name == name)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no organization is named {name!r}")
    return int(found)


def _insert_key(
    connection: sa.Connection,
    *,
    organization_id: int,
    key: IssuedKey,
    user_email: str,
    label: str | None,
    permissions: frozenset[Permission],
    now_ms: int,
) -> None:
    connection.execute(
        api_keys.insert().values(
            organization_id=organization_id,
            prefix=key.prefix,
            digest=key.digest,
            user_email=user_email,
            label=label,
            permissions=" ".join(sorted(permissions)),
            created_at_ms=now_ms,
        )
    )


def _keys(
    connection: sa.Connection,
    *,
    organization: str | None = None,
    prefix: str | None = None,
) -> list[ApiKeyInfo]:
    query = (
        sa.select(
            api_keys.c.id,
            organizations.c.name.label("organization"),
            api_keys.c.prefix,
            api_keys.c.label,
            api_keys.c.user_email,
            api_keys.c.permissions,
            api_keys.c.created_at_ms,
            api_keys.c.last_used_at_ms,
            api_keys.c.revoked_at_ms,
        )
        .join(organizations, organizations.c.id == api_keys.c.organization_id)
        .order_by(api_keys.c.id)
    )
    if organization is not None:
        query = query.where(organizations.c.name == organization)
    if prefix is not None:
        query = query.where(api_keys.c.prefix == prefix)
    return [
        ApiKeyInfo(
            **{**row._mapping, "permissions": tuple(row.permissions.split())},
        )
        for row in connection.execute(query)
    ]


def _ticket_query() -> sa.Select[tuple[object, ...]]:
    return (
        sa.select(
            tickets,
            organizations.c.name.label("organization"),
            api_keys.c.prefix.label("api_key_prefix"),
        )
        .join(organizations, organizations.c.id == tickets.c.organization_id)
        .join(api_keys, api_keys.c.id == tickets.c.api_key_id)
    )


def _ticket(
    row: sa.Row[tuple[object, ...]],
    *,
    events: tuple[TicketEvent, ...] = (),
    attachments: tuple[AttachmentRecord, ...] = (),
    rma: RmaDetails | None = None,
) -> TicketRecord:
    fields = dict(row._mapping)
    fields.pop("organization_id")
    fields.pop("api_key_id")
    return TicketRecord(**fields, events=events, attachments=attachments, rma=rma)


def _events(connection: sa.Connection, ticket_id: int) -> tuple[TicketEvent, ...]:
    rows = connection.execute(
        sa.select(
            ticket_events.c.kind,
            ticket_events.c.actor,
            ticket_events.c.before,
            ticket_events.c.after,
            ticket_events.c.created_at_ms,
        )
        .where(ticket_events.c.ticket_id == ticket_id)
        .order_by(ticket_events.c.id)
    )
    return tuple(TicketEvent(**event._mapping) for event in rows)


def _attachments(
    connection: sa.Connection, which: sa.ColumnElement[bool]
) -> tuple[AttachmentRecord, ...]:
    rows = connection.execute(
        sa.select(
            attachments.c.id,
            attachments.c.file_name,
            attachments.c.size_bytes,
            attachments.c.content_type,
            attachments.c.sha256,
            attachments.c.created_at_ms,
        )
        .where(which)
        .order_by(attachments.c.id)
    )
    return tuple(AttachmentRecord(**attachment._mapping) for attachment in rows)


def _rma(connection: sa.Connection, ticket_id: int) -> RmaDetails | None:
    row = connection.execute(
        sa.select(rma_requests).where(rma_requests.c.ticket_id == ticket_id)
    ).one_or_none()
    if row is None:
        return None
    fields = dict(row._mapping)
    fields.pop("ticket_id")
    return RmaDetails(**fields)


def _count_open(connection: sa.Connection, organization_id: int, change: int) -> None:
    _add_to_count(
        connection,
        organization_counters.c.open_tickets,
        {"organization_id": organization_id},
        change,
    )


def _count_open_day(
    connection: sa.Connection, organization_id: int, day: int, change: int
) -> None:
    # An upsert, not _add_to_count's update-then-insert: a server may be creating
    # this day's first ticket on PostgreSQL at the same moment.
    connection.execute(
        _COUNT_OPEN_DAY,
        {
            "organization_id": organization_id,
            "day": day,
            "first": max(change, 0),
            "change": change,
        },
    )


def _count_status(
    connection: sa.Connection, organization_id: int, status: TicketStatus, change: int
) -> None:
    _add_to_count(
        connection,
        ticket_status_counts.c.tickets,
        {"organization_id": organization_id, "status": status.value},
        change,
    )


def _add_to_count(
    connection: sa.Connection,
    count: sa.Column[int],
    key: dict[str, object],
    change: int,
) -> None:
    """Add ``change`` to the counter row ``key`` of ``count``'s table, creating
    the row (never below zero) when there is none."""
    table = count.table
    where = [table.c[name] == value for name, value in key.items()]
    updated = connection.execute(
        table.update().where(*where).values({count.name: count + change})
    )
    if updated.rowcount == 0:
        connection.execute(table.insert().values({**key, count.name: max(change, 0)}))
