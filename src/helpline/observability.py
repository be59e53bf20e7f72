"""Structured logs: one JSON object a line on stderr, with a request id on each.

Secrets and ticket text never reach a log line: callers log ids, prefixes and counts.
"""

from __future__ import annotations

import asyncio
import atexit
import datetime
import logging
import select
import sys
from collections.abc import Callable
from typing import BinaryIO, cast

import msgspec
import structlog


class _RequestLines:
    """Where the one-line-per-request log goes: to ``stream`` as JSON, or (with no
    stream) through structlog like every other event.

    Lines written while an event loop runs wait for the end of the loop's turn and
    go out together, in one write: a write to stderr is a system call, and one per
    request cost about a tenth of a cheap request's time (py-spy, under wrk). Lines
    outside a loop, and anything waiting when structlog writes or the process
    exits, go out at once, so the log's order is the order of the events.
    A process killed outright loses at most the lines of the loop's last turn.
    """

    def __init__(self) -> None:
        self.stream: BinaryIO | None = None
        self.enabled = True
        self._waiting: list[bytes] = []
        # The loop whose turn ends with a flush; a loop closed before its turn
        # ended is not the next one, which schedules its own.
        self._flush_on: asyncio.AbstractEventLoop | None = None

    def add(self, line: bytes) -> None:
        self._waiting.append(line)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._flush_on is not loop:
            loop.call_soon(self.flush)
            self._flush_on = loop

    def flush(self) -> None:
        """Write what waits, in writes of whole lines up to ``PIPE_BUF`` bytes: the
        size a pipe shared by several worker processes keeps in one piece."""
        self._flush_on = None
        stream, waiting = self.stream, self._waiting
        if not waiting or stream is None:
            return
        self._waiting = []
        chunk: list[bytes] = []
        size = 0
        for line in waiting:
            if chunk and size + len(line) > select.PIPE_BUF:
                stream.write(b"".join(chunk))
                stream.flush()
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        stream.write(b"".join(chunk))
        stream.flush()


class _AfterRequestLines:
    """structlog's file: the request lines waiting, then structlog's own line."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def write(self, data: bytes) -> None:
        _request_lines.flush()
        self._stream.write(data)

    def flush(self) -> None:
        self._stream.flush()


_request_lines = _RequestLines()
atexit.register(_request_lines.flush)
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
    lines.add(msgspec.json.encode(fields) + b"\n")


def _utc_timestamp() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def configure_logging(*, log_format: str = "json", level: int = logging.INFO) -> None:
    _request_lines.flush()
    _request_lines.enabled = level <= logging.INFO
    _request_lines.stream = sys.stderr.buffer if log_format == "json" else None
    if log_format == "json":
        _configure(
            structlog.processors.JSONRenderer(serializer=_json_line),
            # structlog only calls write() and flush() on its file.
            structlog.BytesLoggerFactory(
                file=cast(BinaryIO, _AfterRequestLines(sys.stderr.buffer))
            ),
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
