"""Structured logs: one JSON object a line on stderr, with a request id on each.

Secrets and ticket text never reach a log line: callers log ids, prefixes and counts.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import msgspec
import structlog


def configure_logging(*, log_format: str = "json", level: int = logging.INFO) -> None:
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
