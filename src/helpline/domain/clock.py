"""Time as Helpline stores and shows it: integer milliseconds since 1970, UTC."""

from __future__ import annotations

import datetime
import functools
import time
from collections.abc import Iterable

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


def iso_utc_each(moments: Iterable[int]) -> list[str]:
    """``iso_utc`` of each of ``moments``, in order, with the same errors.

    Made for listings, whose times come sorted: the hour's part is looked up again
    only when a time leaves the hour of the one before, and the rest is a
    subtraction, a small division and two table lookups: measured on a listing
    of a thousand tickets, about 60 % of what ``iso_utc`` costs a time.
    """
    formatted: list[str] = []
    append = formatted.append
    hour_starts_ms = hour_ends_ms = 0
    hour = ""
    for ms in moments:
        if not hour_starts_ms <= ms < hour_ends_ms:
            hours_since_1970 = ms // _MS_PER_HOUR
            hour = _iso_hour(hours_since_1970)
            hour_starts_ms = hours_since_1970 * _MS_PER_HOUR
            hour_ends_ms = hour_starts_ms + _MS_PER_HOUR
        second_of_hour, millisecond = divmod(ms - hour_starts_ms, 1000)
        append(f"{hour}{_MINUTE_SECOND[second_of_hour]}{_MILLISECOND[millisecond]}")
    return formatted


@functools.lru_cache(maxsize=1024)
def _iso_hour(hours_since_1970: int) -> str:
    """``2026-12-03T10:``, the hour's part of an ISO time."""
    moment = datetime.datetime.fromtimestamp(hours_since_1970 * 3600, tz=datetime.UTC)
    return moment.isoformat()[: len("2026-12-03T10:")]
