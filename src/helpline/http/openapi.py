"""Helpline's own OpenAPI description, served at ``/api/openapi/public.json``.

Each operation, its schemas and their property names, types, formats and
nullability follow the vendor's published description of the Help Webservice;
Helpline's additions (the error statuses, ``Idempotency-Key``, the replay and
request-id headers, the failure catalogue) are described beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from helpline import __version__
from helpline.config import Settings
from helpline.domain.failures import FailureReason
from helpline.domain.idempotency import MAX_IDEMPOTENCY_KEY_LENGTH
from helpline.http.errors import BAD_STRUCTURE

_JSON = "application/json"
_MULTIPART = "multipart/form-data"
Schema = dict[str, Any]


def _nullable(kind: str, description: str | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": kind, "nullable": True, **extra}
    if description:
        schema["description"] = description
    return schema


def _text(description: str | None = None, **extra: Any) -> Schema:
    return _nullable("string", description, **extra)


def _list_of(item: Schema, description: str) -> Schema:
    return _nullable("array", description, items=item)


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(description: str, properties: dict[str, Schema]) -> Schema:
    return {"type": "object", "description": description, "properties": properties}


_ANSWER_PROPERTIES: dict[str, Schema] = {
    "error": _nullable("boolean", "true when the operation did not succeed"),
    "errorMsg": _text("What went wrong and how to fix it"),
    "warningMsg": _text("What Helpline changed or ignored in the request"),
}


def _failure_reason(example: str) -> Schema:
    catalogue = "; ".join(reason.value for reason in FailureReason)
    return _text(
        f"Why the operation failed, from a stable catalogue: {catalogue}.",
        example=example,
    )


def _ticket_information() -> Schema:
    return _object(
        "A ticket as the open-ticket listings show it.",
        {
            "createdAt": _text(
                "When the ticket was opened (ISO 8601, UTC)",
                format="date-time",
                example="2026-12-03T10:30:00.000Z",
            ),
            "id": _nullable("integer", "The ticket's id", format="int32"),
            "status": _text("Open, Pending, Solved or Closed", example="Open"),
            "subject": _text("The ticket's subject"),
        },
    )


def _schemas() -> dict[str, Schema]:
    ticket_answer = _object(
        "The answer to an operation that opens a ticket.",
        {
            **_ANSWER_PROPERTIES,
            "failureReason": _failure_reason("Invalid email address"),
            "success": _nullable("boolean", "true when the ticket was stored"),
            "ticketId": _nullable(
                "integer", "The new ticket's id", format="int32", example=12345
            ),
        },
    )
    rma_answer = {
        **ticket_answer,
        "description": "The answer to a return merchandise authorization.",
        "properties": {
            **ticket_answer["properties"],
            "failureReason": _failure_reason("Invalid serial number"),
        },
    }
    return {
        "Help_CreateTicketWSRequest": _object(
            "A new support ticket.",
            {
                "body": _text("What happened, in full"),
                "collaborators": _list_of(
                    _text("An email address"), "Email addresses to keep informed"
                ),
                "consoleAccessGranted": _nullable(
                    "boolean", "Whether support may use the console to troubleshoot"
                ),
                "productType": _text("The product the ticket is about"),
                "serialNumbers": _list_of(
                    _text("A device serial number"), "The devices concerned"
                ),
                "serviceType": _text("The kind of service asked for"),
                "subject": _text("A one-line summary"),
            },
        ),
        "Help_CreateTicketWSResponse": ticket_answer,
        "Help_GetOpenTicketsWSRequest": _object(
            "Which page of open tickets to list.",
            {
                "pageNumber": _nullable(
                    "integer", "The page, from 1; null means 1", format="int32"
                )
            },
        ),
        "Help_GetOpenTicketsWSResponse": _object(
            "A page of the organization's open tickets, newest first.",
            {
                "currentPage": _nullable("integer", "This page", format="int32"),
                **_ANSWER_PROPERTIES,
                "hasNexPage": _nullable("boolean", "true when a later page exists"),
                "tickets": _list_of(_ref("Help_TicketInformation"), "This page"),
                "totalTickets": _nullable(
                    "integer", "Open tickets on all pages", format="int32"
                ),
            },
        ),
        "Help_GetOpenTicketsV2WSRequest": _object(
            "A window of creation times; a null bound is open-ended.",
            {
                "endTimeMs": _nullable(
                    "integer", "Latest creation time, ms since 1970", format="int64"
                ),
                "startTimeMs": _nullable(
                    "integer", "Earliest creation time, ms since 1970", format="int64"
                ),
            },
        ),
        "Help_GetOpenTicketsV2WSResponse": _object(
            "The organization's open tickets in the window, newest first, at most "
            "1000 in each list (warningMsg says when a list was cut).",
            {
                **_ANSWER_PROPERTIES,
                "tickets": _list_of(
                    _ref("Help_TicketInformation"), "The organization's open tickets"
                ),
                "userTickets": _list_of(
                    _ref("Help_TicketInformation"),
                    "Those of them opened by the caller's own user",
                ),
            },
        ),
        "Help_ProcessRMAWSRequest": _object(
            "A device to send back for repair or replacement.",
            {
                "contactName": _text("Who to contact about the return"),
                "contactPhoneNumber": _text(
                    "International phone number, stored as E.164",
                    example="+1-555-123-4567",
                ),
                "deviceName": _text("The device's name"),
                "problem": _text("What is wrong with the device (required)"),
                "returnShippingAddress": _ref("Help_ShippingAddress"),
                "serialNumber": _text("The device's serial number (required)"),
            },
        ),
        "Help_ProcessRMAWSResponse": rma_answer,
        "Help_SendFeedbackWSRequest": _object(
            "Feedback about the service.",
            {"feedback": _text("The feedback, up to 5000 characters")},
        ),
        "Help_SendFeedbackWSResponse": _object(
            "The answer to feedback.",
            {
                **_ANSWER_PROPERTIES,
                "failureReason": _failure_reason("Invalid feedback content"),
                "success": _nullable("boolean", "true when the feedback was stored"),
            },
        ),
        "Help_ShippingAddress": _object(
            "Where to send the device back; all but the state are required.",
            {
                "returnAddressCity": _text("City"),
                "returnAddressCountry": _text("Country"),
                "returnAddressPostalCode": _text("Postal code"),
                "returnAddressState": _text("State or province"),
                "returnAddressStreet": _text("Street and number"),
            },
        ),
        "Help_TicketInformation": _ticket_information(),
        "Helpline_TicketWithFileRequest": {
            "type": "object",
            "description": (
                "A ticket with at most one file: the part `request` holds the JSON "
                "of Help_CreateTicketWSRequest, the part `file` the file."
            ),
            "properties": {
                "request": {"type": "string", "description": "The ticket, as JSON"},
                "file": {"type": "string", "format": "binary"},
            },
            "required": ["request"],
        },
    }


@dataclass(frozen=True, slots=True)
class _Operation:
    path: str
    operation_id: str
    summary: str
    request: str
    answer: str
    permission: str
    media_type: str = _JSON
    replayable: bool = True


_OPERATIONS = (
    _Operation(
        "/api/help/ticket",
        "createTicket",
        "Open a support ticket",
        "Help_CreateTicketWSRequest",
        "Help_CreateTicketWSResponse",
        "tickets:create",
    ),
    _Operation(
        "/api/help/ticketWithFile",
        "createTicketWithFile",
        "Open a support ticket with one file",
        "Helpline_TicketWithFileRequest",
        "Help_CreateTicketWSResponse",
        "tickets:create",
        media_type=_MULTIPART,
    ),
    _Operation(
        "/api/help/openTickets",
        "getOpenTickets",
        "List the organization's open tickets, a page at a time",
        "Help_GetOpenTicketsWSRequest",
        "Help_GetOpenTicketsWSResponse",
        "tickets:read",
        replayable=False,
    ),
    _Operation(
        "/api/help/openTicketsV2",
        "getOpenTicketsV2",
        "List the organization's open tickets opened in a time window",
        "Help_GetOpenTicketsV2WSRequest",
        "Help_GetOpenTicketsV2WSResponse",
        "tickets:read",
        replayable=False,
    ),
    _Operation(
        "/api/help/rma",
        "processRMA",
        "Open a return merchandise authorization for a device",
        "Help_ProcessRMAWSRequest",
        "Help_ProcessRMAWSResponse",
        "tickets:create",
    ),
    _Operation(
        "/api/help/feedback",
        "sendFeedback",
        "Send feedback about the service",
        "Help_SendFeedbackWSRequest",
        "Help_SendFeedbackWSResponse",
        "feedback:create",
    ),
)


def _answer(
    description: str, schema: Schema, *headers: str, media: str = _JSON
) -> Schema:
    answer: Schema = {
        "description": description,
        "content": {media: {"schema": schema}},
        "headers": {"X-Request-Id": {"$ref": "#/components/headers/XRequestId"}},
    }
    for name in headers:
        ref = name.replace("-", "")
        answer["headers"][name] = {"$ref": f"#/components/headers/{ref}"}
    return answer


def _with_msg(answer: Schema) -> Schema:
    """The answer of a 400: the operation's answer and the vendor's ``msg``."""
    properties = {
        **answer["properties"],
        "msg": {"type": "string", "example": BAD_STRUCTURE},
    }
    return {**answer, "properties": properties, "required": ["msg"]}


def _path_item(operation: _Operation, schemas: dict[str, Schema]) -> Schema:
    answer = _ref(operation.answer)
    ok_headers = ("Idempotent-Replayed",) if operation.replayable else ()
    parameters = [
        {"$ref": "#/components/parameters/XAuthSchemeParam"},
        {"$ref": "#/components/parameters/XRequestIdParam"},
    ]
    if operation.replayable:
        parameters.insert(1, {"$ref": "#/components/parameters/IdempotencyKeyParam"})
    return {
        "post": {
            "operationId": operation.operation_id,
            "summary": operation.summary,
            "description": f"{operation.summary}. Needs the {operation.permission} "
            "permission.",
            "tags": ["Help Webservice"],
            "parameters": parameters,
            "requestBody": {
                "required": True,
                "content": {operation.media_type: {"schema": _ref(operation.request)}},
            },
            "responses": {
                "200": _answer(
                    "Done (error false), or refused for a reason in the body "
                    "(error true); a refused request stores nothing.",
                    answer,
                    *ok_headers,
                ),
                "400": _answer(
                    "The body is malformed or a field has the wrong type; errorMsg "
                    "names the field path.",
                    _with_msg(schemas[operation.answer]),
                ),
                "401": _answer(
                    "Missing or invalid x-auth-apikey or x-auth-scheme.", answer
                ),
                "403": _answer(
                    f"The key lacks the {operation.permission} permission.", answer
                ),
                "413": _answer("The body is over the size limit.", answer),
                "415": _answer(
                    f"The body is not sent as {operation.media_type}.", answer
                ),
                "429": _answer(
                    "The organization's rate limit is spent.", answer, "Retry-After"
                ),
                "500": _answer("An internal error; nothing was stored.", answer),
                "503": _answer(
                    "The database is unavailable or overloaded; nothing was stored.",
                    answer,
                    "Retry-After",
                ),
            },
        }
    }


def _components(schemas: dict[str, Schema]) -> Schema:
    return {
        "securitySchemes": {
            "ApiKeyAuth": {
                "description": "An API key made with `helpline keys create`.",
                "in": "header",
                "name": "x-auth-apikey",
                "type": "apiKey",
            }
        },
        "parameters": {
            "XAuthSchemeParam": {
                "description": "The authentication scheme: always api-token.",
                "example": "api-token",
                "in": "header",
                "name": "x-auth-scheme",
                "required": True,
                "schema": {
                    "type": "string",
                    "default": "api-token",
                    "maxLength": 9,
                    "minLength": 9,
                },
            },
            "IdempotencyKeyParam": {
                "description": (
                    "Makes retries safe: the same key from the same organization "
                    "within 24 hours returns the first response again instead of "
                    "doing the work twice."
                ),
                "in": "header",
                "name": "Idempotency-Key",
                "required": False,
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH,
                    "pattern": "^[!-~]+$",
                },
            },
            "XRequestIdParam": {
                "description": (
                    "Echoed in the response and the server's log line when it is "
                    "at most 128 printable characters; otherwise a new id is "
                    "generated."
                ),
                "in": "header",
                "name": "X-Request-Id",
                "required": False,
                "schema": {"type": "string"},
            },
        },
        "headers": {
            "XRequestId": {
                "description": "The request id: the one sent, or a generated one.",
                "schema": {"type": "string"},
            },
            "IdempotentReplayed": {
                "description": "true when this is the stored answer of a retry.",
                "schema": {"type": "string", "enum": ["true"]},
            },
            "RetryAfter": {
                "description": "Seconds to wait before retrying (at least 1).",
                "schema": {"type": "integer", "minimum": 1},
            },
        },
        "schemas": schemas,
    }


def openapi_document(settings: Settings) -> Schema:
    schemas = _schemas()
    return {
        "openapi": "3.0.1",
        "info": {
            "title": "Helpline Help Webservice",
            "version": __version__,
            "description": (
                "A self-hosted implementation of the Rhombus Help Webservice. "
                f"JSON bodies, and the non-file parts of a form, are limited to "
                f"{settings.max_body_bytes} bytes; an attached file to "
                f"{settings.max_file_bytes} bytes."
            ),
        },
        "security": [{"ApiKeyAuth": []}],
        "paths": {
            operation.path: _path_item(operation, schemas) for operation in _OPERATIONS
        },
        "components": _components(schemas),
    }
