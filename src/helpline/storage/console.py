"""Storage for the agent console: agents and sessions, the queue, a ticket's page,
and the actions agents take, each recorded in the ticket's timeline.

Synchronous SQLAlchemy Core on both backends, like the operator's commands; the
console calls it from worker threads. The queue reads one index range newest
first, continuing from a cursor (keyset pagination), so a page costs the same on
page 1 and page 10,000; counts per status come from ``ticket_status_counts``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from helpline.domain.agents import (
    LOGIN_FAILURES_ALLOWED,
    LOGIN_WINDOW_MS,
    SESSION_IDLE_MS,
    SESSION_LIFETIME_MS,
    Agent,
)
from helpline.domain.tickets import TicketStatus
from helpline.storage.admin import AdminStore
from helpline.storage.errors import AlreadyExists, NotFound
from helpline.storage.records import AttachmentRecord, TicketRecord
from helpline.storage.schema import (
    agents,
    console_sessions,
    login_failures,
    organizations,
    outbox_messages,
    ticket_events,
    ticket_messages,
    ticket_status_counts,
    tickets,
)

QUEUE_PAGE_SIZE = 50
_SEARCH_WORDS = 8
# A session's last-seen time is written at most this often.
_TOUCH_EVERY_MS = 60_000


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """Which tickets the queue shows; None (or False) leaves a filter off.

    ``console_access`` True shows tickets whose grant is in force (granted, not
    revoked, not expired), False those without one.
    """

    status: str | None = None
    organization: str | None = None
    kind: str | None = None
    product_type: str | None = None
    service_type: str | None = None
    assignee_id: int | None = None
    unassigned: bool = False
    console_access: bool | None = None
    search: str | None = None


@dataclass(frozen=True, slots=True)
class QueueItem:
    id: int
    organization: str
    kind: str
    status: str
    subject: str | None
    submitter_email: str
    product_type: str | None
    service_type: str | None
    assignee: str | None
    console_access: bool
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class QueuePage:
    """A page of the queue; ``next_cursor`` continues it, None at the end."""

    items: list[QueueItem]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class TicketMessage:
    id: int
    kind: str  # "reply" or "note"
    author: str
    body: str
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class ConsoleTicket:
    """A ticket as its page shows it."""

    record: TicketRecord
    assignee: Agent | None
    messages: tuple[TicketMessage, ...]
    # The ticket's mails in the outbox, by state: "pending", "sent", "dead".
    mails: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def console_access_active(self, now_ms: int) -> bool:
        return _grant_active(self.record, now_ms)


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    agent: Agent
    csrf_token: str
    expires_at_ms: int


class ConsoleStore(AdminStore):
    """``AdminStore`` and what the console adds to it."""

    # Agents

    def create_agent(
        self, *, email: str, name: str, password_hash: str, now_ms: int
    ) -> Agent:
        """Raises ``AlreadyExists`` when an agent has the email."""
        try:
            with self._transaction() as connection:
                result = connection.execute(
                    agents.insert().values(
                        email=email,
                        name=name,
                        password_hash=password_hash,
                        created_at_ms=now_ms,
                    )
                )
                primary_key = result.inserted_primary_key
                assert primary_key is not None  # noqa: S101
                return Agent(int(primary_key[0]), email, name, False, now_ms)
        except AlreadyExists:
            raise AlreadyExists(f"an agent with the email {email} exists") from None

    def list_agents(self) -> list[Agent]:
        with self._transaction() as connection:
            rows = connection.execute(sa.select(agents).order_by(agents.c.email))
            return [_agent(row) for row in rows]

    def disable_agent(self, email: str, *, now_ms: int) -> Agent:
        """Disable an agent and end their sessions; raises ``NotFound``."""
        with self._transaction() as connection:
            found = connection.execute(
                sa.select(agents).where(agents.c.email == email)
            ).one_or_none()
            if found is None:
                raise NotFound(f"no agent has the email {email}")
            connection.execute(
                agents.update()
                .where(agents.c.id == found.id, agents.c.disabled_at_ms.is_(None))
                .values(disabled_at_ms=now_ms)
            )
            connection.execute(
                console_sessions.delete().where(console_sessions.c.agent_id == found.id)
            )
            return Agent(found.id, found.email, found.name, True, found.created_at_ms)

    def agent_credentials(self, email: str) -> tuple[Agent, str] | None:
        """An agent and their password hash, disabled or not, or None."""
        with self._transaction() as connection:
            row = connection.execute(
                sa.select(agents).where(agents.c.email == email)
            ).one_or_none()
            return None if row is None else (_agent(row), row.password_hash)

    # Sessions and sign-in throttling

    def create_session(
        self, *, agent_id: int, digest: str, csrf_token: str, now_ms: int
    ) -> None:
        with self._transaction() as connection:
            connection.execute(
                console_sessions.insert().values(
                    digest=digest,
                    agent_id=agent_id,
                    csrf_token=csrf_token,
                    created_at_ms=now_ms,
                    last_seen_at_ms=now_ms,
                    expires_at_ms=now_ms + SESSION_LIFETIME_MS,
                )
            )

    def session(self, digest: str, *, now_ms: int) -> ConsoleSession | None:
        """The live session with this token digest, or None when there is none,
        it has expired or idled out, or its agent is disabled."""
        query = (
            sa.select(console_sessions, agents)
            .join(agents, agents.c.id == console_sessions.c.agent_id)
            .where(console_sessions.c.digest == digest)
        )
        with self._transaction() as connection:
            row = connection.execute(query).one_or_none()
            if row is None:
                return None
            idle = now_ms - row.last_seen_at_ms > SESSION_IDLE_MS
            if row.expires_at_ms <= now_ms or idle or row.disabled_at_ms is not None:
                connection.execute(
                    console_sessions.delete().where(console_sessions.c.digest == digest)
                )
                return None
            if now_ms - row.last_seen_at_ms > _TOUCH_EVERY_MS:
                connection.execute(
                    console_sessions.update()
                    .where(console_sessions.c.digest == digest)
                    .values(last_seen_at_ms=now_ms)
                )
            agent = Agent(row.agent_id, row.email, row.name, False, row.created_at_ms)
            return ConsoleSession(agent, row.csrf_token, row.expires_at_ms)

    def end_session(self, digest: str) -> None:
        with self._transaction() as connection:
            connection.execute(
                console_sessions.delete().where(console_sessions.c.digest == digest)
            )

    def login_wait_ms(self, subjects: list[str], *, now_ms: int) -> int:
        """How long sign-in stays refused for any of ``subjects`` (an email, a
        client address); 0 when it is allowed."""
        since = now_ms - LOGIN_WINDOW_MS
        query = (
            sa.select(
                login_failures.c.subject,
                sa.func.count(),
                sa.func.min(login_failures.c.failed_at_ms),
            )
            .where(
                login_failures.c.subject.in_(subjects),
                login_failures.c.failed_at_ms > since,
            )
            .group_by(login_failures.c.subject)
        )
        with self._transaction() as connection:
            rows = connection.execute(query).all()
        waits = [
            oldest + LOGIN_WINDOW_MS - now_ms
            for _, failures, oldest in rows
            if failures >= LOGIN_FAILURES_ALLOWED
        ]
        return int(max([0, *waits]))

    def note_login_failure(self, subjects: list[str], *, now_ms: int) -> None:
        with self._transaction() as connection:
            connection.execute(
                login_failures.delete().where(
                    login_failures.c.failed_at_ms <= now_ms - LOGIN_WINDOW_MS
                )
            )
            connection.execute(
                login_failures.insert(),
                [{"subject": subject, "failed_at_ms": now_ms} for subject in subjects],
            )

    def clear_login_failures(self, subjects: list[str]) -> None:
        with self._transaction() as connection:
            connection.execute(
                login_failures.delete().where(login_failures.c.subject.in_(subjects))
            )

    # The queue

    def queue(
        self,
        which: QueueFilter,
        *,
        now_ms: int,
        after: str | None = None,
        limit: int = QUEUE_PAGE_SIZE,
    ) -> QueuePage:
        """Tickets newest first, ``limit`` a page, continuing after the cursor
        ``after``; raises ``ValueError`` for a cursor this store did not make."""
        query = _queue_query(which, now_ms=now_ms)
        if after is not None:
            created_at_ms, ticket_id = _parse_cursor(after)
            query = query.where(
                sa.tuple_(tickets.c.created_at_ms, tickets.c.id)
                < sa.tuple_(created_at_ms, ticket_id)
            )
        with self._transaction() as connection:
            if which.search:
                query = _searching(query, which.search, connection.dialect.name)
            rows = connection.execute(query.limit(limit + 1)).all()
        items = [_queue_item(row, now_ms) for row in rows[:limit]]
        more = len(rows) > limit
        cursor = f"{items[-1].created_at_ms}.{items[-1].id}" if more else None
        return QueuePage(items, cursor)

    def status_counts(self, *, organization: str | None = None) -> dict[str, int]:
        """Tickets per status, of every organization or of one."""
        query = sa.select(
            ticket_status_counts.c.status, sa.func.sum(ticket_status_counts.c.tickets)
        ).group_by(ticket_status_counts.c.status)
        if organization is not None:
            query = query.join(
                organizations,
                organizations.c.id == ticket_status_counts.c.organization_id,
            ).where(organizations.c.name == organization)
        with self._transaction() as connection:
            counted = {
                status: int(total) for status, total in connection.execute(query)
            }
        return {status.value: counted.get(status.value, 0) for status in TicketStatus}

    def organization_names(self) -> list[str]:
        with self._transaction() as connection:
            query = sa.select(organizations.c.name).order_by(organizations.c.name)
            return list(connection.execute(query).scalars())

    # A ticket and the actions on it

    def console_ticket(self, ticket_id: int) -> ConsoleTicket:
        """A ticket with its assignee and messages; raises ``NotFound``."""
        record = self.get_ticket(ticket_id)
        with self._transaction() as connection:
            assignee = None
            if record.assignee_agent_id is not None:
                row = connection.execute(
                    sa.select(agents).where(agents.c.id == record.assignee_agent_id)
                ).one()
                assignee = _agent(row)
            messages = connection.execute(
                sa.select(
                    ticket_messages.c.id,
                    ticket_messages.c.kind,
                    agents.c.email.label("author"),
                    ticket_messages.c.body,
                    ticket_messages.c.created_at_ms,
                )
                .join(agents, agents.c.id == ticket_messages.c.agent_id)
                .where(ticket_messages.c.ticket_id == ticket_id)
                .order_by(ticket_messages.c.id)
            )
            mails = connection.execute(
                sa.select(outbox_messages.c.state, sa.func.count())
                .where(
                    outbox_messages.c.ticket_id == ticket_id,
                    outbox_messages.c.channel == "email",
                )
                .group_by(outbox_messages.c.state)
            )
            return ConsoleTicket(
                record,
                assignee,
                tuple(TicketMessage(**m._mapping) for m in messages),
                {str(state): int(count) for state, count in mails},
            )

    def assign(
        self, ticket_id: int, agent_id: int | None, *, by: Agent, now_ms: int
    ) -> bool:
        """Assign a ticket to an agent (None: to nobody); returns whether anything
        changed. Raises ``NotFound`` for an unknown ticket or agent, and
        ``ValueError`` for a disabled agent."""
        with self._transaction() as connection:
            current = _locked_ticket(connection, ticket_id)
            if current.assignee_agent_id == agent_id:
                return False
            after = None if agent_id is None else _assignable(connection, agent_id)
            before = None
            if current.assignee_agent_id is not None:
                before = connection.execute(
                    sa.select(agents.c.email).where(
                        agents.c.id == current.assignee_agent_id
                    )
                ).scalar_one()
            connection.execute(
                tickets.update()
                .where(tickets.c.id == ticket_id)
                .values(assignee_agent_id=agent_id, updated_at_ms=now_ms)
            )
            _record(
                connection,
                ticket_id,
                "assigned",
                by,
                before={"assignee": before},
                after={"assignee": after},
                now_ms=now_ms,
            )
            return True

    def add_message(
        self, ticket_id: int, *, kind: str, body: str, by: Agent, now_ms: int
    ) -> int:
        """Store a public reply (``kind`` "reply") or an internal note ("note");
        returns its id. Raises ``NotFound``."""
        event = {"reply": "replied", "note": "note_added"}[kind]
        with self._transaction() as connection:
            _locked_ticket(connection, ticket_id)
            result = connection.execute(
                ticket_messages.insert().values(
                    ticket_id=ticket_id,
                    agent_id=by.id,
                    kind=kind,
                    body=body,
                    created_at_ms=now_ms,
                )
            )
            primary_key = result.inserted_primary_key
            assert primary_key is not None  # noqa: S101
            message_id = int(primary_key[0])
            connection.execute(
                tickets.update()
                .where(tickets.c.id == ticket_id)
                .values(updated_at_ms=now_ms)
            )
            _record(
                connection,
                ticket_id,
                event,
                by,
                before=None,
                after={"message_id": message_id},
                now_ms=now_ms,
            )
            return message_id

    def revoke_console_access(self, ticket_id: int, *, by: Agent, now_ms: int) -> bool:
        """End a ticket's console-access grant; returns whether one was in force.
        Raises ``NotFound``."""
        with self._transaction() as connection:
            current = _locked_ticket(connection, ticket_id)
            if not _grant_active(current, now_ms):
                return False
            connection.execute(
                tickets.update()
                .where(tickets.c.id == ticket_id)
                .values(console_access_revoked_at_ms=now_ms, updated_at_ms=now_ms)
            )
            _record(
                connection,
                ticket_id,
                "console_access_revoked",
                by,
                before={
                    "console_access": "granted",
                    "expires_at_ms": current.console_access_expires_at_ms,
                },
                after={"console_access": "revoked"},
                now_ms=now_ms,
            )
            return True

    def ticket_attachment(self, ticket_id: int, attachment_id: int) -> AttachmentRecord:
        """One of the ticket's files; raises ``NotFound`` for any other id."""
        for attachment in self.list_attachments(ticket_id):
            if attachment.id == attachment_id:
                return attachment
        raise NotFound(f"ticket {ticket_id} has no attachment {attachment_id}")


