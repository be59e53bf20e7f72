"""What the storage layer hands back: plain, typed, read-only values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Organization:
    id: int
    name: str
    created_at_ms: int
    api_key_count: int = 0
    ticket_count: int = 0


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """A key as the operator sees it: never its secret, nor the digest of it."""

    id: int
    organization: str
    prefix: str
    label: str | None
    user_email: str
    permissions: tuple[str, ...]
    created_at_ms: int
    last_used_at_ms: int | None
    revoked_at_ms: int | None


@dataclass(frozen=True, slots=True)
class TicketEvent:
    kind: str
    actor: str
    before: Any
    after: Any
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class TicketRecord:
    """Every stored field of a ticket, with its history."""

    id: int
    organization: str
    api_key_prefix: str
    submitter_email: str
    kind: str
    status: str
    subject: str | None
    body: str | None
    collaborators: list[str] | None
    serial_numbers: list[str] | None
    product_type: str | None
    service_type: str | None
    console_access_granted: bool | None
    console_access_expires_at_ms: int | None
    console_access_revoked_at_ms: int | None
    warnings: list[str] | None
    created_at_ms: int
    updated_at_ms: int
    events: tuple[TicketEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class Created:
    """A new ticket was committed."""

    ticket_id: int


@dataclass(frozen=True, slots=True)
class Replayed:
    """The idempotency key was used before for the same request: its first answer."""

    ticket_id: int
    warning_msg: str | None


@dataclass(frozen=True, slots=True)
class KeyReused:
    """The idempotency key was used before for a different request."""

    ticket_id: int


CreateOutcome = Created | Replayed | KeyReused
