"""What agents send the console, checked and turned into the store's terms.

Every function here raises ``FormProblem`` with a message for the agent; the
pages decide what status and page it becomes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from helpline.domain.agents import Agent
from helpline.domain.failures import DomainFailure
from helpline.domain.text import clean_text
from helpline.domain.tickets import TicketKind, TicketRules, TicketStatus
from helpline.storage.console import QueueFilter

MAX_MESSAGE_LENGTH = 10_000
MAX_SEARCH_LENGTH = 200
# Ids are 32-bit integers in the schema; anything larger names no row, and
# PostgreSQL would refuse to compare with it.
MAX_ID = 2**31 - 1
QUEUE_PARAMETERS = (
    "status",
    "organization",
    "kind",
    "product_type",
    "service_type",
    "assignee",
    "console_access",
    "q",
)
_CURSOR = re.compile(r"-?[0-9]{1,15}\.[0-9]{1,10}")
_CONSOLE_ACCESS = {"yes": True, "no": False}
_MESSAGE_NAMES = {"reply": "The reply", "note": "The note"}


class FormProblem(ValueError):
    """A value the console cannot use; the message says how to fix it."""


def parse_id(text: str) -> int | None:
    """The id a path or field names, or None when it cannot name a row."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


@dataclass(frozen=True, slots=True)
class QueueChoices:
    """What the queue may be filtered by, as the store knows it right now."""

    organizations: Sequence[str]
    agents: Sequence[Agent]
    rules: TicketRules


@dataclass(frozen=True, slots=True)
class QueueQuery:
    """A checked queue request: the store's filter, the values as the agent
    chose them (to show in the form again) and where the page starts."""

    which: QueueFilter
    chosen: Mapping[str, str]
    after: str | None

    def link(self, *, after: str | None = None) -> str:
        """The queue URL with these filters, starting after ``after``."""
        return queue_link(**self.chosen, after=after)


def queue_link(**filters: str | None) -> str:
    """The queue URL with the given filters; empty ones are left out."""
    pairs = [(name, value) for name, value in filters.items() if value]
    return "/console?" + urlencode(pairs) if pairs else "/console"


def queue_query(
    pairs: Sequence[tuple[str, str]], *, choices: QueueChoices, me: Agent
) -> QueueQuery:
    """The queue filters of a query string; an empty value leaves a filter off and
    unknown parameters are ignored. Raises ``FormProblem`` for a repeated
    parameter or a value the queue cannot filter by."""
    given = _single_values(pairs)
    chosen = {name: given.get(name, "").strip() for name in QUEUE_PARAMETERS}
    assignee_id, unassigned = _assignee_filter(chosen["assignee"], choices, me)
    which = QueueFilter(
        status=_status_filter(chosen["status"]),
        organization=_organization_filter(chosen["organization"], choices),
        kind=_kind_filter(chosen["kind"]),
        product_type=_catalogue_filter(
            "product type", chosen["product_type"], choices.rules.product_types
        ),
        service_type=_catalogue_filter(
            "service type", chosen["service_type"], choices.rules.service_types
        ),
        assignee_id=assignee_id,
        unassigned=unassigned,
        console_access=_console_access_filter(chosen["console_access"]),
        search=_search(chosen["q"]),
    )
    return QueueQuery(which, chosen, _cursor(given.get("after", "")))


