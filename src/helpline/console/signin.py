"""Signing in and out of the console.

A wrong password, an unknown email and a disabled agent all get the same answer
and cost the same work. Failures are counted per email and per client address;
past the allowance, sign-in is refused until the window has passed, whether the
password is right or not. The sign-in form carries its own CSRF token, kept in a
short-lived cookie, since there is no session yet to hold one.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import secrets
from collections.abc import Mapping, Sequence

import structlog

from helpline.console.context import Console
from helpline.console.sessions import (
    current_session,
    ended_session_cookie,
    session_cookie,
    session_token,
    signed_form,
    tokens_match,
)
from helpline.console.web import ConsoleRequest, Response, cookie, read_form, redirect
from helpline.domain.agents import (
    Agent,
    agent_email,
    new_csrf_token,
    new_session_token,
    password_matches,
    session_digest,
)
from helpline.domain.clock import now_ms
from helpline.storage.console import ConsoleStore

LOGIN_CSRF_COOKIE = "helpline_login_csrf"
LOGIN_PATH = "/console/login"
# Long enough to type a password, short enough not to outlive the visit.
LOGIN_CSRF_LIFETIME_S = 30 * 60
WRONG_CREDENTIALS = "Wrong email or password."
EXPIRED_FORM = "The sign-in form had expired; sign in again."
# Unauthorized, with a page: the form again, with the reason.
FAILED_STATUS = 401
_MAX_EMAIL_LENGTH = 254
_LOGIN_TOKEN = re.compile(r"[0-9a-f]{48}")

log = structlog.get_logger("helpline.console")


async def show_login(
    console: Console, request: ConsoleRequest, params: Mapping[str, str]
) -> Response:
    """The sign-in form; an agent already signed in goes to the queue."""
    if await current_session(console, request) is not None:
        return redirect("/console")
    return _login_page(console, request, status=200)


async def sign_in(
    console: Console, request: ConsoleRequest, params: Mapping[str, str]
) -> Response:
    """Check the form, the throttle and the password, then start a session."""
    form = await read_form(request)
    typed_email = form.get("email", "")
    if not tokens_match(form.get("csrf_token"), request.cookies.get(LOGIN_CSRF_COOKIE)):
        return _login_page(
            console, request, status=403, problem=EXPIRED_FORM, email=typed_email
        )

    email = _login_email(typed_email)
    subjects = [f"email:{email}", f"address:{console.proxies.client_address(request)}"]
    store = console.store
    wait_ms = await asyncio.to_thread(store.login_wait_ms, subjects, now_ms=now_ms())
    if wait_ms > 0:
        return _throttled(console, request, wait_ms=wait_ms, email=typed_email)

    agent = await asyncio.to_thread(_verified_agent, store, email, form)
    if agent is None:
        await asyncio.to_thread(store.note_login_failure, subjects, now_ms=now_ms())
        log.warning(
            "console_sign_in_failed",
            request_id=request.request_id,
            email_hash=_fingerprint(email),
        )
        return _login_page(
            console,
            request,
            status=FAILED_STATUS,
            problem=WRONG_CREDENTIALS,
            email=typed_email,
        )

    # Only the email's count is cleared: clearing the address's too would let
    # someone with an account of their own reset it between guesses at others.
    await asyncio.to_thread(store.clear_login_failures, subjects[:1])
    return await _start_session(console, request, agent)


async def sign_out(
    console: Console, request: ConsoleRequest, params: Mapping[str, str]
) -> Response:
    """End the session and forget its cookie."""
    await signed_form(console, request)
    token = session_token(request)
    if token is not None:
        await asyncio.to_thread(console.store.end_session, session_digest(token))
    secure = console.proxies.is_https(request)
    return redirect(LOGIN_PATH, cookies=(ended_session_cookie(secure=secure),))


def _verified_agent(
    store: ConsoleStore, email: str, form: Mapping[str, str]
) -> Agent | None:
    """The enabled agent whose password the form gives, or None. The hash is
    checked even for an unknown email or a disabled agent, so that neither
    answers faster than a wrong password."""
    found = store.agent_credentials(email)
    agent, stored_hash = found if found is not None else (None, None)
    matched = password_matches(stored_hash, form.get("password", ""))
    if not matched or agent is None or agent.disabled:
        return None
    return agent


async def _start_session(
    console: Console, request: ConsoleRequest, agent: Agent
) -> Response:
    token, digest = new_session_token()
    await asyncio.to_thread(
        console.store.create_session,
        agent_id=agent.id,
        digest=digest,
        csrf_token=new_csrf_token(),
        now_ms=now_ms(),
    )
    # A session this browser held before ends with the new sign-in.
    previous = session_token(request)
    if previous is not None:
        await asyncio.to_thread(console.store.end_session, session_digest(previous))
    log.info("console_sign_in", request_id=request.request_id, agent_id=agent.id)
    secure = console.proxies.is_https(request)
    return redirect(
        "/console",
        cookies=(session_cookie(token, secure=secure), _login_cookie("", secure, 0)),
    )


def _throttled(
    console: Console, request: ConsoleRequest, *, wait_ms: int, email: str
) -> Response:
    minutes = max(1, math.ceil(wait_ms / 60_000))
    log.warning(
        "console_sign_in_throttled",
        request_id=request.request_id,
        wait_ms=wait_ms,
    )
    return _login_page(
        console,
        request,
        status=429,
        problem=f"Too many failed sign-ins; try again in {minutes} minutes.",
        email=email,
        headers=[("retry-after", str(math.ceil(wait_ms / 1000)))],
    )


def _login_page(
    console: Console,
    request: ConsoleRequest,
    *,
    status: int,
    problem: str | None = None,
    email: str = "",
    headers: Sequence[tuple[str, str]] = (),
) -> Response:
    """The form, with a login CSRF token in both the cookie and the form.

    A token the browser already holds is kept, so that two open sign-in tabs
    both work.
    """
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not _LOGIN_TOKEN.fullmatch(token):
        token = secrets.token_hex(24)
    secure = console.proxies.is_https(request)
    set_cookie = ("set-cookie", _login_cookie(token, secure, LOGIN_CSRF_LIFETIME_S))
    return console.pages.render(
        "login.html",
        request=request,
        status=status,
        headers=[set_cookie, *headers],
        title="Sign in",
        problem=problem,
        email=email,
        login_csrf=token,
    )


def _login_cookie(token: str, secure: bool, max_age_s: int) -> str:
    return cookie(
        LOGIN_CSRF_COOKIE,
        token,
        path=LOGIN_PATH,
        max_age_s=max_age_s,
        secure=secure,
        same_site="Strict",
    )


def _login_email(typed: str) -> str:
    """The email as agents are stored under it; text that is no email is still
    counted under its folded spelling, so guessing with junk is throttled too."""
    try:
        return agent_email(typed)
    except ValueError:
        return " ".join(typed.split()).casefold()[:_MAX_EMAIL_LENGTH]


def _fingerprint(value: str) -> str:
    """A short digest that lets an operator tie log lines together without the
    log holding the email itself."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]
