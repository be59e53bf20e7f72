"""Per-organization token buckets.

Each organization may make ``burst`` requests at once and ``rate`` a second after
that. ``LocalRateLimiter`` keeps the buckets in this process, which is right for
the one serving process of an SQLite database; on PostgreSQL the store shares them
between nodes (``storage/postgres.py``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class RateLimiter(Protocol):
    async def acquire(self, organization_id: int) -> int | None:
        """Take one token; None if granted, else whole seconds until one is free.

        Raises ``StorageUnavailable`` when shared buckets cannot be reached.
        """
        ...


def retry_after_seconds(tokens: float, rate: float) -> int:
    """Whole seconds until a bucket holding ``tokens`` (< 1) has a whole token."""
    return max(1, math.ceil((1 - tokens) / rate))


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class LocalRateLimiter:
    """Buckets in this process; ``rate`` of 0 turns limiting off."""

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._burst = max(burst, 1)
        self._clock = clock
        self._buckets: dict[int, _Bucket] = {}

    async def acquire(self, organization_id: int) -> int | None:
        return self.take(organization_id)

    def take(self, organization_id: int) -> int | None:
        """``acquire`` without the coroutine."""
        if self._rate <= 0:
            return None
        now = self._clock()
        bucket = self._buckets.get(organization_id)
        if bucket is None:
            bucket = self._buckets[organization_id] = _Bucket(self._burst, now)

        elapsed = now - bucket.updated
        bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return retry_after_seconds(bucket.tokens, self._rate)
