"""Per-organization token buckets.

Each organization may make ``burst`` requests at once and ``rate`` a second after
that. The buckets live in this process: with several processes each keeps its own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``rate`` of 0 turns limiting off."""

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

    @property
    def enabled(self) -> bool:
        return self._rate > 0

    def acquire(self, organization_id: int) -> int | None:
        """Take one token; None if granted, else whole seconds until one is free."""
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
        return max(1, math.ceil((1 - bucket.tokens) / self._rate))