def _agent(row: Any) -> Agent:
    return Agent(
        id=row.id,
        email=row.email,
        name=row.name,
        disabled=row.disabled_at_ms is not None,
        created_at_ms=row.created_at_ms,
    )


def _grant_active(ticket: Any, now_ms: int) -> bool:
    return bool(
        ticket.console_access_granted
        and ticket.console_access_revoked_at_ms is None
        and (ticket.console_access_expires_at_ms or 0) > now_ms
    )


def _queue_query(which: QueueFilter, *, now_ms: int) -> sa.Select[Any]:
    query = (
        sa.select(
            tickets.c.id,
            organizations.c.name.label("organization"),
            tickets.c.kind,
            tickets.c.status,
            tickets.c.subject,
            tickets.c.submitter_email,
            tickets.c.product_type,
            tickets.c.service_type,
            agents.c.name.label("assignee"),
            tickets.c.console_access_granted,
            tickets.c.console_access_expires_at_ms,
            tickets.c.console_access_revoked_at_ms,
            tickets.c.created_at_ms,
        )
        .join(organizations, organizations.c.id == tickets.c.organization_id)
        .outerjoin(agents, agents.c.id == tickets.c.assignee_agent_id)
        .order_by(tickets.c.created_at_ms.desc(), tickets.c.id.desc())
    )
    equal = {
        tickets.c.status: which.status,
        organizations.c.name: which.organization,
        tickets.c.kind: which.kind,
        tickets.c.product_type: which.product_type,
        tickets.c.service_type: which.service_type,
        tickets.c.assignee_agent_id: which.assignee_id,
    }
    for column, wanted in equal.items():
        if wanted is not None:
            query = query.where(column == wanted)
    if which.unassigned:
        query = query.where(tickets.c.assignee_agent_id.is_(None))
    if which.console_access is not None:
        active = sa.and_(
            tickets.c.console_access_granted.is_(True),
            tickets.c.console_access_revoked_at_ms.is_(None),
            tickets.c.console_access_expires_at_ms > now_ms,
        )
        query = query.where(active if which.console_access else sa.not_(active))
    return query


