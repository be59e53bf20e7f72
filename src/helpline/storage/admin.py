"""Operator-facing storage: organizations, keys and tickets, for the CLI.

Synchronous, on its own short-lived connections: the CLI runs beside a serving
process and SQLite's busy timeout lets both take turns.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from helpline.domain.keys import IssuedKey, Permission
from helpline.storage.engine import make_engine
from helpline.storage.errors import AlreadyExists, NotFound, StorageUnavailable
from helpline.storage.records import (
    ApiKeyInfo,
    Organization,
    TicketEvent,
    TicketRecord,
)
from helpline.storage.schema import api_keys, organizations, ticket_events, tickets


class AdminStore:
    def __init__(self, url: str) -> None:
        self._engine = make_engine(url, immediate=True)

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        try:
            with self._engine.begin() as connection:
                yield connection
        except sa.exc.IntegrityError as error:
            raise AlreadyExists(str(error.orig)) from error
        except sa.exc.OperationalError as error:
            raise StorageUnavailable(str(error.orig)) from error

    def create_organization(self, name: str, *, now_ms: int) -> Organization:
        """Raises ``AlreadyExists`` when the name is taken."""
        with self._transaction() as connection:
            return _insert_organization(connection, name, now_ms)

    def bootstrap(
        self, *, name: str, user_email: str, key: IssuedKey, now_ms: int
    ) -> bool:
        """Create the first organization and its key, unless any organization exists.

        The check and the inserts share one write-locked transaction, so two
        processes starting at once bootstrap once. Returns whether it did.
        """
        with self._transaction() as connection:
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
        """A ticket with its events; raises ``NotFound``."""
        with self._transaction() as connection:
            row = connection.execute(
                _ticket_query().where(tickets.c.id == ticket_id)
            ).one_or_none()
            if row is None:
                raise NotFound(f"no ticket has the id {ticket_id}")
            events = connection.execute(
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
            history = tuple(TicketEvent(**event._mapping) for event in events)
            return _ticket(row, events=history)

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
    row: sa.Row[tuple[object, ...]], *, events: tuple[TicketEvent, ...] = ()
) -> TicketRecord:
    fields = dict(row._mapping)
    fields.pop("organization_id")
    fields.pop("api_key_id")
    return TicketRecord(**fields, events=events)
