"""Reading a multipart/form-data body as it streams in, one part at a time.

``FormReader`` feeds chunks to python-multipart's push parser and hands each part's
bytes to the ``PartSink`` its caller chose for that part when its headers arrived,
so no part is held in memory unless its sink keeps it. Every malformed body, a
truncated one included, is an ``ApiError`` (400); what the parts mean is the
caller's business.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from helpline.http.call import parse_media_type
from helpline.http.errors import ApiError

FORM_DATA = "multipart/form-data"
# RFC 2046, section 5.1.1: 1-70 characters of these, not ending with a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
# python-multipart logs every parse error as a warning of its own. The 400 answer
# already says what was wrong, and a plain-text line would break the JSON log.
_PARSER_LOG = logging.getLogger("helpline.http.multipart.parser")
_PARSER_LOG.addHandler(logging.NullHandler())
_PARSER_LOG.propagate = False


@dataclass(frozen=True, slots=True)
class PartInfo:
    """What a part's headers say about it; ``file_name`` is None without one."""

    name: str
    file_name: str | None
    content_type: str | None


class PartSink(Protocol):
    """Where a part's bytes go. ``write`` may raise to stop reading the body."""

    def write(self, data: memoryview) -> None: ...

    def close(self) -> None: ...


def form_boundary(content_type: str | None) -> str:
    """The boundary of a multipart/form-data ``Content-Type``.

    Raises ``ApiError``: 415 for another media type, 400 for a missing or invalid
    boundary.
    """
    media_type, parameters = parse_media_type(content_type)
    if media_type != FORM_DATA:
        shown = (content_type or "none")[:100]
        raise ApiError(
            415,
            f"Unsupported Content-Type {shown!r}: send multipart/form-data, with the "
            "ticket's JSON in a part named request and the file in a part named file.",
        )
    boundary = parameters.get("boundary")
    if boundary is None or not _BOUNDARY.fullmatch(boundary):
        raise ApiError(
            400,
            "The Content-Type needs a boundary parameter of 1-70 characters "
            "(RFC 2046) that separates the parts of the body.",
        )
    return boundary


class FormReader:
    """A multipart/form-data parser that routes each part to a sink.

    ``open_part`` is called once a part's headers are complete and returns the sink
    for its bytes. Exceptions raised by ``open_part`` or a sink propagate out of
    ``feed``; the reader is then unusable.
    """

    def __init__(
        self, boundary: str, open_part: Callable[[PartInfo], PartSink]
    ) -> None:
        self._open_part = open_part
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._sink: PartSink | None = None
        self._complete = False
        self.bytes_read = 0
        self._parser = MultipartParser(
            boundary.encode("ascii"),
            {
                "on_part_begin": self._headers.clear,
                "on_header_field": self._on_header_name,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
        )
        self._parser.logger = _PARSER_LOG

    def feed(self, chunk: bytes) -> None:
        """Parse the next chunk of the body; raises ``ApiError`` (400) if malformed."""
        self.bytes_read += len(chunk)
        try:
            self._parser.write(chunk)
        except FormParserError as error:
            raise _malformed(str(error)) from None

    def finish(self) -> None:
        """Check that the body ended with its closing boundary.

        python-multipart's ``finalize`` accepts a body cut off anywhere, so the
        reader tracks the parser's end event itself. Raises ``ApiError`` (400).
        """
        self._parser.finalize()
        if not self._complete:
            raise _malformed("it ends before the closing boundary")

    def _on_header_name(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        name = self._header_name.decode("latin-1").lower()
        self._headers[name] = bytes(self._header_value).strip()
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        self._sink = self._open_part(_part_info(self._headers))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        assert self._sink is not None  # noqa: S101 - the parser sends headers first
        self._sink.write(memoryview(data)[start:end])

    def _on_part_end(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def _on_end(self) -> None:
        self._complete = True


def _part_info(headers: dict[str, bytes]) -> PartInfo:
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise _malformed("a part has no Content-Disposition header")
    kind, parameters = parse_options_header(disposition.decode("latin-1"))
    name = _text(parameters.get(b"name"))
    if kind != b"form-data" or not name:
        raise _malformed(
            'a part\'s Content-Disposition is not form-data with a name="..."'
        )
    content_type = headers.get("content-type")
    return PartInfo(
        name=name,
        file_name=_text(parameters.get(b"filename")),
        content_type=None if content_type is None else _text(content_type),
    )


def _text(raw: bytes | None) -> str | None:
    """Header text: UTF-8 as clients send it today, else Latin-1 as HTTP had it."""
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _malformed(problem: str) -> ApiError:
    return ApiError(
        400,
        f"The multipart/form-data body is malformed: {problem}. Send a request part "
        "and at most one file part, each with a Content-Disposition header.",
    )
