"""Exceptions raised by the Helpline client.

A domain failure (the server answered HTTP 200 with ``success: false``) is not an
exception: it comes back as a ``TicketResult``. Everything below means that no
ticket result could be read at all.

    HelpClientError             base of every error this client raises
    ├── HelpApiError            the server refused the request with a status that
    │   │                       retrying will not change (400, 404, 405, 413, 415,
    │   │                       any other 4xx but 429, or a 3xx redirect)
    │   └── HelpAuthError       401 or 403: the API key is missing, wrong, revoked
    │                           or not allowed to open tickets
    ├── HelpResponseError       a 2xx answer whose body is not the ticket envelope
    └── HelpRetriesExhausted    every attempt met a 429, a 5xx or a transport
                                failure (refused connection, timeout, reset);
                                the last transport failure is chained as
                                ``__cause__``

Invalid arguments to the client itself (a URL that is not http or https, an API
key with whitespace in it) raise ``ValueError`` before anything is sent.

No message or attribute here ever holds the API key.
"""

from __future__ import annotations


class HelpClientError(Exception):
    """Base of every error the Helpline client raises."""


class HelpApiError(HelpClientError):
    """The server answered with a status that retrying will not change.

    The envelope fields are copied from the response body when it carried them;
    any field the server left out, or a body that was not JSON, gives ``None``.
    ``msg`` is the short explanation servers send with a 400.
    """

    def __init__(
        self,
        status: int,
        *,
        msg: str | None = None,
        error_msg: str | None = None,
        failure_reason: str | None = None,
        error: bool | None = None,
    ) -> None:
        self.status = status
        self.msg = msg
        self.error_msg = error_msg
        self.failure_reason = failure_reason
        self.error = error
        super().__init__(self._describe())

    def _describe(self) -> str:
        explanation = self.msg or self.error_msg or self.failure_reason
        if explanation is None:
            return f"the server answered HTTP {self.status}"
        return f"the server answered HTTP {self.status}: {explanation}"


class HelpAuthError(HelpApiError):
    """The server rejected the API key (HTTP 401) or its permissions (HTTP 403)."""


class HelpResponseError(HelpClientError):
    """A successful HTTP status came with a body that is not the ticket envelope.

    This usually means the base URL points at something other than a Rhombus Help
    Webservice, such as a proxy's HTML page.
    """

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"the server answered HTTP {status} with {reason}")


class HelpRetriesExhausted(HelpClientError):
    """Every attempt of one call failed in a way that is normally temporary.

    ``last_status`` is the HTTP status of the final attempt, or ``None`` when the
    final attempt got no answer; in that case the transport failure is chained as
    ``__cause__``. Every attempt used the same idempotency key, so calling again
    with ``idempotency_key`` set to ``self.idempotency_key`` cannot open a second
    ticket.
    """

    def __init__(
        self,
        *,
        attempts: int,
        idempotency_key: str,
        last_status: int | None,
        last_failure: str,
    ) -> None:
        self.attempts = attempts
        self.idempotency_key = idempotency_key
        self.last_status = last_status
        super().__init__(f"gave up after {attempts} attempt(s); last: {last_failure}")
