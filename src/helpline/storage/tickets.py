"""The write jobs of a new ticket, run inside a group commit."""

from __future__ import annotations

import sqlalchemy as sa

from helpline.domain.idempotency import IDEMPOTENCY_WINDOW_MS, IdempotencyClaim
from helpline.domain.tickets import NewTicket
from helpline.storage.records import Created, CreateOutcome, KeyReused, Replayed
from helpline.storage.schema import idempotency_keys, ticket_events, tickets

_TICKET_INSERT = tickets.insert()
_EVENT_INSERT = ticket_events.insert()
_CLAIM_INSERT = idempotency_keys.insert()


def insert_ticket(
    connection: sa.Connection,
    ticket: NewTicket,
    claim: IdempotencyClaim | None,
    warning_msg: str | None,
) -> CreateOutcome:
    """Store a ticket, its creation event and its idempotency claim, or replay one.

    Runs inside the writer's transaction, so checking and taking the claim is atomic
    with respect to every other write.
    """
    if claim is not None:
        earlier = _earlier_claim(connection, ticket, claim)
        if earlier is not None:
            return earlier

    ticket_id = _insert_row(connection, ticket)
    connection.execute(
        _EVENT_INSERT,
        {
            "ticket_id": ticket_id,
            "kind": "created",
            "actor": ticket.submitter_email,
            "before": None,
            "after": {"status": ticket.status.value},
            "created_at_ms": ticket.created_at_ms,
        },
    )
    if claim is not None:
        connection.execute(
            _CLAIM_INSERT,
            {
                "organization_id": ticket.organization_id,
                "key": claim.key,
                "fingerprint": claim.fingerprint,
                "ticket_id": ticket_id,
                "warning_msg": warning_msg,
                "created_at_ms": ticket.created_at_ms,
            },
        )
    return Created(ticket_id)


def _insert_row(connection: sa.Connection, ticket: NewTicket) -> int:
    result = connection.execute(
        _TICKET_INSERT,
        {
            "organization_id": ticket.organization_id,
            "api_key_id": ticket.api_key_id,
            "submitter_email": ticket.submitter_email,
            "kind": ticket.kind.value,
            "status": ticket.status.value,
            "subject": ticket.subject,
            "body": ticket.body,
            "collaborators": _listed(ticket.collaborators),
            "serial_numbers": _listed(ticket.serial_numbers),
            "product_type": ticket.product_type,
            "service_type": ticket.service_type,
            "console_access_granted": ticket.console_access_granted,
            "console_access_expires_at_ms": ticket.console_access_expires_at_ms,
            "warnings": list(ticket.warnings) or None,
            "created_at_ms": ticket.created_at_ms,
            "updated_at_ms": ticket.created_at_ms,
        },
    )
    primary_key = result.inserted_primary_key
    assert primary_key is not None  # noqa: S101
    return int(primary_key[0])


def _listed(values: tuple[str, ...] | None) -> list[str] | None:
    return None if values is None else list(values)


def _earlier_claim(
    connection: sa.Connection, ticket: NewTicket, claim: IdempotencyClaim
) -> CreateOutcome | None:
    """The outcome of an earlier request with this key, or None to go ahead."""
    row = connection.execute(
        sa.select(
            idempotency_keys.c.fingerprint,
            idempotency_keys.c.ticket_id,
            idempotency_keys.c.warning_msg,
            idempotency_keys.c.created_at_ms,
        ).where(
            idempotency_keys.c.organization_id == ticket.organization_id,
            idempotency_keys.c.key == claim.key,
        )
    ).one_or_none()
    if row is None:
        return None

    if row.created_at_ms <= ticket.created_at_ms - IDEMPOTENCY_WINDOW_MS:
        # Expired: the key is free again.
        connection.execute(
            idempotency_keys.delete().where(
                idempotency_keys.c.organization_id == ticket.organization_id,
                idempotency_keys.c.key == claim.key,
            )
        )
        return None
    if row.fingerprint != claim.fingerprint:
        return KeyReused(row.ticket_id)
    return Replayed(row.ticket_id, row.warning_msg)


def purge_expired_claims(connection: sa.Connection, *, now_ms: int) -> None:
    connection.execute(
        idempotency_keys.delete().where(
            idempotency_keys.c.created_at_ms <= now_ms - IDEMPOTENCY_WINDOW_MS
        )
    )
