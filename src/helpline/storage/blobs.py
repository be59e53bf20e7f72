"""The blob store: uploaded files on disk, each stored once under its SHA-256.

A file lives at ``root/ab/cd/<sha256 hex>``, where ``ab`` and ``cd`` are the first
two pairs of its digest, so no directory grows past a few thousand entries. Names
on disk come only from digests, never from a client.

An upload is written to a temporary file in ``root/tmp`` while its digest is
computed, then flushed, fsync'd and renamed into place, and the directory that
received it is fsync'd: once ``publish`` returns, the file survives a crash. A
ticket refers to a blob through its ``attachments`` row; a blob that no row refers
to is removed by the request that published it, unless another request in this
process still holds it (see ``BlobStore.release``). One process serves each SQLite
file, so the in-process count is the whole truth.

A crash between ``publish`` and the ticket's commit leaves a blob no row refers
to, and a crash mid-upload leaves a file in ``root/tmp``. Both cost only disk
space, and ``BlobStore.sweep`` (``helpline attachments sweep``) removes them once
they have been left untouched long enough (an hour by default), while servers
run: a publish touches the file it holds, so the age spares every upload still on
its way to a commit.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import os
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import structlog

from helpline.storage.engine import SQLITE_BUSY_TIMEOUT_MS, is_postgres, sqlite_file

log = structlog.get_logger("helpline.storage")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_REFERENCED = "SELECT 1 FROM attachments WHERE sha256 = ? LIMIT 1"


def blob_root_for(database_url: str, blob_dir: str | None) -> Path:
    """Where the files of this database live: ``blob_dir``, or beside the database.

    Without ``blob_dir`` the root is ``<database file name>.files`` next to the
    SQLite file. Raises ``ValueError`` without one for PostgreSQL, whose nodes must
    all reach one directory, and for an in-memory database.
    """
    if blob_dir:
        return Path(blob_dir)
    if is_postgres(database_url):
        raise ValueError(
            "set HELPLINE_BLOB_DIR with PostgreSQL: the directory for uploaded "
            "files, shared by every node"
        )
    database = sqlite_file(database_url)
    if database is None:
        raise ValueError(
            "an in-memory database has no directory for files; set HELPLINE_BLOB_DIR"
        )
    return database.with_name(database.name + ".files")


def is_attached(connection: sqlite3.Connection, sha256: str) -> bool:
    """Whether any stored attachment refers to the blob (one indexed read)."""
    return connection.execute(_REFERENCED, (sha256,)).fetchone() is not None


def attached_in(database: Path) -> Callable[[str], bool]:
    """``is_attached`` on a short-lived, read-only connection to ``database``."""

    def check(sha256: str) -> bool:
        uri = f"{database.resolve().as_uri()}?mode=ro"
        connection = sqlite3.connect(
            uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000
        )
        try:
            return is_attached(connection, sha256)
        finally:
            connection.close()

    return check


class BlobUpload:
    """A file being received: written to a temporary file, its digest computed.

    Use it as a context manager: leaving the block removes the temporary file
    unless ``BlobStore.publish`` moved it into place.
    """

    def __init__(self, temporary_dir: Path, *, head_bytes: int) -> None:
        temporary_dir.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(dir=temporary_dir, prefix="upload-")
        self.temporary_path: Path | None = Path(name)
        self._file = os.fdopen(descriptor, "wb")
        self._digest = hashlib.sha256()
        self._head = bytearray()
        self._head_bytes = head_bytes
        self.size = 0

    def __enter__(self) -> BlobUpload:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.discard()

    def write(self, data: bytes | memoryview) -> None:
        # Writes land in the page cache and take microseconds, so they run on the
        # caller's thread; only publish's fsync waits for the disk.
        self._file.write(data)
        self._digest.update(data)
        self.size += len(data)
        if len(self._head) < self._head_bytes:
            self._head += data[: self._head_bytes - len(self._head)]

    @property
    def head(self) -> bytes:
        """The first bytes of the file, for telling its type."""
        return bytes(self._head)

    @property
    def sha256(self) -> str:
        """The hex digest of everything written so far."""
        return self._digest.hexdigest()

    def make_durable(self) -> None:
        """Flush the file to disk and close it; it takes no more writes."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def discard(self) -> None:
        """Close and remove the temporary file, if it is still there."""
        self._file.close()
        if self.temporary_path is not None:
            self.temporary_path.unlink(missing_ok=True)
            self.temporary_path = None


