"""Support agents: who may sign in to the console, and how their secrets are kept.

Passwords are hashed with Argon2id (argon2-cffi's defaults: 64 MiB, 3 passes), and
only the hash is stored. A console session is a random token in a cookie; the
database keeps its SHA-256 digest, so a copy of the database opens no session.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from helpline.domain.failures import DomainFailure
from helpline.domain.tickets import normalize_email

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
MAX_NAME_LENGTH = 100
# A session ends this long after sign-in, or after this long without a request.
SESSION_LIFETIME_MS = 12 * 3600 * 1000
SESSION_IDLE_MS = 2 * 3600 * 1000
# More failed sign-ins than this, for one email or one address, within the
# window, and sign-in is refused until the window has passed.
LOGIN_FAILURES_ALLOWED = 5
LOGIN_WINDOW_MS = 15 * 60 * 1000

_hasher = PasswordHasher()


@dataclass(frozen=True, slots=True)
class Agent:
    id: int
    email: str
    name: str
    disabled: bool
    created_at_ms: int


def agent_email(raw: str) -> str:
    """The normalized, lower-case email of an agent (a sign-in name, so case does
    not matter); raises ``ValueError`` saying what is wrong."""
    try:
        return normalize_email(raw, path="the email").lower()
    except DomainFailure as failure:
        raise ValueError(failure.detail) from None


def agent_name(raw: str | None, *, email: str) -> str:
    """The display name; the part of the email before @ when none is given."""
    name = " ".join((raw or "").split())
    if not name:
        return email.split("@", 1)[0]
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"the name is longer than {MAX_NAME_LENGTH} characters")
    return name


def hash_password(password: str) -> str:
    """An Argon2id hash of a password that is long enough; raises ``ValueError``."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at most {MAX_PASSWORD_LENGTH}")
    return _hasher.hash(password)


def password_matches(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` is the one hashed; with no hash, a decoy is checked so
    that an unknown email takes as long as a wrong password."""
    candidate = stored_hash or _DECOY_HASH
    try:
        matched = _hasher.verify(candidate, password[:MAX_PASSWORD_LENGTH])
    except (VerificationError, InvalidHashError):
        return False
    return matched and stored_hash is not None


def new_session_token() -> tuple[str, str]:
    """A session token for the cookie, and the digest the database keeps."""
    token = secrets.token_urlsafe(32)
    return token, session_digest(token)


def session_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


_DECOY_HASH = _hasher.hash(secrets.token_urlsafe(16))