def _single_values(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values and values[name] != value:
            raise FormProblem(f"Give {name} once; the link names it twice.")
        values[name] = value
    return values


def _status_filter(text: str) -> str | None:
    return ticket_status(text).value if text else None


def ticket_status(text: str) -> TicketStatus:
    """The status named by ``text`` (any letter case)."""
    for status in TicketStatus:
        if status.value.casefold() == text.strip().casefold():
            return status
    names = ", ".join(status.value for status in TicketStatus)
    raise FormProblem(f"There is no status {text[:40]!r}; choose one of {names}.")


def _organization_filter(text: str, choices: QueueChoices) -> str | None:
    if not text:
        return None
    if text not in choices.organizations:
        raise FormProblem(f"No organization is named {text[:80]!r}.")
    return text


def _kind_filter(text: str) -> str | None:
    if not text:
        return None
    kinds = [kind.value for kind in TicketKind]
    if text not in kinds:
        raise FormProblem(
            f"There is no kind {text[:40]!r}; choose {' or '.join(kinds)}."
        )
    return text


def _catalogue_filter(name: str, text: str, catalogue: Sequence[str]) -> str | None:
    """A product or service type as tickets store it: a catalogue entry when the
    deployment has a catalogue, else any short line of printable text."""
    if not text:
        return None
    if catalogue:
        by_folded = {entry.casefold(): entry for entry in catalogue}
        canonical = by_folded.get(text.casefold())
        if canonical is None:
            raise FormProblem(
                f"There is no {name} {text[:80]!r}; choose one of "
                f"{', '.join(catalogue)}."
            )
        return canonical
    if len(text) > TicketRules().max_catalogue_value_length or not text.isprintable():
        raise FormProblem(f"A {name} is a short line of printable text.")
    return text


def _assignee_filter(
    text: str, choices: QueueChoices, me: Agent
) -> tuple[int | None, bool]:
    """``(agent id, unassigned only)`` for ``me``, ``none`` or an agent's id."""
    if not text:
        return None, False
    if text == "none":
        return None, True
    if text == "me":
        return me.id, False
    return _known_agent(text, choices.agents).id, False


def _known_agent(text: str, agents: Sequence[Agent]) -> Agent:
    agent_id = parse_id(text)
    for agent in agents:
        if agent.id == agent_id:
            return agent
    raise FormProblem(
        f"No agent has the id {text[:20]!r}; choose me, none or an agent."
    )


def _console_access_filter(text: str) -> bool | None:
    if not text:
        return None
    if text not in _CONSOLE_ACCESS:
        raise FormProblem("Console access is filtered by yes or no.")
    return _CONSOLE_ACCESS[text]


def _search(text: str) -> str | None:
    if not text:
        return None
    if len(text) > MAX_SEARCH_LENGTH:
        raise FormProblem(f"Search for at most {MAX_SEARCH_LENGTH} characters.")
    if not text.isprintable():
        raise FormProblem("Search for printable text on one line.")
    return text


def _cursor(text: str) -> str | None:
    if not text:
        return None
    if not _CURSOR.fullmatch(text) or parse_id(text.partition(".")[2]) is None:
        raise FormProblem(
            "The page link is not one this console made; start from the first page."
        )
    return text


def assignee_choice(text: str, *, me: Agent, agents: Sequence[Agent]) -> int | None:
    """The agent a ticket goes to (``me``, ``none`` or an enabled agent's id):
    their id, or None for nobody."""
    if text == "none":
        return None
    if text == "me":
        return me.id
    agent = _known_agent(text, agents)
    if agent.disabled:
        raise FormProblem(f"{agent.name} is disabled and cannot take tickets.")
    return agent.id


def message_body(kind: str, raw: str | None) -> str:
    """The text of a reply or a note (``kind``), trimmed, with lines ending in
    ``\\n``; refused when empty, over ``MAX_MESSAGE_LENGTH`` characters or
    holding control characters."""
    name = _MESSAGE_NAMES[kind]
    try:
        body = clean_text(name, raw, warnings=[])
    except DomainFailure as failure:
        raise FormProblem(failure.detail) from None
    if body is None:
        raise FormProblem(f"{name} is empty; write something before sending it.")
    if len(body) > MAX_MESSAGE_LENGTH:
        raise FormProblem(
            f"{name} has {len(body):,} characters; the limit is "
            f"{MAX_MESSAGE_LENGTH:,}. Shorten it."
        )
    return body
