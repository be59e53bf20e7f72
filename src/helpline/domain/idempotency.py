"""Idempotency keys: a retried request returns the first answer instead of a twin."""

from __future__ import annotations

from dataclasses import dataclass

IDEMPOTENCY_WINDOW_MS = 24 * 3_600_000
MAX_IDEMPOTENCY_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """A caller's promise that requests with this key are one logical request."""

    key: str
    fingerprint: str


def check_idempotency_key(value: str) -> str:
    """The key itself, or ValueError saying what a valid key looks like."""
    printable = all("!" <= character <= "~" for character in value)
    if not value or len(value) > MAX_IDEMPOTENCY_KEY_LENGTH or not printable:
        raise ValueError(
            f"use 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters, "
            "without spaces (a UUID is a good choice)"
        )
    return value
