"""When to try a request again and how long to wait first; no I/O happens here."""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass

import httpx

from helpline.client.errors import HelpRetriesExhausted

logger = logging.getLogger("helpline.client")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts one call may make and how the pauses between them grow.

    The pause before retry ``n`` (counting from 0) is drawn uniformly from
    ``[0, min(backoff_max, backoff_base * 2**n)]`` ("full jitter"), so that many
    clients failing together do not retry together. A ``Retry-After`` header in
    seconds replaces the drawn pause, capped at ``backoff_max``.
    """

    max_attempts: int
    backoff_base: float
    backoff_max: float

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            message = f"max_attempts must be at least 1, not {self.max_attempts}"
            raise ValueError(message)

        if self.backoff_base < 0 or self.backoff_max < 0:
            message = "backoff_base and backoff_max must not be negative"
            raise ValueError(message)

    def jittered_pause(self, retry_number: int) -> float:
        """Draw the pause before retry ``retry_number`` (the first retry is 0)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2**retry_number)
        # Jitter only spreads retries out in time; it guards no secret.
        return random.uniform(0, ceiling)  # noqa: S311

    def server_pause(self, retry_after: float) -> float:
        """Cap a pause the server asked for, so a bad header cannot stall a call."""
        return min(self.backoff_max, retry_after)


class RetrySchedule:
    """The attempts of one logical call: counts failures and says how long to wait.

    Each ``after_*`` method records a failed attempt and returns the pause before
    the next one, or raises ``HelpRetriesExhausted`` when no attempt is left.
    """

    def __init__(self, policy: RetryPolicy, *, idempotency_key: str) -> None:
        self._policy = policy
        self._idempotency_key = idempotency_key
        self._failed_attempts = 0

    def after_retryable_response(self, response: httpx.Response) -> float:
        """Record a 429 or 5xx answer; honour its ``Retry-After`` when it has one."""
        failure = f"HTTP {response.status_code}"
        self._record_failure(status=response.status_code, failure=failure, cause=None)

        retry_after = _retry_after_seconds(response)
        if retry_after is None:
            return self._log_pause(self._jittered(), failure)

        return self._log_pause(self._policy.server_pause(retry_after), failure)

    def after_transport_error(self, error: httpx.TransportError) -> float:
        """Record an attempt that got no answer (refused, timed out, reset)."""
        failure = f"{type(error).__name__}: {error}"
        self._record_failure(status=None, failure=failure, cause=error)
        return self._log_pause(self._jittered(), failure)

    def _record_failure(
        self, *, status: int | None, failure: str, cause: Exception | None
    ) -> None:
        self._failed_attempts += 1
        if self._failed_attempts < self._policy.max_attempts:
            return

        raise HelpRetriesExhausted(
            attempts=self._failed_attempts,
            idempotency_key=self._idempotency_key,
            last_status=status,
            last_failure=failure,
        ) from cause

    def _jittered(self) -> float:
        return self._policy.jittered_pause(self._failed_attempts - 1)

    def _log_pause(self, pause: float, failure: str) -> float:
        logger.info(
            "ticket request failed (%s); attempt %d of %d in %.2fs",
            failure,
            self._failed_attempts + 1,
            self._policy.max_attempts,
            pause,
        )
        return pause


def _retry_after_seconds(response: httpx.Response) -> float | None:
    # Only the delay-seconds form is read. The HTTP-date form is rare from API
    # servers; it falls back to the jittered pause rather than trusting two clocks.
    header = response.headers.get("Retry-After")
    if header is None:
        return None

    try:
        seconds = float(header)
    except ValueError:
        return None

    if not math.isfinite(seconds) or seconds < 0:
        return None

    return seconds
