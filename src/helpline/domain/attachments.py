"""Attachments: a file sent with a ticket, stored once by its content."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Attachment:
    """A stored file's metadata; the bytes live in the blob store under ``sha256``."""

    file_name: str
    size_bytes: int
    content_type: str
    sha256: str
