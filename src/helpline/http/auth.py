"""Who is calling: the ``x-auth-apikey`` and ``x-auth-scheme`` headers, checked.

Every credential failure answers 401 with a message naming the header to fix; an
unknown key, a revoked key and a wrong secret give the very same answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from helpline.domain.keys import KEY_SCHEME, ApiKey, Permission, key_matches, prefix_of
from helpline.http.errors import ApiError

INVALID_KEY = (
    "The API key in the x-auth-apikey header is not valid: check that it was "
    "copied whole, or ask your administrator for a new key."
)


async def authenticate(
    headers: Mapping[str, str],
    *,
    find_key: Callable[[str], Awaitable[ApiKey | None]],
) -> ApiKey:
    """The caller's key, checked against its stored digest; raises ``ApiError``
    (401). What the key may do is ``require_permission``'s to check."""
    token = headers.get("x-auth-apikey", "").strip()
    if not token:
        raise ApiError(
            401, "Missing x-auth-apikey header: send your API key in x-auth-apikey."
        )
    scheme = headers.get("x-auth-scheme", "").strip()
    if not scheme:
        raise ApiError(
            401,
            f"Missing x-auth-scheme header: send x-auth-scheme: {KEY_SCHEME} "
            "with your API key.",
        )
    if scheme.lower() != KEY_SCHEME:
        raise ApiError(
            401,
            f"Unsupported x-auth-scheme {scheme[:40]!r}: the supported scheme is "
            f"{KEY_SCHEME}.",
        )

    prefix = prefix_of(token)
    stored = await find_key(prefix) if prefix is not None else None
    if not key_matches(token, stored):
        raise ApiError(401, INVALID_KEY)
    assert stored is not None  # noqa: S101
    return stored


def require_permission(key: ApiKey, permission: Permission) -> None:
    """Raises ``ApiError`` (403) unless ``key`` may perform ``permission``."""
    if not key.allows(permission):
        raise ApiError(
            403,
            f"This API key may not perform this operation: it lacks the "
            f"{permission} permission. Use a key that has it.",
        )
