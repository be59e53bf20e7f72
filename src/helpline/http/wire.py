"""The wire format of the Help Webservice: request and response bodies.

Field names are the vendor's (camelCase). A body that does not match raises
``MalformedBody`` naming the offending field path, the way the vendor's clients
expect to read it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

import msgspec

from helpline.http.errors import MalformedBody

# Requests. Unknown top-level fields are found and reported by ``decode``.


class CreateTicketRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    subject: str | None = None
    body: str | None = None
    collaborators: list[str | None] | None = None
    serial_numbers: list[str | None] | None = None
    product_type: str | None = None
    service_type: str | None = None
    console_access_granted: bool | None = None


# The integer formats of the vendor's schema, enforced: a value outside one is a 400.
Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class OpenTicketsRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    page_number: Int32 | None = None


class OpenTicketsV2Request(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    start_time_ms: Int64 | None = None
    end_time_ms: Int64 | None = None


class ShippingAddress(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    return_address_street: str | None = None
    return_address_city: str | None = None
    return_address_state: str | None = None
    return_address_postal_code: str | None = None
    return_address_country: str | None = None


class RmaRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    contact_name: str | None = None
    contact_phone_number: str | None = None
    device_name: str | None = None
    problem: str | None = None
    return_shipping_address: ShippingAddress | None = None
    serial_number: str | None = None


class FeedbackRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    feedback: str | None = None


# Responses: every property of the operation's schema, null where it does not apply,
# and ``msg`` only on a 400, with the vendor's wording.


class Answer(msgspec.Struct, rename="camel"):
    """The properties every operation's response shares."""

    error: bool | None = None
    error_msg: str | None = None
    warning_msg: str | None = None
    msg: str | msgspec.UnsetType = msgspec.UNSET


class TicketAnswer(Answer, rename="camel"):
    """``Help_CreateTicketWSResponse`` and ``Help_ProcessRMAWSResponse``."""

    success: bool | None = None
    ticket_id: int | None = None
    failure_reason: str | None = None


class FeedbackAnswer(Answer, rename="camel"):
    """``Help_SendFeedbackWSResponse``."""

    success: bool | None = None
    failure_reason: str | None = None


# Only scalars, so never part of a reference cycle: untracked by the garbage
# collector, which a listing of 2,000 of them would otherwise set off.
class TicketInformation(msgspec.Struct, rename="camel", gc=False):
    id: int
    created_at: str
    status: str
    subject: str | None


class OpenTicketsAnswer(Answer, rename="camel"):
    """``Help_GetOpenTicketsWSResponse`` (``hasNexPage`` is the vendor's spelling)."""

    current_page: int | None = None
    has_nex_page: bool | None = None
    total_tickets: int | None = None
    tickets: list[TicketInformation] | None = None


# The tickets of a listing, or their JSON when an answer lists them twice.
TicketList = list[TicketInformation] | msgspec.Raw


class OpenTicketsV2Answer(Answer, rename="camel"):
    """``Help_GetOpenTicketsV2WSResponse``."""

    tickets: TicketList | None = None
    user_tickets: TicketList | None = None


AnswerT = TypeVar("AnswerT", bound=Answer)
RequestT = TypeVar("RequestT", bound=msgspec.Struct)

_encoder = msgspec.json.Encoder()
_MSGSPEC_PATH = re.compile(r"^(?P<problem>.*?)(?: - at `\$(?P<path>.*)`)?$", re.DOTALL)


def encode(answer: Answer) -> bytes:
    return _encoder.encode(answer)


def encoded_once(value: Any) -> msgspec.Raw:
    """``value``'s JSON, for an answer that carries it twice and so need not
    encode it twice."""
    return msgspec.Raw(_encoder.encode(value))


def failed(
    kind: type[AnswerT],
    error_msg: str,
    *,
    failure_reason: str | None = None,
    msg: str | msgspec.UnsetType = msgspec.UNSET,
) -> AnswerT:
    """An answer of ``kind`` saying the operation failed, every other field null."""
    fields: dict[str, Any] = {"error": True, "error_msg": error_msg, "msg": msg}
    if "success" in kind.__struct_fields__:
        fields["success"] = False
    if "failure_reason" in kind.__struct_fields__:
        fields["failure_reason"] = failure_reason
    return kind(**fields)


def decode(body: bytes, kind: type[RequestT]) -> tuple[RequestT, list[str]]:
    """The request and the names of any top-level fields it carried that are not ours.

    Unknown fields are ignored rather than refused, so that a client built for a
    newer revision of the vendor's API keeps working.
    """
    try:
        return msgspec.json.decode(body, type=kind), []
    except msgspec.DecodeError as error:
        if "unknown field" not in str(error):
            raise _malformed(error) from None
    except RecursionError:
        raise MalformedBody("the request body nests too deeply") from None

    # Slow path, only for bodies that carry fields we do not know.
    try:
        return _decode_ignoring_unknown(body, kind)
    except RecursionError:
        raise MalformedBody("the request body nests too deeply") from None


def _decode_ignoring_unknown(
    body: bytes, kind: type[RequestT]
) -> tuple[RequestT, list[str]]:
    try:
        fields = msgspec.json.decode(body)
        unknown: list[str] = []
        known = _known_only(fields, kind, path="", unknown=unknown)
        request = msgspec.convert(known, type=kind, strict=True)
    except msgspec.DecodeError as error:
        raise _malformed(error) from None
    return request, sorted(unknown)


def _known_only(value: Any, kind: Any, *, path: str, unknown: list[str]) -> Any:
    """``value`` without the object keys that ``kind`` (a Struct, or an optional
    one) does not declare, at any depth; their paths are added to ``unknown``."""
    struct = _struct_type(kind)
    if struct is None or not isinstance(value, dict):
        return value  # msgspec.convert reports any type mismatch with its path
    declared = {field.encode_name: field for field in msgspec.structs.fields(struct)}
    kept = {}
    for name, item in value.items():
        field = declared.get(name)
        if field is None:
            unknown.append(f"{path}{name}")
            continue
        kept[name] = _known_only(
            item, field.type, path=f"{path}{name}.", unknown=unknown
        )
    return kept


def _struct_type(kind: Any) -> type[msgspec.Struct] | None:
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        return kind
    for member in getattr(kind, "__args__", ()):  # ``Struct | None``
        if isinstance(member, type) and issubclass(member, msgspec.Struct):
            return member
    return None


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
        return MalformedBody(f"{path}: {problem}")
    return MalformedBody(f"the request body is not valid JSON: {text}")


_TYPE_WORDS = {
    "`str | null`": "a string or null",
    "`str`": "a string",
    "`array | null`": "an array or null",
    "`array`": "an array",
    "`bool | null`": "a boolean or null",
    "`int | null`": "an integer or null",
    "`object | null`": "a JSON object or null",
    "`object`": "a JSON object",
    "`int`": "an integer",
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
