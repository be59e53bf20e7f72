"""The console's HTTP plumbing: a request read once from the ASGI scope, forms,
cookies, and responses sent with the headers every console answer carries.

No framework: a response is a status, headers and either bytes or a stream of
chunks, and ``send_response`` is the one place that writes it to the socket.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from helpline.storage.console import ConsoleSession

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

HTML = "text/html; charset=utf-8"
FORM_TYPE = "application/x-www-form-urlencoded"
# A reply of 10,000 characters, each percent-encoded from up to 4 UTF-8 bytes,
# fits with room to spare.
MAX_FORM_BYTES = 256 * 1024
_MAX_FORM_FIELDS = 20
_MAX_REQUEST_ID_LENGTH = 128
# No script, no plugin, no framing; styles and images only from the console.
PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# A downloaded file, should a browser ever render it, runs nothing.
FILE_POLICY = "default-src 'none'; sandbox"
_SAFE_LOCATION = re.compile(r"/console(/[A-Za-z0-9_./-]*)?")


class PageError(Exception):
    """A request the console answers with an error page: ``status`` and a
    ``message`` that tells the agent what to do next."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


class SignInNeeded(Exception):
    """The page needs a live session and the request has none."""


@dataclass(slots=True)
class ConsoleRequest:
    """What the console reads of one HTTP request.

    ``headers`` have lower-case names, repeated ones joined by ", ". ``session``
    is set once the request's session has been looked up.
    """

    method: str
    path: str
    query_string: bytes
    headers: dict[str, str]
    cookies: dict[str, str]
    scheme: str
    peer: str | None
    receive: Receive
    request_id: str
    session: ConsoleSession | None = None

    @classmethod
    def from_scope(cls, scope: Scope, receive: Receive) -> ConsoleRequest:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            joiner = "; " if name == "cookie" else ", "
            headers[name] = headers[name] + joiner + value if name in headers else value
        client = scope.get("client")
        return cls(
            method=scope["method"],
            path=scope["path"],
            query_string=scope.get("query_string", b""),
            headers=headers,
            cookies=parse_cookies(headers.get("cookie", "")),
            scheme=scope.get("scheme", "http"),
            peer=client[0] if client else None,
            receive=receive,
            request_id=_request_id(headers.get("x-request-id")),
        )


def parse_cookies(header: str) -> dict[str, str]:
    """The cookies of a ``Cookie`` header; the first of a repeated name wins,
    as browsers send the most specific path first."""
    cookies: dict[str, str] = {}
    for pair in header.split(";"):
        name, sign, value = pair.strip().partition("=")
        if sign and name:
            cookies.setdefault(name, value.strip().strip('"'))
    return cookies


def parse_pairs(raw: bytes) -> list[tuple[str, str]]:
    """The name/value pairs of a query string or form body; raises ``PageError``
    (400) for bytes that are not percent-encoded UTF-8 or too many fields."""
    try:
        return parse_qsl(
            raw.decode("ascii"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=_MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise PageError(
            400, "The request is not a form this console sent; reload the page."
        ) from None


async def read_form(request: ConsoleRequest) -> dict[str, str]:
    """The fields of a form POST (the first of a repeated name).

    Raises ``PageError``: 415 for a body that is not URL-encoded, 413 past
    ``MAX_FORM_BYTES``, 400 for one that does not decode.
    """
    media_type = request.headers.get("content-type", "").partition(";")[0]
    media_type = media_type.strip().lower()
    body = await _read_body(request, limit=MAX_FORM_BYTES)
    # An empty POST without a type is an empty form, which the CSRF check refuses.
    if media_type != FORM_TYPE and (body or media_type):
        raise PageError(415, "Send the form from the console's own page.")
    fields: dict[str, str] = {}
    for name, value in parse_pairs(body):
        fields.setdefault(name, value)
    return fields


async def _read_body(request: ConsoleRequest, *, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise PageError(400, "The browser went away before sending the form.")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _too_large() -> PageError:
    return PageError(413, "The form is too large; shorten the text and send again.")


@dataclass(slots=True)
class Response:
    """An answer: ``body``, or ``chunks`` of a stream ``length`` bytes long."""

    status: int
    body: bytes = b""
    content_type: str = HTML
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunks: AsyncGenerator[bytes, None] | None = None
    length: int | None = None
    cache_control: str = "no-store"
    policy: str = PAGE_POLICY


def redirect(location: str, *, cookies: tuple[str, ...] = ()) -> Response:
    """A 303 to a page of the console (post/redirect/get); ``cookies`` are
    ``Set-Cookie`` values. Refuses any other location, so no caller can be made
    into an open redirect."""
    if not _SAFE_LOCATION.fullmatch(location):
        raise ValueError(f"not a console location: {location[:80]!r}")
    headers = [("location", location), *(("set-cookie", c) for c in cookies)]
    return Response(303, headers=headers)


def cookie(
    name: str, value: str, *, path: str, max_age_s: int, secure: bool, same_site: str
) -> str:
    """A ``Set-Cookie`` value no script can read; ``max_age_s`` 0 expires it."""
    parts = [
        f"{name}={value}",
        f"Path={path}",
        f"Max-Age={max_age_s}",
        "HttpOnly",
        f"SameSite={same_site}",
    ]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


_STANDARD_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


async def send_response(response: Response, send: Send, *, request_id: str) -> None:
    """Write ``response`` with the headers every console answer carries."""
    length = len(response.body) if response.chunks is None else response.length
    headers = [
        (b"content-type", response.content_type.encode()),
        (b"cache-control", response.cache_control.encode()),
        (b"content-security-policy", response.policy.encode()),
        (b"x-request-id", request_id.encode("latin-1")),
        *_STANDARD_HEADERS,
    ]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    headers.extend(
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers
    )
    await send(
        {"type": "http.response.start", "status": response.status, "headers": headers}
    )
    if response.chunks is None:
        await send({"type": "http.response.body", "body": response.body})
        return
    try:
        async for chunk in response.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        # A browser that goes away mid-download must not leave the file open.
        await response.chunks.aclose()


def _request_id(given: str | None) -> str:
    if given and len(given) <= _MAX_REQUEST_ID_LENGTH and given.isprintable():
        return given
    return secrets.token_hex(16)
