"""What the storage layer hands back: plain, typed, read-only values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from helpline.domain.rma import RmaDetails


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
class AttachmentRecord:
    id: int
    file_name: str
    size_bytes: int
    content_type: str
    sha256: str
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class TicketSummary:
    """A ticket as the open-ticket listings show it."""

    id: int
    created_at_ms: int
    status: str
    subject: str | None


@dataclass(frozen=True, slots=True)
class OpenTicketsPage:
    total: int
    tickets: list[TicketSummary]
    has_next_page: bool


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    id: int
    organization: str
    user_email: str
    feedback: str
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class StatusChange:
    ticket_id: int
    before: str
    after: str


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
    is_open: bool
    events: tuple[TicketEvent, ...] = ()
    attachments: tuple[AttachmentRecord, ...] = ()
    rma: RmaDetails | None = None


@dataclass(frozen=True, slots=True)
class Created:
    """A new ticket (or, with no id, feedback) was committed."""

    ticket_id: int | None


@dataclass(frozen=True, slots=True)
class Replayed:
    """The idempotency key was used before for the same request: its first answer."""

    ticket_id: int | None
    warning_msg: str | None


@dataclass(frozen=True, slots=True)
class KeyReused:
    """The idempotency key was used before for a different request."""

    ticket_id: int | None


CreateOutcome = Created | Replayed | KeyReused
