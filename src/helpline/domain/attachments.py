"""Attachments: a file sent with a ticket, stored once by its content.

The client names the file and may claim its type; neither is trusted. The stored
name is cleaned to a plain base name (``sanitize_file_name``) that is shown to agents
and offered when the file is saved, never used as a path on the server. The stored
type is read from the file's first bytes (``detect_content_type``).
"""

from __future__ import annotations

import mimetypes
import unicodedata
from dataclasses import dataclass

DEFAULT_FILE_NAME = "attachment"
MAX_FILE_NAME_BYTES = 255
# Enough for every signature below and for a fair verdict on "is this text".
SNIFF_BYTES = 8192
OCTET_STREAM = "application/octet-stream"

# Longer than this after the last dot, a "suffix" is part of the name, not a type.
_MAX_EXTENSION_BYTES = 16
# Control (Cc), format (Cf) and lone surrogate (Cs) characters: invisible, and
# format characters include the bidirectional overrides that make
# "evil\u202egpj.exe" look like a .jpg.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
# The built-in table only, so that the host's /etc/mime.types cannot change a
# verdict, plus the formats support tickets carry that the table lacks.
_MIME_TYPES = mimetypes.MimeTypes()
_OFFICE = "application/vnd.openxmlformats-officedocument"
_OPEN_DOCUMENT = "application/vnd.oasis.opendocument"
_ZIP_BASED_BY_EXTENSION = {
    ".docx": f"{_OFFICE}.wordprocessingml.document",
    ".xlsx": f"{_OFFICE}.spreadsheetml.sheet",
    ".pptx": f"{_OFFICE}.presentationml.presentation",
    ".odt": f"{_OPEN_DOCUMENT}.text",
    ".ods": f"{_OPEN_DOCUMENT}.spreadsheet",
    ".jar": "application/java-archive",
    ".epub": "application/epub+zip",
}
# Formats that are ZIP archives inside; the extension tells which one.
_ZIP_BASED_TYPES = frozenset(_ZIP_BASED_BY_EXTENSION.values())
for _extension, _kind in {
    **_ZIP_BASED_BY_EXTENSION,
    ".webp": "image/webp",
    ".md": "text/markdown",
    ".log": "text/plain",
}.items():
    _MIME_TYPES.add_type(_kind, _extension)

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),  # an empty archive
    (b"\x1f\x8b", "application/gzip"),
)
# Types a signature (or the text check) would have recognized: a file that claims
# one by its extension but failed the check is not what it claims.
_SNIFFED_TYPES = frozenset(
    {kind for _, kind in _SIGNATURES}
    | _ZIP_BASED_TYPES
    | {"image/webp", "video/mp4", "text/plain"}
)


@dataclass(frozen=True, slots=True)
class Attachment:
    """A stored file's metadata; the bytes live in the blob store under ``sha256``."""

    file_name: str
    size_bytes: int
    content_type: str
    sha256: str


def sanitize_file_name(raw: str | None) -> str:
    """A file name safe to show and to save as, from whatever the client sent.

    Keeps only the last path component (``/`` and ``\\`` both separate), drops
    control and format characters, folds whitespace runs into one space, strips
    leading dots, and shortens the name to ``MAX_FILE_NAME_BYTES`` of UTF-8 while
    keeping its extension. A name with nothing left becomes ``attachment``.
    """
    if raw is None:
        return DEFAULT_FILE_NAME

    name = unicodedata.normalize("NFC", raw)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    # Whitespace controls (tab, line feed) separate words: spaces, not nothing.
    name = "".join(" " if character.isspace() else character for character in name)
    name = "".join(
        character
        for character in name
        if unicodedata.category(character) not in _DROPPED_CATEGORIES
    )
    name = " ".join(name.split()).lstrip(". ")
    name = _shorten_keeping_extension(name, MAX_FILE_NAME_BYTES)
    return name or DEFAULT_FILE_NAME


def _shorten_keeping_extension(name: str, limit: int) -> str:
    if len(name.encode()) <= limit:
        return name
    stem, dot, extension = name.rpartition(".")
    suffix = dot + extension
    if not stem or len(suffix.encode()) > _MAX_EXTENSION_BYTES:
        stem, suffix = name, ""
    budget = limit - len(suffix.encode())
    # Cut on a character boundary: a split multi-byte character is dropped whole.
    shortened = stem.encode()[:budget].decode("utf-8", errors="ignore")
    return shortened.rstrip() + suffix


def detect_content_type(head: bytes, file_name: str) -> str:
    """The media type of a file, from its first bytes (``head``) and then its name.

    ``head`` should hold the first ``SNIFF_BYTES`` of the file, or all of it. A known
    signature decides; UTF-8 text is ``text/plain`` (or a more precise ``text/*``
    type its extension names). Otherwise the extension decides, unless it claims a
    type the signatures would have recognized; failing that, the answer is
    ``application/octet-stream``.
    """
    sniffed = _sniff_signature(head)
    by_name = _type_by_extension(file_name)
    if sniffed == "application/zip" and by_name in _ZIP_BASED_TYPES:
        return by_name
    if sniffed is not None:
        return sniffed
    if head and _looks_like_text(head):
        return by_name if by_name and by_name.startswith("text/") else "text/plain"
    if by_name is None or by_name in _SNIFFED_TYPES or by_name.startswith("text/"):
        return OCTET_STREAM
    return by_name


def _sniff_signature(head: bytes) -> str | None:
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":  # ISO base media: MP4 and its relatives
        return "video/mp4"
    return None


def _looks_like_text(head: bytes) -> bool:
    """Whether ``head`` is UTF-8 without control characters other than whitespace.

    A multi-byte character cut off by the end of ``head`` still counts as text.
    """
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        cut_at_end = (
            error.reason == "unexpected end of data" and error.start >= len(head) - 3
        )
        if not cut_at_end:
            return False
        text = head[: error.start].decode("utf-8")
    return all(
        character.isspace() or unicodedata.category(character) != "Cc"
        for character in text
    )


def _type_by_extension(file_name: str) -> str | None:
    # guess_type reads its argument as a URL: "./" keeps "data:x,y" a file name.
    kind, encoding = _MIME_TYPES.guess_type("./" + file_name, strict=True)
    # "report.pdf.gz" names a compressed file; its bytes were not gzip, though.
    return None if encoding is not None else kind