class BlobStore:
    """Files by SHA-256 under ``root``; safe to share between threads.

    Each published blob is held (counted) until its publisher calls ``release``,
    so that a request failing at the same moment never removes a file another
    request is about to record.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._holds: collections.Counter[str] = collections.Counter()

    def path_of(self, sha256: str) -> Path:
        """Where the blob with this hex digest lives; raises ``ValueError`` for a
        string that is not a lower-case SHA-256 hex digest."""
        if not _SHA256_HEX.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256[:80]!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def open(self, sha256: str) -> BinaryIO:
        """The blob for reading; raises ``FileNotFoundError`` when it is missing."""
        return self.path_of(sha256).open("rb")

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    def start_upload(self, *, head_bytes: int = 0) -> BlobUpload:
        """A new temporary file in ``root/tmp``, keeping ``head_bytes`` of its start."""
        return BlobUpload(self.root / "tmp", head_bytes=head_bytes)

    def publish(self, upload: BlobUpload) -> str:
        """Make the upload durable under its digest and hold it; returns the digest.

        If the same content is already stored, the upload is discarded and the
        stored file held instead. The caller must ``release`` the digest once the
        ticket that refers to it is stored or has failed. Blocks on the disk: call
        it from a worker thread.
        """
        sha256 = upload.sha256
        upload.make_durable()
        final = self.path_of(sha256)
        created = _make_directories(final.parent, below=self.root)
        with self._lock:
            renamed = not final.exists()
            if renamed:
                assert upload.temporary_path is not None  # noqa: S101
                os.replace(upload.temporary_path, final)
                upload.temporary_path = None
            else:
                upload.discard()  # same digest, same bytes: keep the first copy
                # A sweep spares files touched lately: this one is about to be
                # recorded again, perhaps by another node.
                os.utime(final)
            self._holds[sha256] += 1
        try:
            # The new name, and any new directory, must reach the disk too.
            for directory in [final.parent, *created] if renamed else created:
                _fsync_directory(directory)
        except OSError:
            self.release(sha256, stored=False, is_attached=lambda _: True)
            raise
        return sha256

    def release(
        self, sha256: str, *, stored: bool, is_attached: Callable[[str], bool]
    ) -> None:
        """Let go of a published blob; ``stored`` says whether a ticket of this
        request now refers to it.

        When nothing refers to it (not ``stored``, held by no other request, and
        ``is_attached`` finds no attachment row), the file is removed. Blocks on
        the database and the disk: call it from a worker thread.
        """
        with self._lock:
            self._holds[sha256] -= 1
            if self._holds[sha256] <= 0:
                del self._holds[sha256]
            if stored or sha256 in self._holds:
                return
            # Under the lock: a publish of the same content waits for the verdict.
            self._remove_unless_attached(sha256, is_attached)

    def _remove_unless_attached(
        self, sha256: str, is_attached: Callable[[str], bool]
    ) -> None:
        try:
            if not is_attached(sha256):
                self.path_of(sha256).unlink(missing_ok=True)
        except (OSError, sqlite3.Error) as error:
            # Left in place: an unreferenced file costs space, a missing one data.
            log.warning(
                "blob_cleanup_failed", sha256=sha256, error=type(error).__name__
            )

    def sweep(
        self, *, is_attached: Callable[[str], bool], older_than_s: float
    ) -> SweepResult:
        """Remove what no ticket needs: blobs no attachment refers to and temporary
        files left by an interrupted upload, each only once untouched for
        ``older_than_s`` seconds.

        The age spares the blobs of requests still on their way to a commit, on
        any node: a publish touches the file it holds. Blocks on the database and
        the disk.
        """
        cutoff = time.time() - older_than_s
        result = SweepResult()
        for path in sorted(self.root.glob("*/*/*")):
            if not _SHA256_HEX.fullmatch(path.name) or not path.is_file():
                continue
            with self._lock:
                if path.name in self._holds or _touched_since(path, cutoff):
                    continue
                if is_attached(path.name):
                    result.kept += 1
                    continue
                result.count(path)
        for path in sorted((self.root / "tmp").glob("*")):
            if path.is_file() and not _touched_since(path, cutoff):
                result.count(path)
        return result


@dataclass
class SweepResult:
    removed: int = 0
    removed_bytes: int = 0
    kept: int = 0

    def count(self, path: Path) -> None:
        """Remove ``path`` and count it; a file already gone counts for nothing."""
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return
        self.removed += 1
        self.removed_bytes += size


def _touched_since(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime >= cutoff
    except FileNotFoundError:
        return True  # gone meanwhile: nothing to do


def shared_blob_store(root: Path) -> BlobStore:
    """The one ``BlobStore`` of this process for ``root``, so that every request
    sees the holds of the others."""
    return _shared_blob_store(root.resolve())


@functools.cache
def _shared_blob_store(root: Path) -> BlobStore:
    return BlobStore(root)


def _make_directories(directory: Path, *, below: Path) -> list[Path]:
    """Create ``directory`` and missing parents; returns the parents whose entries
    changed (each new directory's parent), deepest first."""
    missing = []
    current = directory
    while not current.exists() and current != below.parent:
        missing.append(current)
        current = current.parent
    directory.mkdir(parents=True, exist_ok=True)
    return [path.parent for path in missing]


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
