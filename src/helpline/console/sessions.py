"""Console sessions: the cookie, looking a session up, and the CSRF check that
guards every state-changing form.

The cookie holds a random token; the store knows only its SHA-256 digest. Each
session has its own CSRF token, which every form echoes in ``csrf_token``.
"""

from __future__ import annotations

import asyncio
import hmac
import re

from helpline.console.context import Console
from helpline.console.web import (
    ConsoleRequest,
    PageError,
    SignInNeeded,
    cookie,
    read_form,
)
from helpline.domain.agents import SESSION_LIFETIME_MS, session_digest
from helpline.domain.clock import now_ms
from helpline.storage.console import ConsoleSession

SESSION_COOKIE = "helpline_session"
SESSION_PATH = "/console"
# What ``new_session_token`` makes (43 URL-safe characters), with room to spare;
# anything else is not worth a database lookup.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,100}")
FORGED_FORM = (
    "This form has expired or did not come from the console; nothing was "
    "changed. Reload the page and try again."
)


def session_token(request: ConsoleRequest) -> str | None:
    """The session token the browser sent, if it looks like one."""
    token = request.cookies.get(SESSION_COOKIE, "")
    return token if _TOKEN.fullmatch(token) else None


async def current_session(
    console: Console, request: ConsoleRequest
) -> ConsoleSession | None:
    """The request's live session, or None; remembered on the request."""
    token = session_token(request)
    if token is None:
        return None
    session = await asyncio.to_thread(
        console.store.session, session_digest(token), now_ms=now_ms()
    )
    request.session = session
    return session


async def signed_in(console: Console, request: ConsoleRequest) -> ConsoleSession:
    """The request's live session; raises ``SignInNeeded`` without one."""
    session = await current_session(console, request)
    if session is None:
        raise SignInNeeded
    return session


async def signed_form(
    console: Console, request: ConsoleRequest
) -> tuple[ConsoleSession, dict[str, str]]:
    """The session and fields of a state-changing POST.

    Raises ``SignInNeeded`` without a session, and ``PageError`` (403) when the
    form's ``csrf_token`` is not the session's, before anything is changed.
    """
    session = await signed_in(console, request)
    form = await read_form(request)
    if not tokens_match(form.get("csrf_token"), session.csrf_token):
        raise PageError(403, FORGED_FORM)
    return session, form


def tokens_match(given: str | None, expected: str | None) -> bool:
    """Whether two tokens are present and equal, compared in constant time."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def session_cookie(token: str, *, secure: bool) -> str:
    return cookie(
        SESSION_COOKIE,
        token,
        path=SESSION_PATH,
        max_age_s=SESSION_LIFETIME_MS // 1000,
        secure=secure,
        same_site="Lax",
    )


def ended_session_cookie(*, secure: bool) -> str:
    return cookie(
        SESSION_COOKIE,
        "",
        path=SESSION_PATH,
        max_age_s=0,
        secure=secure,
        same_site="Lax",
    )
