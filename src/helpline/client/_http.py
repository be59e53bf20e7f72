"""Sending ticket requests over HTTP, with retries that cannot open a ticket twice."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Generator, Sequence
from types import TracebackType
from typing import Self

import httpx

from helpline.client._retry import RetryPolicy, RetrySchedule
from helpline.client._wire import (
    TICKET_PATH,
    TicketResult,
    encode_ticket_request,
    is_retryable_status,
    read_ticket_response,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
_DEFAULT_HEADERS = {"User-Agent": "helpline-client", "Accept": "application/json"}


class _ApiKeyAuth(httpx.Auth):
    """Adds the Rhombus API-token headers to each request.

    Kept out of the client's default headers so that the key is not on display
    wherever those headers are printed.
    """

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["x-auth-apikey"] = self._api_key
        request.headers["x-auth-scheme"] = "api-token"
        yield request

    def __repr__(self) -> str:
        return "_ApiKeyAuth(api_key=<hidden>)"


class _ClientSettings:
    """Arguments shared by the sync and async clients, checked once."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        max_attempts: int,
        backoff_base: float,
        backoff_max: float,
    ) -> None:
        self.base_url = _checked_base_url(base_url)
        self.auth = _ApiKeyAuth(_checked_header_value("api_key", api_key))
        self.timeout = _checked_timeout(timeout)
        self.policy = RetryPolicy(
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
        )

    def describe(self, class_name: str) -> str:
        return (
            f"{class_name}(base_url={str(self.base_url)!r}, "
            f"max_attempts={self.policy.max_attempts})"
        )


class HelpClient:
    """A client of ``POST /api/help/ticket`` on Helpline or the Rhombus service.

    Every call sends one freshly drawn ``Idempotency-Key`` (or the caller's) and
    repeats it unchanged on each retry, so a retried request never opens a second
    ticket. Answers 429 and 5xx and transport failures are retried up to
    ``max_attempts`` in all; ``timeout`` (seconds) bounds each attempt.

    ``transport`` replaces the network layer (for tests); ``sleep`` replaces
    ``time.sleep`` between attempts. Raises ``ValueError`` for a base URL that is
    not http(s), an API key that cannot be sent as a header, or a non-positive
    timeout.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = _ClientSettings(
            base_url,
            api_key,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
        )
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self._settings.base_url,
            auth=self._settings.auth,
            timeout=self._settings.timeout,
            headers=_DEFAULT_HEADERS,
            follow_redirects=False,
            transport=transport,
        )

    def open_ticket(
        self,
        *,
        subject: str | None = None,
        body: str | None = None,
        collaborators: Sequence[str] | None = None,
        serial_numbers: Sequence[str] | None = None,
        product_type: str | None = None,
        service_type: str | None = None,
        console_access_granted: bool | None = None,
        idempotency_key: str | None = None,
    ) -> TicketResult:
        """Open a support ticket; fields left ``None`` are not sent.

        A domain failure (``success`` false) is returned, not raised. Raises
        ``HelpAuthError`` or ``HelpApiError`` when the server refuses the request,
        ``HelpResponseError`` for an unreadable success body, and
        ``HelpRetriesExhausted`` when no attempt got a final answer.
        """
        content = encode_ticket_request(
            subject=subject,
            body=body,
            collaborators=collaborators,
            serial_numbers=serial_numbers,
            product_type=product_type,
            service_type=service_type,
            console_access_granted=console_access_granted,
        )
        key = _idempotency_key_or_new(idempotency_key)
        schedule = RetrySchedule(self._settings.policy, idempotency_key=key)

        while True:  # ends when the schedule raises HelpRetriesExhausted
            try:
                response = self._http.post(
                    TICKET_PATH, content=content, headers=_request_headers(key)
                )
            except httpx.TransportError as error:
                pause = schedule.after_transport_error(error)
            else:
                if not is_retryable_status(response.status_code):
                    return read_ticket_response(response)
                pause = schedule.after_retryable_response(response)

            self._sleep(pause)

    def close(self) -> None:
        """Close the pooled connections; the client cannot be used afterwards."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return self._settings.describe(type(self).__name__)


class AsyncHelpClient:
    """The asyncio twin of ``HelpClient``, with the same contract.

    ``sleep`` replaces ``asyncio.sleep`` between attempts.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._settings = _ClientSettings(
            base_url,
            api_key,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
        )
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=self._settings.base_url,
            auth=self._settings.auth,
            timeout=self._settings.timeout,
            headers=_DEFAULT_HEADERS,
            follow_redirects=False,
            transport=transport,
        )

    async def open_ticket(
        self,
        *,
        subject: str | None = None,
        body: str | None = None,
        collaborators: Sequence[str] | None = None,
        serial_numbers: Sequence[str] | None = None,
        product_type: str | None = None,
        service_type: str | None = None,
        console_access_granted: bool | None = None,
        idempotency_key: str | None = None,
    ) -> TicketResult:
        """Open a support ticket; see ``HelpClient.open_ticket`` for the contract."""
        content = encode_ticket_request(
            subject=subject,
            body=body,
            collaborators=collaborators,
            serial_numbers=serial_numbers,
            product_type=product_type,
            service_type=service_type,
            console_access_granted=console_access_granted,
        )
        key = _idempotency_key_or_new(idempotency_key)
        schedule = RetrySchedule(self._settings.policy, idempotency_key=key)

        while True:  # ends when the schedule raises HelpRetriesExhausted
            try:
                response = await self._http.post(
                    TICKET_PATH, content=content, headers=_request_headers(key)
                )
            except httpx.TransportError as error:
                pause = schedule.after_transport_error(error)
            else:
                if not is_retryable_status(response.status_code):
                    return read_ticket_response(response)
                pause = schedule.after_retryable_response(response)

            await self._sleep(pause)

    async def aclose(self) -> None:
        """Close the pooled connections; the client cannot be used afterwards."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return self._settings.describe(type(self).__name__)


def new_idempotency_key() -> str:
    """Draw a random key that identifies one logical request to open a ticket."""
    return uuid.uuid4().hex


def _idempotency_key_or_new(idempotency_key: str | None) -> str:
    if idempotency_key is None:
        return new_idempotency_key()

    return _checked_header_value("idempotency_key", idempotency_key)


def _request_headers(idempotency_key: str) -> dict[str, str]:
    return {"Content-Type": "application/json", IDEMPOTENCY_HEADER: idempotency_key}


def _checked_base_url(base_url: str) -> httpx.URL:
    url = httpx.URL(base_url)
    if url.scheme not in {"http", "https"} or not url.host:
        # The URL stays out of the message: it may carry a password in its userinfo.
        message = "base_url must be an http:// or https:// URL with a host"
        raise ValueError(message)

    return url


def _checked_header_value(name: str, value: str) -> str:
    # A header value with spaces, control characters or non-ASCII text would fail
    # deep inside the HTTP library, once per retry; refuse it here instead. The
    # value itself stays out of the message because it may be a secret.
    if not value or not value.isascii() or not value.isprintable() or " " in value:
        message = f"{name} must be non-empty printable ASCII without spaces"
        raise ValueError(message)

    return value


def _checked_timeout(timeout: float) -> httpx.Timeout:
    if not timeout > 0:
        message = f"timeout must be a positive number of seconds, not {timeout!r}"
        raise ValueError(message)

    return httpx.Timeout(timeout)
