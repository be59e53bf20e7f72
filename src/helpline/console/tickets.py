"""A ticket's page, the actions agents take on it, and its attachments.

Each action is a POST that changes the ticket and answers 303 back to its page
(post/redirect/get), so reloading the page never repeats the action. A value
the console cannot use shows the page again, with the reason, as a 400.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import BinaryIO
from urllib.parse import quote

import structlog

from helpline.console.context import Console
from helpline.console.forms import (
    FormProblem,
    assignee_choice,
    message_body,
    parse_id,
    ticket_status,
)
from helpline.console.sessions import signed_form, signed_in
from helpline.console.views import grant_of, timeline_of
from helpline.console.web import (
    FILE_POLICY,
    ConsoleRequest,
    PageError,
    Response,
    redirect,
)
from helpline.domain.agents import Agent
from helpline.domain.attachments import OCTET_STREAM, sanitize_file_name
from helpline.domain.clock import now_ms
from helpline.domain.tickets import TicketStatus
from helpline.storage.console import ConsoleStore, ConsoleTicket
from helpline.storage.errors import NotFound

# Big enough that a 25 MiB file is a hundred reads, small enough to hold briefly.
CHUNK_BYTES = 256 * 1024
# RFC 5987 attr-char, besides letters and digits: these need no escaping.
_FILENAME_SAFE = "!#$&+-.^_`|~"

log = structlog.get_logger("helpline.console")


async def show_ticket(
    console: Console, request: ConsoleRequest, params: Mapping[str, str]
) -> Response:
    await signed_in(console, request)
    return await _ticket_page(console, request, _ticket_id(params))


async def change_status(
    console: Console, request: ConsoleRequest, params: Mapping[str, str]
) -> Response:
    session, form = await signed_form(console, request)
    ticket_id = _ticket_id(params)
    try:
        status = ticket_status(form.get("status", ""))
    except FormProblem as problem:
        return await _refused(console, request, ticket_id, problem)
    await _act(
        functools.partial(
            console.store.set_status,
            ticket_id,
            status,
            actor=session.agent.email,
            now_ms=now_ms(),
        )
    )
    return _back_to(ticket_id)


async def assign(
    console: Console, request: ConsoleRequest, params: Mapping[str, str]
) -> Response:
    session, form = await signed_form(console, request)
    ticket_id = _ticket_id(params)
    agents = await asyncio.to_thread(console.store.list_agents)
    try:
        agent_id = assignee_choice(
            form.get("assignee", ""), me=session.agent, agents=agents
        )
        await _act(
            functools.partial(
                console.store.assign,
                ticket_id,
                agent_id,
                by=session.agent,
                now_ms=now_ms(),
            )
        )
    except (FormProblem, ValueError) as problem:
        # ValueError: the agent was disabled after the page was shown.
        return await _refused(console, request, ticket_id, problem)
    return _back_to(ticket_id)


async def reply(
    console: Console, request: ConsoleRequest, params: Mapping[str, str]
) -> Response:
    return await _add_message(console, request, params, kind="reply")


async def add_note(
    console: Console, request: ConsoleRequest, params: Mapping[str, str]
) -> Response:
    return await _add_message(console, request, params, kind="note")


async def revoke_access(
    console: Console, request: ConsoleRequest, params: Mapping[str, str]
) -> Response:
    """End the ticket's console-access grant; with none in force, nothing
    changes and the page shows that."""
    session, _ = await signed_form(console, request)
    ticket_id = _ticket_id(params)
    await _act(
        functools.partial(
            console.store.revoke_console_access,
            ticket_id,
            by=session.agent,
            now_ms=now_ms(),
        )
    )
    return _back_to(ticket_id)


async def download_attachment(
    console: Console, request: ConsoleRequest, params: Mapping[str, str]
) -> Response:
    """The file, always as a download of bytes, never shown in the browser."""
    await signed_in(console, request)
    ticket_id = _ticket_id(params)
    attachment_id = parse_id(params["attachment_id"])
    if attachment_id is None:
        raise _no_attachment(ticket_id)
    try:
        attachment = await asyncio.to_thread(
            console.store.ticket_attachment, ticket_id, attachment_id
        )
    except NotFound:
        raise _no_attachment(ticket_id) from None

    file = await _open_blob(console, request, attachment.sha256)
    name = quote(sanitize_file_name(attachment.file_name), safe=_FILENAME_SAFE)
    return Response(
        200,
        content_type=OCTET_STREAM,
        headers=[("content-disposition", f"attachment; filename*=UTF-8''{name}")],
        chunks=_chunks_of(file),
        length=os.fstat(file.fileno()).st_size,
        cache_control="private, no-store",
        policy=FILE_POLICY,
    )


async def _add_message(
    console: Console, request: ConsoleRequest, params: Mapping[str, str], *, kind: str
) -> Response:
    session, form = await signed_form(console, request)
    ticket_id = _ticket_id(params)
    try:
        body = message_body(kind, form.get("body"))
    except FormProblem as problem:
        draft = {kind: form.get("body", "")}
        return await _refused(console, request, ticket_id, problem, drafts=draft)
    await _act(
        functools.partial(
            console.store.add_message,
            ticket_id,
            kind=kind,
            body=body,
            by=session.agent,
            now_ms=now_ms(),
        )
    )
    return _back_to(ticket_id)


async def _ticket_page(
    console: Console,
    request: ConsoleRequest,
    ticket_id: int,
    *,
    status: int = 200,
    problem: str | None = None,
    drafts: Mapping[str, str] | None = None,
) -> Response:
    """The page of a ticket; raises ``PageError`` (404) for an unknown id.

    ``drafts`` are texts a refused form had, to show in it again.
    """
    try:
        ticket, agents = await asyncio.to_thread(
            _ticket_and_agents, console.store, ticket_id
        )
    except NotFound:
        raise _no_ticket(ticket_id) from None
    return console.pages.render(
        "ticket.html",
        request=request,
        status=status,
        title=f"#{ticket_id} {ticket.record.subject or '(no subject)'}",
        ticket=ticket,
        record=ticket.record,
        grant=grant_of(ticket, now_ms=now_ms()),
        timeline=timeline_of(ticket),
        statuses=[choice.value for choice in TicketStatus],
        # Enabled agents can take the ticket; a disabled assignee is still shown
        # as the one it has, so that the select tells the truth.
        agents=[
            agent
            for agent in agents
            if not agent.disabled or agent.id == ticket.record.assignee_agent_id
        ],
        problem=problem,
        drafts=drafts or {},
        mail_configured=console.settings.smtp_url is not None,
    )


def _ticket_and_agents(
    store: ConsoleStore, ticket_id: int
) -> tuple[ConsoleTicket, list[Agent]]:
    return store.console_ticket(ticket_id), store.list_agents()


async def _refused(
    console: Console,
    request: ConsoleRequest,
    ticket_id: int,
    problem: Exception,
    *,
    drafts: Mapping[str, str] | None = None,
) -> Response:
    return await _ticket_page(
        console, request, ticket_id, status=400, problem=str(problem), drafts=drafts
    )


async def _act(action: Callable[[], object]) -> None:
    """Run a store action off the event loop; an unknown ticket is a 404."""
    try:
        await asyncio.to_thread(action)
    except NotFound as missing:
        raise PageError(404, f"{str(missing).capitalize()}.") from None


async def _open_blob(
    console: Console, request: ConsoleRequest, sha256: str
) -> BinaryIO:
    if console.blobs is None:
        raise PageError(
            503, "This server keeps no files (it has no file directory configured)."
        )
    try:
        return await asyncio.to_thread(console.blobs.open, sha256)
    except (FileNotFoundError, ValueError):
        log.error(
            "attachment_file_missing",
            request_id=request.request_id,
            sha256=sha256[:64],
        )
        raise PageError(
            500,
            "The attachment's file is missing from the file store. Tell the "
            f"operator, quoting request id {request.request_id}.",
        ) from None


async def _chunks_of(file: BinaryIO) -> AsyncGenerator[bytes, None]:
    """The file's bytes, read off the event loop, closing it at the end."""
    try:
        while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
            yield chunk
    finally:
        file.close()


def _ticket_id(params: Mapping[str, str]) -> int:
    ticket_id = parse_id(params["ticket_id"])
    if ticket_id is None:
        raise PageError(404, f"There is no ticket {params['ticket_id'][:12]}.")
    return ticket_id


def _no_ticket(ticket_id: int) -> PageError:
    return PageError(404, f"There is no ticket {ticket_id}.")


def _no_attachment(ticket_id: int) -> PageError:
    return PageError(404, f"Ticket {ticket_id} has no such attachment.")


def _back_to(ticket_id: int) -> Response:
    return redirect(f"/console/tickets/{ticket_id}")
