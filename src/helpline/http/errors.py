"""Failures at the HTTP edge, each carrying the status and message it answers with.

- ``ApiError``: any answer other than success or a domain failure.
  - ``MalformedBody``: 400, the body is not the JSON the operation expects.
"""

from __future__ import annotations

from collections.abc import Mapping

BAD_STRUCTURE = "JSON doesn't match expected object structure"


class ApiError(Exception):
    """An answer with ``status`` and ``message`` as ``errorMsg`` in the envelope."""

    def __init__(
        self, status: int, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


class MalformedBody(ApiError):
    """400: the body is not JSON, not an object, or a field has the wrong type."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)
