"""Time as Helpline stores and shows it: integer milliseconds since 1970, UTC."""

from __future__ import annotations

import datetime
import functools
import time

_MS_PER_HOUR = 3_600_000
# The part of an ISO time after the hour, by second of the hour and by
# millisecond: a listing formats thousands of times per request, and looking the
# pieces up costs a sixth of building a datetime for each.
_MINUTE_SECOND = [
    f"{minute:02d}:{second:02d}." for minute in range(60) for second in range(60)
]
_MILLISECOND = [f"{millisecond:03d}Z" for millisecond in range(1000)]


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_utc(ms: int) -> str:
    """``2026-12-03T10:37:04.059Z``: ISO 8601, UTC, milliseconds.

    Raises ``ValueError`` or ``OverflowError`` for a time outside years 1 to 9999.
    """
    hour, ms_of_hour = divmod(ms, _MS_PER_HOUR)
    second_of_hour, millisecond = divmod(ms_of_hour, 1000)
    return _iso_hour(hour) + _MINUTE_SECOND[second_of_hour] + _MILLISECOND[millisecond]


@functools.lru_cache(maxsize=1024)
def _iso_hour(hours_since_1970: int) -> str:
    """``2026-12-03T10:``, the hour's part of an ISO time."""
    moment = datetime.datetime.fromtimestamp(hours_since_1970 * 3600, tz=datetime.UTC)
    return moment.isoformat()[: len("2026-12-03T10:")]
