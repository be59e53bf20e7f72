"""Rules shared by every free-text field a caller sends."""

from __future__ import annotations

import re

from helpline.domain.failures import DomainFailure, FailureReason

# The C0 and C1 controls and DEL, except the three whitespace characters a body may
# contain.
_FORBIDDEN_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# A one-line field (a name, an address line) takes no control character at all.
_FORBIDDEN_IN_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def reject_control_characters(
    path: str,
    value: str,
    *,
    reason: FailureReason = FailureReason.INVALID_TEXT,
    one_line: bool = False,
) -> None:
    """Raises ``DomainFailure`` (``reason``) naming the first control character;
    tab, line feed and carriage return are allowed unless ``one_line``."""
    forbidden = _FORBIDDEN_IN_LINE if one_line else _FORBIDDEN_IN_TEXT
    match = forbidden.search(value)
    if match:
        raise DomainFailure(
            reason,
            f"{path} contains the control character U+{ord(match.group()):04X} "
            f"at position {match.start()}; remove it.",
        )


def clean_text(path: str, value: str | None, *, warnings: list[str]) -> str | None:
    """Trim a free-text field and end its lines with ``\\n``; an empty result
    counts as absent. Each change is noted in ``warnings``."""
    if value is None:
        return None
    reject_control_characters(path, value)
    trimmed = value.strip()
    if trimmed != value:
        warnings.append(f"{path}: surrounding whitespace was trimmed")
    if "\r" in trimmed:
        # A lone carriage return rewrites the line it ends on in a terminal.
        trimmed = trimmed.replace("\r\n", "\n").replace("\r", "\n")
        warnings.append(f"{path}: line endings were normalized to \\n")
    if not trimmed:
        warnings.append(f"{path}: empty, treated as absent")
        return None
    return trimmed
