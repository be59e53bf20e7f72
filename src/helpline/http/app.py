"""The Help Webservice over ASGI: routing, authentication, and the one place where
results and failures become status codes and response envelopes.

The application is a bare ASGI callable rather than a framework route: it reads the
body itself, so a size limit is enforced while reading, and the hot path carries no
machinery it does not use.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
import structlog

from helpline.config import Settings
from helpline.domain.failures import DomainFailure
from helpline.domain.keys import ApiKey, Permission
from helpline.http import feedback_api, lists_api, ticket_file_api, tickets_api, wire
from helpline.http.auth import authenticate, require_permission
from helpline.http.call import Call, Request, Response
from helpline.http.errors import BAD_STRUCTURE, ApiError, MalformedBody
from helpline.http.keycache import KeyCache
from helpline.http.openapi import openapi_document
from helpline.observability import log_request
from helpline.storage.errors import Overloaded, StorageUnavailable
from helpline.storage.store import TicketStore

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class MountedApp(Protocol):
    """An application served beside the API, closed when the API shuts down."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    def close(self) -> None: ...


class Companion(Protocol):
    """A service that lives as long as the API: started after the store, stopped
    before it, and reported on by ``/readyz`` (the outbox)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def details(self) -> dict[str, Any]: ...


# Everything under this path is the agents' console (``helpline.console``).
CONSOLE_PREFIX = "/console"

log = structlog.get_logger("helpline.http")
_MAX_REQUEST_ID_LENGTH = 128
_request_ids = random.Random()  # noqa: S311 - ids, not secrets


@dataclass(frozen=True, slots=True)
class Operation:
    """An authenticated API operation: who may call it, what it answers with."""

    permission: Permission
    answer: type[wire.Answer]
    handler: Callable[[Call], Awaitable[Response]]


OPERATIONS = {
    "/api/help/ticket": Operation(
        Permission.CREATE_TICKETS, wire.TicketAnswer, tickets_api.create_ticket
    ),
    "/api/help/ticketWithFile": Operation(
        Permission.CREATE_TICKETS,
        wire.TicketAnswer,
        ticket_file_api.create_ticket_with_file,
    ),
    "/api/help/rma": Operation(
        Permission.CREATE_TICKETS, wire.TicketAnswer, tickets_api.create_rma
    ),
    "/api/help/openTickets": Operation(
        Permission.READ_TICKETS, wire.OpenTicketsAnswer, lists_api.open_tickets
    ),
    "/api/help/openTicketsV2": Operation(
        Permission.READ_TICKETS, wire.OpenTicketsV2Answer, lists_api.open_tickets_v2
    ),
    "/api/help/feedback": Operation(
        Permission.SEND_FEEDBACK, wire.FeedbackAnswer, feedback_api.send_feedback
    ),
}


class HelpApi:
    """The ASGI application. Its lifespan starts and closes the store."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: TicketStore,
        console: MountedApp | None = None,
        outbox: Companion | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._console = console
        self._outbox = outbox
        self._keys = KeyCache(
            store.find_api_key, ttl_seconds=settings.key_cache_seconds
        )
        self._rate_limiter = store.rate_limiter(
            rate=settings.rate_limit_per_second, burst=settings.rate_limit_burst
        )
        self._openapi = wire.plain(openapi_document(settings))
        # The unauthenticated GETs: the API description, health, readiness.
        self._pages: dict[str, Callable[[], Awaitable[Response]]] = {
            "/api/openapi/public.json": self._describe,
            "/healthz": self._health,
            "/readyz": self._readiness,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if self._console is not None and (
                path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")
            ):
                await self._console(scope, receive, send)
                return
            await self._serve_http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._store.start()
                    if self._outbox is not None:
                        await self._outbox.start()
                except Exception as error:
                    log.exception("startup_failed")
                    await send(
                        {"type": "lifespan.startup.failed", "message": str(error)}
                    )
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._outbox is not None:
                    await self._outbox.stop()
                await self._store.close()
                if self._console is not None:
                    self._console.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        request = Request(
            method=scope["method"],
            path=scope["path"],
            headers=headers,
            receive=receive,
            request_id=_request_id(headers.get("x-request-id")),
        )

        response = await self._respond(request)

        response.headers["x-request-id"] = request.request_id
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": _encode_headers(response),
            }
        )
        await send({"type": "http.response.body", "body": response.body})
        key = request.api_key
        log_request(
            request_id=request.request_id,
            method=request.method,
            path=request.path,
            status=response.status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            organization=key.organization_name if key else None,
            key_prefix=key.prefix if key else None,
        )

    async def _respond(self, request: Request) -> Response:
        """Route the request and map every outcome to its answer, in one place."""
        operation = OPERATIONS.get(request.path)
        answer = operation.answer if operation else wire.TicketAnswer
        try:
            if operation is not None:
                return await self._perform(operation, request)
            return await self._serve_page(request)
        except Exception as problem:
            return self._failure(problem, answer, request)

    def _failure(
        self, problem: Exception, answer: type[wire.Answer], request: Request
    ) -> Response:
        status, headers = 200, {}
        msg: str | msgspec.UnsetType = msgspec.UNSET
        reason = None
        if isinstance(problem, DomainFailure):
            message, reason = problem.detail, problem.reason.value
        elif isinstance(problem, ApiError):
            status, message, headers = problem.status, problem.message, problem.headers
            if status == 400:
                msg = BAD_STRUCTURE if isinstance(problem, MalformedBody) else message
        elif isinstance(problem, StorageUnavailable | Overloaded):
            status, headers = 503, {"retry-after": "1"}
            message = (
                "Service unavailable: Helpline is taking more writes than it can store"
                if isinstance(problem, Overloaded)
                else "Service unavailable: the ticket database is not available"
            ) + "; nothing was stored; retry shortly."
        else:
            log.exception("unhandled_error", request_id=request.request_id)
            status = 500
            message = (
                "Internal error; nothing was stored. Quote request id "
                f"{request.request_id} when reporting it."
            )
        body = wire.failed(answer, message, failure_reason=reason, msg=msg)
        return Response(status, wire.encode(body), headers=dict(headers))

    async def _perform(self, operation: Operation, request: Request) -> Response:
        if request.method != "POST":
            raise _not_allowed(request.method, "POST")
        key = await authenticate(request.headers, find_key=self._keys.find)
        request.api_key = key  # from here on, the log line names the key
        require_permission(key, operation.permission)
        call = Call.start(request, key, settings=self._settings, store=self._store)
        self._store.note_key_used(key.id, now_ms=call.now_ms)
        await self._check_rate(key)
        return await operation.handler(call)

    async def _serve_page(self, request: Request) -> Response:
        page = self._pages.get(request.path)
        if page is None:
            raise ApiError(
                404,
                f"No operation at {request.path[:200]}; see the API description "
                "at /api/openapi/public.json.",
            )
        if request.method != "GET":
            raise _not_allowed(request.method, "GET")
        return await page()

    async def _check_rate(self, key: ApiKey) -> None:
        wait_seconds = await self._rate_limiter.acquire(key.organization_id)
        if wait_seconds is not None:
            raise ApiError(
                429,
                f"Too many requests for organization {key.organization_name}; "
                f"retry after {wait_seconds} s.",
                headers={"retry-after": str(wait_seconds)},
            )

    async def _describe(self) -> Response:
        return Response(200, self._openapi)

    async def _health(self) -> Response:
        return Response(200, wire.plain({"status": "ok"}))

    async def _readiness(self) -> Response:
        try:
            await self._store.ping()
        except StorageUnavailable:
            down = {"status": "unavailable", "database": "unreachable"}
            return Response(503, wire.plain(down))
        ready: dict[str, Any] = {"status": "ready", "database": "ok"}
        if self._outbox is not None:
            ready["outbox"] = await self._outbox.details()
        return Response(200, wire.plain(ready))


def _not_allowed(method: str, allowed: str) -> ApiError:
    return ApiError(
        405,
        f"{method} is not allowed here; use {allowed}.",
        headers={"allow": allowed},
    )


def _request_id(given: str | None) -> str:
    if given and len(given) <= _MAX_REQUEST_ID_LENGTH and given.isprintable():
        return given
    # Unique is enough for a request id; unpredictable would cost a system call.
    return f"{_request_ids.getrandbits(128):032x}"


_STANDARD_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
]


def _encode_headers(response: Response) -> list[tuple[bytes, bytes]]:
    encoded = [
        (b"content-type", response.content_type.encode()),
        (b"content-length", str(len(response.body)).encode()),
        *_STANDARD_HEADERS,
    ]
    encoded.extend(
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers.items()
    )
    return encoded
