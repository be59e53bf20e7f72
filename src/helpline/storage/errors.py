"""Failures of the storage layer that callers are expected to handle.

- ``StorageError``: the base of both.
  - ``StorageUnavailable``: the database could not be reached or refused the write;
    the request may be retried later and nothing was acknowledged.
  - ``Overloaded``: too many writes are waiting; shed load now rather than queue more.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of the storage failures a caller may handle."""


class StorageUnavailable(StorageError):
    """The database did not take the operation; nothing was committed."""


class Overloaded(StorageError):
    """The write queue is full; the caller should answer 503 and let clients retry."""


class NotFound(StorageError):
    """The named organization, key or ticket does not exist."""


class AlreadyExists(StorageError):
    """A unique name is taken."""
