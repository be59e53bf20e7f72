"""The queue: tickets newest first, filtered, a page at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from helpline.console.context import Console
from helpline.console.forms import (
    FormProblem,
    QueueChoices,
    QueueQuery,
    queue_link,
    queue_query,
)
from helpline.console.sessions import signed_in
from helpline.console.web import ConsoleRequest, PageError, Response, parse_pairs
from helpline.domain.clock import now_ms
from helpline.domain.tickets import TicketKind, TicketStatus
from helpline.storage.console import ConsoleStore, QueuePage

ANY = ("", "Any")


@dataclass(frozen=True, slots=True)
class Select:
    """A filter of the queue's form: its choices as ``(value, text)``."""

    name: str
    label: str
    options: Sequence[tuple[str, str]]
    chosen: str


async def show_queue(
    console: Console, request: ConsoleRequest, params: Mapping[str, str]
) -> Response:
    """The queue page; a filter it cannot apply is a 400 page saying why."""
    session = await signed_in(console, request)
    choices = await asyncio.to_thread(_choices, console)
    try:
        query = queue_query(
            parse_pairs(request.query_string), choices=choices, me=session.agent
        )
    except FormProblem as problem:
        raise PageError(400, f"{problem} Clear the filters to see the queue.") from None
    page, counts = await asyncio.to_thread(_queue, console.store, query)
    cursor = page.next_cursor
    return console.pages.render(
        "queue.html",
        request=request,
        title="Queue",
        page=page,
        counts=counts,
        query=query,
        selects=_selects(choices, query.chosen),
        next_link=None if cursor is None else query.link(after=cursor),
        queue_link=queue_link,
    )


def _choices(console: Console) -> QueueChoices:
    return QueueChoices(
        organizations=console.store.organization_names(),
        agents=console.store.list_agents(),
        rules=console.settings.ticket_rules,
    )


def _queue(store: ConsoleStore, query: QueueQuery) -> tuple[QueuePage, dict[str, int]]:
    page = store.queue(query.which, now_ms=now_ms(), after=query.after)
    counts = store.status_counts(organization=query.which.organization)
    return page, counts


def _selects(choices: QueueChoices, chosen: Mapping[str, str]) -> list[Select]:
    agents = [
        (str(agent.id), agent.name + (" (disabled)" if agent.disabled else ""))
        for agent in choices.agents
    ]
    rules = choices.rules
    options = {
        "status": ("Status", [(s.value, s.value) for s in TicketStatus]),
        "organization": ("Organization", [(o, o) for o in choices.organizations]),
        "kind": (
            "Kind",
            [(TicketKind.TICKET.value, "Ticket"), (TicketKind.RMA.value, "RMA")],
        ),
        "product_type": (
            "Product type",
            _catalogue(rules.product_types, chosen["product_type"]),
        ),
        "service_type": (
            "Service type",
            _catalogue(rules.service_types, chosen["service_type"]),
        ),
        "assignee": ("Assignee", [("me", "Me"), ("none", "Nobody"), *agents]),
        "console_access": (
            "Console access",
            [("yes", "In force"), ("no", "Not in force")],
        ),
    }
    return [
        Select(name, label, [ANY, *values], chosen[name])
        for name, (label, values) in options.items()
    ]


def _catalogue(catalogue: Sequence[str], chosen: str) -> list[tuple[str, str]]:
    """The deployment's catalogue, or without one the value chosen so far.

    Without a catalogue any value is allowed and the store offers no list of the
    values in use, so the queue's product and service cells link to their filter
    instead.
    """
    values = list(catalogue) or ([chosen] if chosen else [])
    return [(value, value) for value in values]
