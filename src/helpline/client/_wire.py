"""The wire format of ``POST /api/help/ticket``, and nothing about sending it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import msgspec

from helpline.client.errors import HelpApiError, HelpAuthError, HelpResponseError

TICKET_PATH = "/api/help/ticket"
REPLAYED_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True, slots=True)
class TicketResult:
    """What the server said about one request to open a ticket.

    ``success`` true with a ``ticket_id`` means the ticket exists. ``success``
    false is a domain failure (an invalid collaborator address, say) explained by
    ``failure_reason`` and ``error_msg``; nothing was opened. ``warning_msg`` may
    accompany either. ``replayed`` is true when the server answered from an
    earlier request with the same idempotency key instead of opening a ticket.
    """

    success: bool | None
    ticket_id: int | None
    failure_reason: str | None
    error: bool | None
    error_msg: str | None
    warning_msg: str | None
    replayed: bool


class _TicketRequest(msgspec.Struct, rename="camel", omit_defaults=True):
    subject: str | None = None
    body: str | None = None
    collaborators: list[str] | None = None
    serial_numbers: list[str] | None = None
    product_type: str | None = None
    service_type: str | None = None
    console_access_granted: bool | None = None


class _Envelope(msgspec.Struct, rename="camel"):
    success: bool | None = None
    ticket_id: int | None = None
    failure_reason: str | None = None
    error: bool | None = None
    error_msg: str | None = None
    warning_msg: str | None = None
    msg: str | None = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)


def encode_ticket_request(
    *,
    subject: str | None,
    body: str | None,
    collaborators: Sequence[str] | None,
    serial_numbers: Sequence[str] | None,
    product_type: str | None,
    service_type: str | None,
    console_access_granted: bool | None,
) -> bytes:
    """Give the JSON request body, with wire names and without the ``None`` fields.

    Raises ``TypeError`` when a list field is given a single string, which would
    otherwise be sent as one entry per character.
    """
    request = _TicketRequest(
        subject=subject,
        body=body,
        collaborators=_as_list("collaborators", collaborators),
        serial_numbers=_as_list("serial_numbers", serial_numbers),
        product_type=product_type,
        service_type=service_type,
        console_access_granted=console_access_granted,
    )
    return msgspec.json.encode(request)


def is_retryable_status(status: int) -> bool:
    """Whether an answer with this status may succeed if the request is repeated."""
    return status == httpx.codes.TOO_MANY_REQUESTS or status >= 500


def read_ticket_response(response: httpx.Response) -> TicketResult:
    """Turn a final (not retryable) answer into a result.

    Raises ``HelpAuthError`` for 401 and 403, ``HelpApiError`` for any other
    status outside 2xx, and ``HelpResponseError`` when a 2xx body is not the
    ticket envelope.
    """
    if not response.is_success:
        raise _api_error(response)

    try:
        envelope = _envelope_decoder.decode(response.content)
    except msgspec.DecodeError as problem:
        reason = f"a body that is not the ticket envelope ({problem})"
        raise HelpResponseError(response.status_code, reason) from None

    return TicketResult(
        success=envelope.success,
        ticket_id=envelope.ticket_id,
        failure_reason=envelope.failure_reason,
        error=envelope.error,
        error_msg=envelope.error_msg,
        warning_msg=envelope.warning_msg,
        replayed=response.headers.get(REPLAYED_HEADER, "").lower() == "true",
    )


def _api_error(response: httpx.Response) -> HelpApiError:
    envelope = _lenient_envelope(response.content)
    error_type = HelpAuthError if response.status_code in {401, 403} else HelpApiError
    return error_type(
        response.status_code,
        msg=envelope.msg,
        error_msg=envelope.error_msg,
        failure_reason=envelope.failure_reason,
        error=envelope.error,
    )


def _lenient_envelope(content: bytes) -> _Envelope:
    # An error page from a proxy or load balancer is rarely JSON; the status alone
    # still tells the caller what went wrong, so an unreadable body is not an error.
    try:
        return _envelope_decoder.decode(content)
    except msgspec.DecodeError:
        return _Envelope()


def _as_list(field: str, values: Sequence[str] | None) -> list[str] | None:
    if isinstance(values, str):
        message = f"{field} takes a list of strings, not a single string"
        raise TypeError(message)

    return None if values is None else list(values)
