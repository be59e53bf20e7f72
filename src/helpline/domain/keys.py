"""API keys: how they are made, shown once, stored as a hash and checked.

A key reads ``hlk_<prefix>_<secret>``. The prefix is public and finds the stored key;
the secret carries 256 random bits. Only a SHA-256 digest of the whole key is stored:
with that much entropy a slow password hash would add cost and no safety.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_SCHEME = "api-token"
_KEY_MARK = "hlk"
_PREFIX_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
PREFIX_LENGTH = 10
# Compared against when no key has the prefix, so an unknown key costs the same.
_DECOY_DIGEST = hashlib.sha256(b"no key has this prefix").hexdigest()


class Permission(enum.StrEnum):
    CREATE_TICKETS = "tickets:create"
    READ_TICKETS = "tickets:read"
    SEND_FEEDBACK = "feedback:create"


ALL_PERMISSIONS = frozenset(Permission)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A freshly made key: ``token`` is shown to the operator once, then forgotten."""

    prefix: str
    token: str
    digest: str


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key, as the API needs it to authenticate and authorize a caller."""

    id: int
    organization_id: int
    organization_name: str
    prefix: str
    digest: str
    user_email: str
    permissions: frozenset[Permission]
    revoked: bool

    def allows(self, permission: Permission) -> bool:
        return permission in self.permissions


def issue_key() -> IssuedKey:
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    token = f"{_KEY_MARK}_{prefix}_{secrets.token_urlsafe(32)}"
    return IssuedKey(prefix=prefix, token=token, digest=digest_of(token))


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def prefix_of(token: str) -> str | None:
    """The public prefix of a presented key, or None if it is not shaped like one."""
    mark, _, rest = token.partition("_")
    prefix, _, secret = rest.partition("_")
    if mark != _KEY_MARK or len(prefix) != PREFIX_LENGTH or not secret:
        return None
    return prefix


def key_matches(token: str, stored: ApiKey | None) -> bool:
    """Whether a presented key is the stored one, in time that does not depend on it.

    A missing stored key is compared against a decoy, so the caller cannot tell an
    unknown prefix from a wrong secret by timing.
    """
    expected = stored.digest if stored is not None else _DECOY_DIGEST
    same = hmac.compare_digest(digest_of(token), expected)
    return same and stored is not None and not stored.revoked


def parse_permissions(names: list[str] | tuple[str, ...]) -> frozenset[Permission]:
    """Permissions from their names; raises ValueError naming an unknown one."""
    try:
        return frozenset(Permission(name) for name in names)
    except ValueError:
        known = ", ".join(sorted(Permission))
        raise ValueError(
            f"unknown permission in {list(names)}; known: {known}"
        ) from None
