"""Helpline's own OpenAPI description, served at ``/api/openapi/public.json``.

The operation, its schemas and their property names, types, formats and nullability
follow the vendor's published description; Helpline's additions (the error statuses,
``Idempotency-Key``, the replay and request-id headers) are described beside them.
"""

from __future__ import annotations

from typing import Any

from helpline import __version__
from helpline.config import Settings
from helpline.domain.failures import FailureReason
from helpline.domain.idempotency import MAX_IDEMPOTENCY_KEY_LENGTH
from helpline.http.errors import BAD_STRUCTURE

_JSON = "application/json"


def _nullable(
    kind: str, description: str | None = None, **extra: Any
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": kind, "nullable": True, **extra}
    if description:
        schema["description"] = description
    return schema


def _nullable_strings(description: str) -> dict[str, Any]:
    return _nullable("array", description, items=_nullable("string", description))


def _request_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Request object for creating a support ticket.",
        "properties": {
            "body": _nullable("string", "Body content of the support ticket"),
            "collaborators": _nullable_strings("List of collaborator email addresses"),
            "consoleAccessGranted": _nullable(
                "boolean",
                "Whether console access has been granted for troubleshooting",
            ),
            "productType": _nullable("string"),
            "serialNumbers": _nullable_strings(
                "List of device serial numbers related to the issue"
            ),
            "serviceType": _nullable("string"),
            "subject": _nullable("string", "Subject of the support ticket"),
        },
    }


def _response_schema(*, with_msg: bool = False) -> dict[str, Any]:
    catalogue = "; ".join(reason.value for reason in FailureReason)
    properties: dict[str, Any] = {
        "error": _nullable("boolean"),
        "errorMsg": _nullable("string"),
        "failureReason": _nullable(
            "string",
            f"Reason for failure if ticket creation was unsuccessful. One of: "
            f"{catalogue}.",
        ),
        "success": _nullable("boolean", "Whether the ticket creation was successful"),
        "ticketId": _nullable(
            "integer", "ID of the created support ticket", format="int32"
        ),
        "warningMsg": _nullable("string"),
    }
    required = list(properties)
    if with_msg:
        properties["msg"] = {"type": "string", "example": BAD_STRUCTURE}
        required.append("msg")
    return {
        "type": "object",
        "description": "Response object for creating a support ticket.",
        "properties": properties,
        "required": required,
    }


def _answer(description: str, schema: str, **headers: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {_JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        "headers": {"X-Request-Id": {"$ref": "#/components/headers/XRequestId"}},
    }
    for name, ref in headers.items():
        answer["headers"][name] = {"$ref": f"#/components/headers/{ref}"}
    return answer


def _create_ticket_operation() -> dict[str, Any]:
    envelope = "Help_CreateTicketWSResponse"
    return {
        "post": {
            "description": "Open a support ticket",
            "operationId": "createTicket",
            "summary": "Open a support ticket",
            "tags": ["Help Webservice"],
            "parameters": [
                {"$ref": "#/components/parameters/XAuthSchemeParam"},
                {"$ref": "#/components/parameters/IdempotencyKeyParam"},
                {"$ref": "#/components/parameters/XRequestIdParam"},
            ],
            "requestBody": {
                "required": True,
                "content": {
                    _JSON: {
                        "schema": {
                            "$ref": "#/components/schemas/Help_CreateTicketWSRequest"
                        }
                    }
                },
            },
            "responses": {
                "200": _answer(
                    "OK: the ticket was stored (success true), or a domain failure "
                    "(success false, failureReason set) stored nothing.",
                    envelope,
                    **{"Idempotent-Replayed": "IdempotentReplayed"},
                ),
                "400": _answer(
                    "The body is not JSON, not an object, or a field has the wrong "
                    "type; errorMsg names the field path.",
                    "Helpline_BadRequestResponse",
                ),
                "401": _answer(
                    "Missing or invalid x-auth-apikey or x-auth-scheme.", envelope
                ),
                "403": _answer(
                    "The key lacks the tickets:create permission.", envelope
                ),
                "413": _answer("The body is over the configured size limit.", envelope),
                "415": _answer("The body is not sent as application/json.", envelope),
                "429": _answer(
                    "The organization's rate limit is spent.",
                    envelope,
                    **{"Retry-After": "RetryAfter"},
                ),
                "500": _answer("An internal error; nothing was stored.", envelope),
                "503": _answer(
                    "The database is unavailable or overloaded; nothing was stored.",
                    envelope,
                    **{"Retry-After": "RetryAfter"},
                ),
            },
        }
    }


def _components() -> dict[str, Any]:
    return {
        "securitySchemes": {
            "ApiKeyAuth": {
                "description": "Your API key for Helpline.",
                "in": "header",
                "name": "x-auth-apikey",
                "type": "apiKey",
            }
        },
        "parameters": {
            "XAuthSchemeParam": {
                "description": 'Authentication scheme indicator ("api-token").',
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
                    "opening a second ticket."
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
        "schemas": {
            "Help_CreateTicketWSRequest": _request_schema(),
            "Help_CreateTicketWSResponse": _response_schema(),
            "Helpline_BadRequestResponse": _response_schema(with_msg=True),
        },
    }


def openapi_document(settings: Settings) -> dict[str, Any]:
    limit = settings.max_body_bytes
    return {
        "openapi": "3.0.1",
        "info": {
            "title": "Helpline Help Webservice",
            "version": __version__,
            "description": (
                "A self-hosted implementation of the Rhombus Help Webservice. "
                f"Request bodies are limited to {limit} bytes."
            ),
        },
        "security": [{"ApiKeyAuth": []}],
        "paths": {"/api/help/ticket": _create_ticket_operation()},
        "components": _components(),
    }
