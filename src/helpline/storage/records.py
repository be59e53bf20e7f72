"""What the storage layer hands back: plain, typed, read-only values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from helpline.domain.keys import ApiKey, parse_permissions
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


# A ticket as the open-ticket listings show it: (id, created_at_ms, status,
# subject). A plain tuple, the row as the database driver hands it over, so that a
# listing of a thousand tickets builds no second object for each.
TicketSummary = tuple[int, int, str, str | None]


@dataclass(frozen=True, slots=True)
class OpenTicketsPage:
    total: int
    tickets: list[TicketSummary]
    has_next_page: bool


@dataclass(frozen=True, slots=True)
class OpenTicketsWindow:
    """An organization's open tickets of a time window, and one submitter's.

    ``submitter_tickets`` is ``tickets`` itself, the same list, when every ticket
    listed is the submitter's.
    """

    tickets: list[TicketSummary]
    submitter_tickets: list[TicketSummary]


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
    assignee_agent_id: int | None = None
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


# The key lookup of both stores: the columns ``api_key_from_row`` reads, in order.
KEY_COLUMNS = """k.id, k.organization_id, o.name, k.prefix, k.digest, k.user_email,
       k.permissions, k.revoked_at_ms
FROM api_keys AS k JOIN organizations AS o ON o.id = k.organization_id"""


def api_key_from_row(row: Sequence[Any]) -> ApiKey:
    """The ``ApiKey`` of a row selected as ``KEY_COLUMNS``."""
    key_id, organization_id, organization, prefix, digest, user, names, revoked = row
    return ApiKey(
        id=key_id,
        organization_id=organization_id,
        organization_name=organization,
        prefix=prefix,
        digest=digest,
        user_email=user,
        permissions=parse_permissions(names.split()),
        revoked=revoked is not None,
    )
