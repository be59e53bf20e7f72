"""One authenticated API call: who made it, when, and how to read its body.

The dispatcher in ``app`` builds a ``Call`` after authentication and rate limiting;
each operation's handler takes it from there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from helpline.config import Settings
from helpline.domain.clock import now_ms
from helpline.domain.idempotency import IdempotencyClaim, check_idempotency_key
from helpline.domain.keys import ApiKey
from helpline.domain.tickets import Submitter
from helpline.http import wire
from helpline.http.errors import ApiError
from helpline.storage.store import TicketStore

Receive = Callable[[], Awaitable[dict[str, Any]]]
RequestT = TypeVar("RequestT", bound=msgspec.Struct)


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


@dataclass(slots=True)
class Call:
    request: Request
    key: ApiKey
    settings: Settings
    store: TicketStore
    now_ms: int = field(default_factory=now_ms)
    idempotency_key: str | None = None

    @classmethod
    def start(
        cls, request: Request, key: ApiKey, *, settings: Settings, store: TicketStore
    ) -> Call:
        """Raises ``ApiError`` (400) for a malformed ``Idempotency-Key`` header."""
        return cls(
            request,
            key,
            settings,
            store,
            idempotency_key=_idempotency_key(request.headers),
        )

    @property
    def submitter(self) -> Submitter:
        return Submitter(self.key.organization_id, self.key.id, self.key.user_email)

    def claim(self, fingerprint: Callable[[], str]) -> IdempotencyClaim | None:
        """The caller's idempotency claim, if it sent a key, on a request with the
        fingerprint ``fingerprint()`` (computed only then)."""
        if self.idempotency_key is None:
            return None
        return IdempotencyClaim(self.idempotency_key, fingerprint())

    async def json(
        self, kind: type[RequestT], *, empty_means_defaults: bool = False
    ) -> tuple[RequestT, list[str]]:
        """The body decoded as ``kind``, with warnings for the fields it ignored.

        With ``empty_means_defaults`` (for requests whose fields are all optional),
        an empty body sent as JSON or with no Content-Type at all stands for ``{}``.

        Raises ``ApiError`` for a body that is not JSON (415), too large (413), or
        that does not match ``kind`` (400).
        """
        content_type = self.request.headers.get("content-type")
        untyped_may_be_empty = empty_means_defaults and content_type is None
        if not untyped_may_be_empty:
            require_json(content_type)
        body = await read_body(self.request, limit=self.settings.max_body_bytes)
        if empty_means_defaults and not body.strip():
            body = b"{}"
        elif untyped_may_be_empty:
            require_json(content_type)  # a body with something in it needs its type
        decoded, unknown = wire.decode(body, kind)
        return decoded, wire.field_warnings(unknown)


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"The request body is larger than the limit of {limit} bytes; "
        "send a shorter subject or body.",
    )


async def read_body(request: Request, *, limit: int) -> bytes:
    """The whole body, refused once it passes ``limit`` bytes.

    A declared length over the limit is refused before anything is read; an
    undeclared one is counted while reading.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)

    chunks: list[bytes] = []
    size = 0
    async for chunk in body_chunks(request):
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def body_chunks(request: Request) -> AsyncIterator[bytes]:
    """The body as it arrives; raises ``ApiError`` (400) if the client goes away."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ApiError(400, "The client disconnected before sending the body.")
        chunk: bytes = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def require_json(content_type: str | None) -> None:
    media_type, parameters = parse_media_type(content_type)
    is_json = media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )
    charset = parameters.get("charset", "").lower()
    if not is_json or charset not in ("", "utf-8", "utf8"):
        shown = (content_type or "none")[:100]
        raise ApiError(
            415,
            f"Unsupported Content-Type {shown!r}: send the body as JSON with "
            "Content-Type: application/json (UTF-8).",
        )


def parse_media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """The lower-cased media type and its parameters (names lower-cased)."""
    media_type, _, rest = (content_type or "").partition(";")
    parameters = {}
    for parameter in rest.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip():
            parameters[name.strip().lower()] = value.strip().strip('"')
    return media_type.strip().lower(), parameters


def _idempotency_key(headers: dict[str, str]) -> str | None:
    raw = headers.get("idempotency-key")
    if raw is None:
        return None
    try:
        return check_idempotency_key(raw.strip())
    except ValueError as problem:
        raise ApiError(400, f"Invalid Idempotency-Key header: {problem}.") from None
