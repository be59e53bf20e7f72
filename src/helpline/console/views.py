"""A ticket as its page shows it: the state of its console-access grant and its
timeline, each event with who, when, and the values before and after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from helpline.domain.clock import iso_utc
from helpline.storage.console import ConsoleTicket, TicketMessage
from helpline.storage.records import TicketEvent

NOTHING = "—"
_LABELS = {
    "created": "Ticket created",
    "status_changed": "Status changed",
    "assigned": "Assigned",
    "replied": "Reply to requester",
    "note_added": "Internal note",
    "console_access_revoked": "Console access revoked",
}
_FIELD_NAMES = {
    "status": "Status",
    "assignee": "Assignee",
    "console_access": "Console access",
    "expires_at_ms": "Expires",
}
# Shown in place of the value None, where "—" would say less.
_EMPTY_VALUES = {"assignee": "nobody"}
# Stored to link an event to its message; the message's text is shown instead.
_HIDDEN_FIELDS = frozenset({"message_id"})
_MESSAGE_EVENTS = {"replied": "reply", "note_added": "note"}


@dataclass(frozen=True, slots=True)
class Change:
    field: str
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of the timeline; ``body`` is the text of a reply or note."""

    kind: str
    label: str
    actor: str
    at_ms: int
    changes: tuple[Change, ...] = ()
    body: str | None = None

    @property
    def internal(self) -> bool:
        return self.kind == "note_added"


@dataclass(frozen=True, slots=True)
class Grant:
    """The console-access grant: ``state`` is none, active, expired or revoked."""

    state: str
    text: str

    @property
    def active(self) -> bool:
        return self.state == "active"


def grant_of(ticket: ConsoleTicket, *, now_ms: int) -> Grant:
    record = ticket.record
    expires = record.console_access_expires_at_ms
    until = NOTHING if expires is None else iso_utc(expires)
    if not record.console_access_granted:
        return Grant("none", "Not granted")
    if record.console_access_revoked_at_ms is not None:
        revoked = iso_utc(record.console_access_revoked_at_ms)
        return Grant("revoked", f"Revoked at {revoked} (was to expire at {until})")
    if not ticket.console_access_active(now_ms):
        return Grant("expired", f"Expired at {until}")
    return Grant("active", f"In force until {until}")


def timeline_of(ticket: ConsoleTicket) -> tuple[TimelineEntry, ...]:
    """Every event of the ticket, oldest first, replies and notes with their text.

    A message always comes with its event; one that somehow lacks it is still
    shown, at its own time, so that no agent's words go missing from the page.
    """
    messages = {message.id: message for message in ticket.messages}
    entries = []
    for event in ticket.record.events:
        message = _message_of(event, messages)
        if message is not None:
            messages.pop(message.id)
        entries.append(_event_entry(event, message))
    entries.extend(_message_entry(message) for message in messages.values())
    return tuple(sorted(entries, key=lambda entry: entry.at_ms))


def _message_of(
    event: TicketEvent, messages: Mapping[int, TicketMessage]
) -> TicketMessage | None:
    if event.kind not in _MESSAGE_EVENTS or not isinstance(event.after, dict):
        return None
    return messages.get(event.after.get("message_id", -1))


def _event_entry(event: TicketEvent, message: TicketMessage | None) -> TimelineEntry:
    return TimelineEntry(
        kind=event.kind,
        label=_label(event.kind),
        actor=event.actor,
        at_ms=event.created_at_ms,
        changes=_changes(event.before, event.after),
        body=None if message is None else message.body,
    )


def _message_entry(message: TicketMessage) -> TimelineEntry:
    kind = "replied" if message.kind == "reply" else "note_added"
    return TimelineEntry(
        kind=kind,
        label=_label(kind),
        actor=message.author,
        at_ms=message.created_at_ms,
        body=message.body,
    )


def _label(kind: str) -> str:
    return _LABELS.get(kind, kind.replace("_", " ").capitalize())


def _changes(before: Any, after: Any) -> tuple[Change, ...]:
    """Each field the event recorded, in the order stored, before and after."""
    old = before if isinstance(before, dict) else {}
    new = after if isinstance(after, dict) else {}
    fields = [*new, *(name for name in old if name not in new)]
    return tuple(
        Change(
            _FIELD_NAMES.get(name, name.replace("_", " ").capitalize()),
            _shown(name, old.get(name)),
            _shown(name, new.get(name)),
        )
        for name in fields
        if name not in _HIDDEN_FIELDS
    )


def _shown(name: str, value: Any) -> str:
    if value is None:
        return _EMPTY_VALUES.get(name, NOTHING)
    if name.endswith("_at_ms") and isinstance(value, int):
        return iso_utc(value)
    return str(value)
