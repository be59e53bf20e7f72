"""Which messages a ticket event becomes: the notification rules in one place.

| event                  | mail to submitter, collaborators | webhook event         |
|------------------------|----------------------------------|-----------------------|
| created                | acknowledgement ("created")      | ticket.created        |
| replied (public reply) | the reply ("replied")            | ticket.replied        |
| status_changed         | "solved", when it became Solved  | ticket.status_changed |
| assigned, access revoked | none                           | ticket.updated        |
| note_added             | none: internal notes stay inside | none                  |

A webhook's body is fixed here, when the event is fanned out, so every retry
sends the same bytes under the same ``webhook-id``.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import msgspec

from helpline.domain.tickets import TicketStatus
from helpline.storage.outbox import EventToFanOut, NewMessage, Webhook

EMAIL = "email"
WEBHOOK = "webhook"

WEBHOOK_EVENTS = {
    "created": "ticket.created",
    "replied": "ticket.replied",
    "status_changed": "ticket.status_changed",
    "assigned": "ticket.updated",
    "console_access_revoked": "ticket.updated",
}

_encode = msgspec.json.encode


def plan_messages(event: EventToFanOut, hooks: Sequence[Webhook]) -> list[NewMessage]:
    """The mails and webhook deliveries one event becomes."""
    messages: list[NewMessage] = []
    for kind in _mail_kinds(event):
        payload = _mail_payload(event)
        messages.extend(
            NewMessage(EMAIL, kind, recipient, payload)
            for recipient in recipients(event.ticket)
        )
    webhook_event = WEBHOOK_EVENTS.get(event.kind)
    subscribed = [
        hook
        for hook in hooks
        if webhook_event is not None
        and (hook.events is None or webhook_event in hook.events)
    ]
    if webhook_event is not None and subscribed:
        body = webhook_body(event, webhook_event)
        messages.extend(
            NewMessage(WEBHOOK, webhook_event, hook.url, body, webhook_id=hook.id)
            for hook in subscribed
        )
    return messages


def recipients(ticket: dict[str, Any]) -> list[str]:
    """The submitter and every collaborator, each once (compared without case)."""
    found: dict[str, str] = {}
    for address in [ticket["submitter_email"], *(ticket["collaborators"] or ())]:
        if isinstance(address, str) and address.strip():
            found.setdefault(address.strip().lower(), address.strip())
    return list(found.values())


def webhook_body(event: EventToFanOut, event_type: str) -> str:
    """The JSON a webhook receives, in the Standard Webhooks shape:
    ``{"type", "timestamp", "data"}``."""
    ticket = event.ticket
    data: dict[str, Any] = {
        "eventId": event.id,
        "ticketId": ticket["id"],
        "organization": event.organization,
        "change": {
            "kind": event.kind,
            "actor": event.actor,
            "before": event.before,
            "after": event.after,
            "at": _iso(event.created_at_ms),
        },
        "ticket": {
            "id": ticket["id"],
            "kind": ticket["kind"],
            "status": ticket["status"],
            "subject": ticket["subject"],
            "submitterEmail": ticket["submitter_email"],
            "collaborators": list(ticket["collaborators"] or ()),
            "productType": ticket["product_type"],
            "serviceType": ticket["service_type"],
            "createdAt": _iso(ticket["created_at_ms"]),
            "updatedAt": _iso(ticket["updated_at_ms"]),
        },
    }
    if event.kind == "replied":
        data["reply"] = {"body": event.message_body, "author": event.message_author}
    body = {"type": event_type, "timestamp": _iso(event.created_at_ms), "data": data}
    return _encode(body).decode()


def _mail_kinds(event: EventToFanOut) -> list[str]:
    if event.kind == "created":
        return ["created"]
    if event.kind == "replied":
        return ["replied"]
    if event.kind == "status_changed" and _status_after(event) == TicketStatus.SOLVED:
        return ["solved"]
    return []


def _status_after(event: EventToFanOut) -> str | None:
    after = event.after
    return after.get("status") if isinstance(after, dict) else None


def _mail_payload(event: EventToFanOut) -> str:
    """The fields a mail is composed from when it is sent (see ``TicketMail``)."""
    ticket = event.ticket
    fields = {
        "ticket_id": ticket["id"],
        "ticket_subject": ticket["subject"],
        "ticket_body": ticket["body"],
        "status": _status_after(event) or ticket["status"],
        "reply_text": event.message_body,
        "replied_by": event.message_author,
        "organization": event.organization,
    }
    return _encode(fields).decode()


def _iso(at_ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(at_ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
