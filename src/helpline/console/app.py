"""The console over ASGI: routing, and the one place where what a handler raised
becomes a page, a redirect or a status.

``HelpApi`` hands over every request under ``/console``. Handlers call the store
from worker threads (it is synchronous) and answer with HTML rendered on the
server; no page needs JavaScript.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from helpline.console import queue, signin, static, tickets
from helpline.console.context import Console, Handler
from helpline.console.sessions import (
    SESSION_COOKIE,
    current_session,
    ended_session_cookie,
)
from helpline.console.web import (
    ConsoleRequest,
    PageError,
    Receive,
    Response,
    Scope,
    Send,
    SignInNeeded,
    redirect,
    send_response,
)
from helpline.storage.errors import StorageUnavailable

log = structlog.get_logger("helpline.console")
_TICKET = r"/console/tickets/(?P<ticket_id>[0-9]{1,12})"


@dataclass(frozen=True, slots=True)
class Route:
    pattern: re.Pattern[str]
    handlers: Mapping[str, Handler]


def _route(pattern: str, **handlers: Handler) -> Route:
    return Route(re.compile(pattern), handlers)


ROUTES = (
    _route(r"/console/?", GET=queue.show_queue),
    _route(r"/console/login", GET=signin.show_login, POST=signin.sign_in),
    _route(r"/console/logout", POST=signin.sign_out),
    _route(r"/console/static/console\.css", GET=static.stylesheet),
    _route(_TICKET, GET=tickets.show_ticket),
    _route(_TICKET + "/status", POST=tickets.change_status),
    _route(_TICKET + "/assign", POST=tickets.assign),
    _route(_TICKET + "/reply", POST=tickets.reply),
    _route(_TICKET + "/note", POST=tickets.add_note),
    _route(_TICKET + "/revoke-access", POST=tickets.revoke_access),
    _route(
        _TICKET + r"/attachments/(?P<attachment_id>[0-9]{1,12})",
        GET=tickets.download_attachment,
    ),
)


class ConsoleApp:
    """The agents' console as an ASGI application (HTTP only; no lifespan)."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def close(self) -> None:
        """Close the console's store (``HelpApi`` does at shutdown); the app
        serves no request after this."""
        self._console.store.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        request = ConsoleRequest.from_scope(scope, receive)

        response = await self._respond(request)

        try:
            await send_response(response, send, request_id=request.request_id)
        except Exception:
            # The status line is gone already: nothing left to tell the browser.
            log.exception("console_send_failed", request_id=request.request_id)
        session = request.session
        log.info(
            "console_request",
            request_id=request.request_id,
            method=request.method,
            path=request.path,
            status=response.status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            agent_id=session.agent.id if session else None,
        )

    async def _respond(self, request: ConsoleRequest) -> Response:
        """Route the request and turn every outcome into its answer."""
        try:
            return await self._dispatch(request)
        except SignInNeeded:
            return self._to_sign_in(request)
        except PageError as problem:
            await self._look_up_session(request)
            return self._console.pages.error(request, problem)
        except StorageUnavailable:
            unavailable = PageError(
                503,
                "The ticket database is not available right now; nothing was "
                "changed. Try again in a minute.",
                headers={"retry-after": "5"},
            )
            return self._console.pages.error(request, unavailable)
        except Exception:
            log.exception("unhandled_error", request_id=request.request_id)
            failure = PageError(
                500,
                "Something went wrong on our side. Quote request id "
                f"{request.request_id} when reporting it.",
            )
            return self._console.pages.error(request, failure)

    async def _dispatch(self, request: ConsoleRequest) -> Response:
        for route in ROUTES:
            matched = route.pattern.fullmatch(request.path)
            if matched is None:
                continue
            handler = route.handlers.get(request.method)
            if handler is None:
                allowed = ", ".join(route.handlers)
                raise PageError(
                    405,
                    f"This page takes {allowed} requests only.",
                    headers={"allow": allowed},
                )
            return await handler(self._console, request, matched.groupdict())
        raise PageError(404, "There is no such page in the console.")

    async def _look_up_session(self, request: ConsoleRequest) -> None:
        """Find the session of a request refused before any handler looked, so
        that its error page still shows who is signed in."""
        if request.session is not None:
            return
        with contextlib.suppress(StorageUnavailable):
            await current_session(self._console, request)

    def _to_sign_in(self, request: ConsoleRequest) -> Response:
        """A 303 to the sign-in form, forgetting a session cookie that no longer
        opens a session."""
        if SESSION_COOKIE not in request.cookies:
            return redirect(signin.LOGIN_PATH)
        secure = self._console.proxies.is_https(request)
        return redirect(
            signin.LOGIN_PATH, cookies=(ended_session_cookie(secure=secure),)
        )
