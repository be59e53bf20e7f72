"""The Help Webservice over ASGI: routing, request reading, and the one place where
results and failures become status codes and response envelopes.

The application is a bare ASGI callable rather than a framework route: it reads the
body itself, so a size limit is enforced while reading, and the hot path carries no
machinery it does not use.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog

from helpline.config import Settings
from helpline.domain.failures import DomainFailure, FailureReason
from helpline.domain.idempotency import IdempotencyClaim, check_idempotency_key
from helpline.domain.keys import ApiKey, Permission
from helpline.domain.tickets import prepare_ticket
from helpline.http import wire
from helpline.http.auth import authenticate
from helpline.http.errors import BAD_STRUCTURE, ApiError, MalformedBody
from helpline.http.openapi import openapi_document
from helpline.http.ratelimit import RateLimiter
from helpline.storage.errors import Overloaded, StorageUnavailable
from helpline.storage.records import Created, CreateOutcome, KeyReused, Replayed
from helpline.storage.store import TicketStore

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

log = structlog.get_logger("helpline.http")
REPLAYED_HEADER = "idempotent-replayed"
_MAX_REQUEST_ID_LENGTH = 128
_request_ids = random.Random()  # noqa: S311 - ids, not secrets


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    receive: Receive
    request_id: str
    api_key: ApiKey | None = None


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


Handler = Callable[[Request], Awaitable[Response]]


class HelpApi:
    """The ASGI application. Its lifespan starts and closes the store."""

    def __init__(self, *, settings: Settings, store: TicketStore) -> None:
        self._settings = settings
        self._store = store
        self._rate_limiter = RateLimiter(
            rate=settings.rate_limit_per_second, burst=settings.rate_limit_burst
        )
        self._openapi = wire.plain(openapi_document(settings))
        self._routes: dict[str, dict[str, Handler]] = {
            "/api/help/ticket": {"POST": self._create_ticket},
            "/api/openapi/public.json": {"GET": self._serve_openapi},
            "/healthz": {"GET": self._health},
            "/readyz": {"GET": self._readiness},
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._serve_http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self._store.start()
                except Exception as error:
                    log.exception("startup_failed")
                    await send(
                        {"type": "lifespan.startup.failed", "message": str(error)}
                    )
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._store.close()
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
        log.info(
            "request",
            request_id=request.request_id,
            method=request.method,
            path=request.path,
            status=response.status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            organization=key.organization_name if key else None,
            key_prefix=key.prefix if key else None,
        )

    async def _respond(self, request: Request) -> Response:  # noqa: PLR0911
        """Route the request and map every outcome to its answer, in one place."""
        try:
            return await self._route(request)
        except DomainFailure as failure:
            return _envelope_response(
                200,
                wire.Envelope(
                    success=False,
                    failure_reason=failure.reason.value,
                    error=True,
                    error_msg=failure.detail,
                ),
            )
        except MalformedBody as problem:
            return _envelope_response(
                400, _error_envelope(problem.message, msg=BAD_STRUCTURE)
            )
        except ApiError as problem:
            msg = problem.message if problem.status == 400 else msgspec.UNSET
            response = _envelope_response(
                problem.status, _error_envelope(problem.message, msg=msg)
            )
            response.headers.update(problem.headers)
            return response
        except Overloaded:
            return _unavailable("Helpline is taking more tickets than it can store")
        except StorageUnavailable:
            return _unavailable("the ticket database is not available")
        except Exception:
            log.exception("unhandled_error", request_id=request.request_id)
            return _envelope_response(
                500,
                _error_envelope(
                    f"Internal error; nothing was stored. Quote request id "
                    f"{request.request_id} when reporting it."
                ),
            )

    async def _route(self, request: Request) -> Response:
        methods = self._routes.get(request.path)
        if methods is None:
            raise ApiError(
                404,
                f"No operation at {request.path[:200]}; see the "
                "API description at /api/openapi/public.json.",
            )
        handler = methods.get(request.method)
        if handler is None:
            allowed = ", ".join(sorted(methods))
            raise ApiError(
                405,
                f"{request.method} is not allowed here; use {allowed}.",
                headers={"allow": allowed},
            )
        return await handler(request)

    async def _create_ticket(self, request: Request) -> Response:
        key = await authenticate(
            request.headers,
            permission=Permission.CREATE_TICKETS,
            find_key=self._store.find_api_key,
        )
        request.api_key = key
        now_ms = int(time.time() * 1000)
        self._store.note_key_used(key.id, now_ms=now_ms)
        self._check_rate(key)
        idempotency_key = _idempotency_key(request.headers)
        body = await self._read_json_body(request)
        submission, unknown_fields = wire.decode_create_ticket(body)

        ticket = prepare_ticket(
            submission,
            rules=self._settings.ticket_rules,
            organization_id=key.organization_id,
            api_key_id=key.id,
            submitter_email=key.user_email,
            now_ms=now_ms,
        )
        notes = wire.field_warnings(unknown_fields) + list(ticket.warnings)
        warning_msg = "; ".join(notes) or None
        claim = None
        if idempotency_key is not None:
            claim = IdempotencyClaim(idempotency_key, ticket.fingerprint())

        outcome = await self._store.create_ticket(
            ticket, claim=claim, warning_msg=warning_msg
        )

        return _ticket_answer(outcome, warning_msg=warning_msg)

    def _check_rate(self, key: ApiKey) -> None:
        wait_seconds = self._rate_limiter.acquire(key.organization_id)
        if wait_seconds is not None:
            raise ApiError(
                429,
                f"Too many requests for organization {key.organization_name}; "
                f"retry after {wait_seconds} s.",
                headers={"retry-after": str(wait_seconds)},
            )

    async def _read_json_body(self, request: Request) -> bytes:
        """The whole body, refused early when too large or not JSON.

        A declared length over the limit is refused before anything is read; an
        undeclared one is counted while reading and refused once it passes.
        """
        _require_json(request.headers.get("content-type"))
        limit = self._settings.max_body_bytes
        too_large = ApiError(
            413,
            f"The request body is larger than the limit of {limit} bytes; "
            "send a shorter subject or body.",
        )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                raise ApiError(400, "The client disconnected before sending the body.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _serve_openapi(self, _request: Request) -> Response:
        return Response(200, self._openapi)

    async def _health(self, _request: Request) -> Response:
        return Response(200, wire.plain({"status": "ok"}))

    async def _readiness(self, _request: Request) -> Response:
        try:
            await self._store.ping()
        except StorageUnavailable:
            body = {"status": "unavailable", "database": "unreachable"}
            return Response(503, wire.plain(body))
        return Response(200, wire.plain({"status": "ready", "database": "ok"}))


def _ticket_answer(outcome: CreateOutcome, *, warning_msg: str | None) -> Response:
    """The answer to a create that reached storage: new, replayed, or refused."""
    match outcome:
        case Created(ticket_id):
            envelope = wire.Envelope(
                success=True, ticket_id=ticket_id, error=False, warning_msg=warning_msg
            )
            return _envelope_response(200, envelope)
        case Replayed(ticket_id, first_warning_msg):
            envelope = wire.Envelope(
                success=True,
                ticket_id=ticket_id,
                error=False,
                warning_msg=first_warning_msg,
            )
            response = _envelope_response(200, envelope)
            response.headers[REPLAYED_HEADER] = "true"
            return response
        case KeyReused(ticket_id):
            raise DomainFailure(
                FailureReason.IDEMPOTENCY_KEY_REUSED,
                "The Idempotency-Key was first used within the last 24 hours for a "
                f"different request (ticket {ticket_id}); send a new key with a new "
                "request.",
            )


def _require_json(content_type: str | None) -> None:
    media_type, _, parameters = (content_type or "").partition(";")
    media_type = media_type.strip().lower()
    is_json = media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )
    charset = ""
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    if not is_json or charset not in ("", "utf-8", "utf8"):
        shown = (content_type or "none")[:100]
        raise ApiError(
            415,
            f"Unsupported Content-Type {shown!r}: send the body as JSON with "
            "Content-Type: application/json (UTF-8).",
        )


def _idempotency_key(headers: dict[str, str]) -> str | None:
    raw = headers.get("idempotency-key")
    if raw is None:
        return None
    try:
        return check_idempotency_key(raw.strip())
    except ValueError as problem:
        raise ApiError(400, f"Invalid Idempotency-Key header: {problem}.") from None


def _request_id(given: str | None) -> str:
    if given and len(given) <= _MAX_REQUEST_ID_LENGTH and given.isprintable():
        return given
    # Unique is enough for a request id; unpredictable would cost a system call.
    return f"{_request_ids.getrandbits(128):032x}"


def _error_envelope(
    message: str, *, msg: str | msgspec.UnsetType = msgspec.UNSET
) -> wire.Envelope:
    return wire.Envelope(success=False, error=True, error_msg=message, msg=msg)


def _envelope_response(status: int, envelope: wire.Envelope) -> Response:
    return Response(status, wire.encode(envelope))


def _unavailable(reason: str) -> Response:
    response = _envelope_response(
        503, _error_envelope(f"Service unavailable: {reason}; retry shortly.")
    )
    response.headers["retry-after"] = "1"
    return response


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
