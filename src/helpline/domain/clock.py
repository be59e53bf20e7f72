"""Time as Helpline stores and shows it: integer milliseconds since 1970, UTC."""

from __future__ import annotations

import datetime
import time


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_utc(ms: int) -> str:
    """``2026-12-03T10:37:04.059Z``: ISO 8601, UTC, milliseconds."""
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