def _searching(query: sa.Select[Any], text: str, dialect: str) -> sa.Select[Any]:
    """``query`` narrowed to tickets whose subject or body has every word of
    ``text`` (each word also as the start of a longer one)."""
    words = re.findall(r"\w+", text)[:_SEARCH_WORDS]
    if not words:
        return query
    if dialect == "sqlite":
        matching = " AND ".join(f'"{word}"*' for word in words)
        found = sa.text(
            "SELECT rowid FROM tickets_search WHERE tickets_search MATCH :matching"
        ).bindparams(matching=matching)
        return query.where(tickets.c.id.in_(found))
    document = sa.func.to_tsvector(
        "simple",
        sa.func.coalesce(tickets.c.subject, "")
        + " "
        + sa.func.coalesce(tickets.c.body, ""),
    )
    wanted = sa.func.to_tsquery("simple", " & ".join(f"{word}:*" for word in words))
    return query.where(document.bool_op("@@")(wanted))


def _parse_cursor(cursor: str) -> tuple[int, int]:
    created, _, ticket = cursor.partition(".")
    if not (created.lstrip("-").isdigit() and ticket.isdigit()):
        raise ValueError(f"not a queue cursor: {cursor[:40]!r}")
    return int(created), int(ticket)


def _queue_item(row: Any, now_ms: int) -> QueueItem:
    return QueueItem(
        id=row.id,
        organization=row.organization,
        kind=row.kind,
        status=row.status,
        subject=row.subject,
        submitter_email=row.submitter_email,
        product_type=row.product_type,
        service_type=row.service_type,
        assignee=row.assignee,
        console_access=_grant_active(row, now_ms),
        created_at_ms=row.created_at_ms,
    )


def _locked_ticket(connection: sa.Connection, ticket_id: int) -> Any:
    row = connection.execute(
        sa.select(tickets).where(tickets.c.id == ticket_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFound(f"no ticket has the id {ticket_id}")
    return row


def _assignable(connection: sa.Connection, agent_id: int) -> str:
    row = connection.execute(
        sa.select(agents).where(agents.c.id == agent_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no agent has the id {agent_id}")
    if row.disabled_at_ms is not None:
        raise ValueError(f"{row.email} is disabled and cannot take tickets")
    return str(row.email)


def _record(
    connection: sa.Connection,
    ticket_id: int,
    kind: str,
    by: Agent,
    *,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    now_ms: int,
) -> None:
    connection.execute(
        ticket_events.insert().values(
            ticket_id=ticket_id,
            kind=kind,
            actor=by.email,
            # SQL NULL for "nothing", as the API writes it, not the JSON text null.
            before=sa.null() if before is None else before,
            after=sa.null() if after is None else after,
            created_at_ms=now_ms,
            outbox_pending=1,
        )
    )
