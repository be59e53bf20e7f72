"""Rules shared by every free-text field a caller sends."""

from __future__ import annotations

import re

from helpline.domain.failures import DomainFailure, FailureReason

# Anything in C0 or DEL except the three whitespace characters a body may contain.
_FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def reject_control_characters(
    path: str, value: str, *, reason: FailureReason = FailureReason.INVALID_TEXT
) -> None:
    """Raises ``DomainFailure`` (``reason``) naming the first control character."""
    match = _FORBIDDEN_CHARACTERS.search(value)
    if match:
        raise DomainFailure(
            reason,
            f"{path} contains the control character U+{ord(match.group()):04X} "
            f"at position {match.start()}; remove it.",
        )


def clean_text(path: str, value: str | None, *, warnings: list[str]) -> str | None:
    """Trim a free-text field; an empty result counts as absent, with a warning."""
    if value is None:
        return None
    reject_control_characters(path, value)
    trimmed = value.strip()
    if trimmed != value:
        warnings.append(f"{path}: surrounding whitespace was trimmed")
    if not trimmed:
        warnings.append(f"{path}: empty, treated as absent")
        return None
    return trimmed
