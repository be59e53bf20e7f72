"""API keys remembered for a few seconds, so that most requests skip the lookup.

A key found in the database is kept for ``ttl_seconds``: revoking it takes effect
on every node within that time. A prefix that names no key is never remembered, so
a flood of made-up keys cannot fill the cache, and a key created a moment ago works
at once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from helpline.domain.keys import ApiKey

FindKey = Callable[[str], Awaitable[ApiKey | None]]


class KeyCache:
    """``find`` with a memory of ``ttl_seconds`` (0 turns it off) for at most
    ``max_keys`` keys."""

    def __init__(
        self,
        find: FindKey,
        *,
        ttl_seconds: float,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._find = find
        self._ttl = ttl_seconds
        self._max_keys = max_keys
        self._clock = clock
        self._keys: dict[str, tuple[float, ApiKey]] = {}

    async def find(self, prefix: str) -> ApiKey | None:
        """The key with this prefix, from memory while it is fresh.

        Raises what ``find`` raises (``StorageUnavailable``).
        """
        if self._ttl <= 0:
            return await self._find(prefix)
        now = self._clock()
        remembered = self._keys.get(prefix)
        if remembered is not None and remembered[0] > now:
            return remembered[1]

        key = await self._find(prefix)
        if key is None:
            self._keys.pop(prefix, None)
            return None
        if len(self._keys) >= self._max_keys:
            self._forget_oldest()
        self._keys[prefix] = (now + self._ttl, key)
        return key

    def _forget_oldest(self) -> None:
        # Entries are in the order they were stored: drop the older tenth.
        for prefix in list(self._keys)[: max(1, self._max_keys // 10)]:
            del self._keys[prefix]
