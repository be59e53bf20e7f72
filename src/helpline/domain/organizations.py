"""Organizations: the tenants that own API keys and tickets."""

from __future__ import annotations

import re

DEFAULT_ORGANIZATION = "default"
_ORGANIZATION_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,98}[a-z0-9])?")


def check_organization_name(name: str) -> str:
    """The name itself, or ValueError saying what a valid name looks like."""
    if not _ORGANIZATION_NAME.fullmatch(name):
        raise ValueError(
            f"invalid organization name {name!r}: use 1-100 lower-case letters, "
            "digits, dots, hyphens or underscores, starting and ending with a "
            "letter or digit"
        )
    return name
