"""Structured logs: one JSON object a line on stderr, with a request id on each.

Secrets and ticket text never reach a log line: callers log ids, prefixes and counts.
"""

from __future__ import annotations

import datetime
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import msgspec
import structlog


@dataclass(slots=True)
class _RequestLines:
    """Where the one-line-per-request log goes: straight to ``stream`` as JSON,
    or (None) through structlog like every other event."""

    stream: BinaryIO | None = None
    enabled: bool = True


_request_lines = _RequestLines()
_http_log = structlog.get_logger("helpline.http")


def log_request(**fields: object) -> None:
    """Write the request's log line: the same JSON object structlog would write
    (``event``, ``level``, ``timestamp`` and ``fields``), without its processor
    chain, which costs more than the rest of a cheap request's logging."""
    lines = _request_lines
    if not lines.enabled:
        return
    if lines.stream is None:
        _http_log.info("request", **fields)
        return
    fields["event"] = "request"
    fields["level"] = "info"
    fields["timestamp"] = _utc_timestamp()
    lines.stream.write(msgspec.json.encode(fields) + b"\n")
    lines.stream.flush()


def _utc_timestamp() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def configure_logging(*, log_format: str = "json", level: int = logging.INFO) -> None:
    _request_lines.enabled = level <= logging.INFO
    _request_lines.stream = sys.stderr.buffer if log_format == "json" else None
    if log_format == "json":
        _configure(
            structlog.processors.JSONRenderer(serializer=_json_line),
            structlog.BytesLoggerFactory(file=sys.stderr.buffer),
            level,
        )
    else:
        _configure(
            structlog.dev.ConsoleRenderer(colors=False),
            structlog.PrintLoggerFactory(file=sys.stderr),
            level,
        )


def _json_line(event: dict[str, object], **_: object) -> bytes:
    return msgspec.json.encode(event)


def _configure(
    renderer: structlog.typing.Processor,
    logger_factory: Callable[..., structlog.typing.WrappedLogger],
    level: int,
) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=logger_factory,
        cache_logger_on_first_use=True,
    )
