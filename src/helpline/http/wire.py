"""The wire format of the Help Webservice: request and response bodies.

Field names are the vendor's (camelCase). A body that does not match raises
``MalformedBody`` naming the offending field path, the way the vendor's clients
expect to read it.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from helpline.http.errors import MalformedBody


class CreateTicketRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    subject: str | None = None
    body: str | None = None
    collaborators: list[str | None] | None = None
    serial_numbers: list[str | None] | None = None
    product_type: str | None = None
    service_type: str | None = None
    console_access_granted: bool | None = None


class Envelope(msgspec.Struct, rename="camel"):
    """``Help_CreateTicketWSResponse``: every field present, null where it does not
    apply; ``msg`` only on a 400, with the vendor's wording."""

    success: bool | None = None
    ticket_id: int | None = None
    failure_reason: str | None = None
    error: bool | None = None
    error_msg: str | None = None
    warning_msg: str | None = None
    msg: str | msgspec.UnsetType = msgspec.UNSET


_encoder = msgspec.json.Encoder()
# The values of unknown fields are kept raw: never parsed, whatever they hold.
_decode_fields = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_MSGSPEC_PATH = re.compile(r"^(?P<problem>.*?)(?: - at `\$(?P<path>.*)`)?$", re.DOTALL)
_KNOWN_FIELDS = frozenset(CreateTicketRequest.__struct_encode_fields__)


def encode(envelope: Envelope) -> bytes:
    return _encoder.encode(envelope)


def decode_create_ticket(body: bytes) -> tuple[CreateTicketRequest, list[str]]:
    """The request and the names of any fields it carried that are not ours.

    Unknown fields are ignored rather than refused, so that a client built for a
    newer revision of the vendor's API keeps working.
    """
    try:
        return msgspec.json.decode(body, type=CreateTicketRequest), []
    except msgspec.DecodeError as error:
        if "unknown field" not in str(error):
            raise _malformed(error) from None
    except RecursionError:
        raise MalformedBody("the request body nests too deeply") from None

    # Slow path, only for bodies that carry fields we do not know.
    try:
        return _decode_ignoring_unknown(body)
    except RecursionError:
        raise MalformedBody("the request body nests too deeply") from None


def _decode_ignoring_unknown(body: bytes) -> tuple[CreateTicketRequest, list[str]]:
    try:
        fields = _decode_fields(body)
        known = {
            name: msgspec.json.decode(value)
            for name, value in fields.items()
            if name in _KNOWN_FIELDS
        }
        request = msgspec.convert(known, type=CreateTicketRequest, strict=True)
    except msgspec.DecodeError as error:
        raise _malformed(error) from None
    unknown = sorted(name for name in fields if name not in _KNOWN_FIELDS)
    return request, unknown


def _malformed(error: msgspec.DecodeError) -> MalformedBody:
    """Translate msgspec's message into one that names the field path plainly."""
    text = str(error)
    if isinstance(error, msgspec.ValidationError):
        match = _MSGSPEC_PATH.match(text)
        assert match is not None  # noqa: S101
        path = (match.group("path") or "").lstrip(".")
        problem = _plain_types(match.group("problem"))
        if not path:
            return MalformedBody(f"the request body must be a JSON object: {problem}")
        return MalformedBody(f"{path}: {problem}", path=path)
    return MalformedBody(f"the request body is not valid JSON: {text}")


_TYPE_WORDS = {
    "`str | null`": "a string or null",
    "`str`": "a string",
    "`array | null`": "an array or null",
    "`array`": "an array",
    "`bool | null`": "a boolean or null",
    "`object`": "a JSON object",
    "`int`": "a number",
    "`float`": "a number",
    "`bool`": "a boolean",
    "`null`": "null",
}


def _plain_types(problem: str) -> str:
    for code, words in _TYPE_WORDS.items():
        problem = problem.replace(code, words)
    return problem[:1].lower() + problem[1:]


def field_warnings(unknown: list[str]) -> list[str]:
    return [f"{name}: unknown field, ignored" for name in unknown]


def plain(value: Any) -> bytes:
    """Encode any JSON-able value (health answers, the OpenAPI document)."""
    return _encoder.encode(value)
