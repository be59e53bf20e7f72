"""Online backups of an SQLite database, taken while a server may be writing.

The backup is made with SQLite's backup API, a bounded number of pages per step,
from a connection that holds one read transaction open for the whole copy. In WAL
mode that transaction is a snapshot: the server keeps committing beside it, and
every step copies pages of the same moment, so the backup never restarts and
holds exactly the tickets committed when it began.

The pages go to a temporary file beside the output, which is checked with
``PRAGMA integrity_check`` and only then renamed into place: a failed backup
leaves no file behind, and ``--force`` replaces an old backup only with a good one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from helpline.storage.engine import SQLITE_BUSY_TIMEOUT_MS
from helpline.storage.errors import StorageError

PAGES_PER_STEP = 1024
# Called after each step with the pages still to copy and the pages in all.
StepCallback = Callable[[int, int], None]
_SIDECARS = ("-wal", "-shm", "-journal")


class BackupError(StorageError):
    """The backup could not be made; no output file was written or replaced."""


class OutputExists(BackupError):
    """The output file exists and overwriting it was not allowed."""


@dataclass(frozen=True, slots=True)
class BackupReport:
    """The finished backup: where it is, how big, and how many tickets it holds."""

    path: Path
    size_bytes: int
    ticket_count: int


def backup_sqlite(
    database: Path,
    output: Path,
    *,
    overwrite: bool = False,
    pages_per_step: int = PAGES_PER_STEP,
    on_step: StepCallback | None = None,
) -> BackupReport:
    """Copy the SQLite database at ``database`` to ``output`` as one
    self-contained file (rollback-journal mode, no ``-wal`` beside it).

    ``on_step`` is called after each step of ``pages_per_step`` pages.

    Raises ``OutputExists`` when ``output`` exists and not ``overwrite``, and
    ``BackupError`` when the source cannot be read, the output directory cannot
    be written, or the copy fails its integrity check.
    """
    if not database.is_file():
        raise BackupError(f"there is no database file at {database}")
    _check_output(output, overwrite=overwrite)

    temporary = _temporary_beside(output)
    try:
        ticket_count = _copy_pages(
            database, temporary, pages_per_step=pages_per_step, on_step=on_step
        )
        _place(temporary, output, overwrite=overwrite)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return BackupReport(output, output.stat().st_size, ticket_count)


def _check_output(output: Path, *, overwrite: bool) -> None:
    if output.exists() and not overwrite:
        raise OutputExists(f"{output} already exists; pass --force to overwrite it")
    live = [output.with_name(output.name + suffix) for suffix in _SIDECARS]
    # SQLite would apply a leftover journal of another database to the backup.
    found = [str(path) for path in live if path.exists()]
    if found:
        raise BackupError(
            f"{output} looks like a database in use ({', '.join(found)} beside it); "
            "choose another output file"
        )


def _temporary_beside(output: Path) -> Path:
    """An empty file in the output's directory, so the final rename is atomic."""
    try:
        descriptor, name = tempfile.mkstemp(
            prefix=f".{output.name}.", suffix=".partial", dir=output.parent
        )
    except OSError as problem:
        raise BackupError(f"cannot write to {output.parent}: {problem}") from None
    os.close(descriptor)
    return Path(name)


def _copy_pages(
    database: Path,
    destination: Path,
    *,
    pages_per_step: int,
    on_step: StepCallback | None,
) -> int:
    """Back ``database`` up into the empty file ``destination``, check it, and
    return the number of tickets it holds."""
    try:
        source = _open_snapshot(database)
    except sqlite3.Error as problem:
        raise BackupError(f"cannot read {database}: {problem}") from None
    with contextlib.closing(source):
        copy = sqlite3.connect(destination, isolation_level=None)
        with contextlib.closing(copy):
            try:
                source.backup(copy, pages=pages_per_step, progress=_progress(on_step))
                copy.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.Error as problem:
                raise BackupError(
                    f"the backup of {database} failed: {problem}"
                ) from None
            _check_integrity(copy, database=database)
            return _ticket_count(copy, database=database)


def _progress(on_step: StepCallback | None) -> Callable[[int, int, int], None] | None:
    if on_step is None:
        return None
    return lambda _status, remaining, total: on_step(remaining, total)


def _open_snapshot(database: Path) -> sqlite3.Connection:
    """A read-only connection inside a read transaction that has begun."""
    source = sqlite3.connect(
        f"{database.resolve().as_uri()}?mode=ro",
        uri=True,
        isolation_level=None,
        timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
    )
    try:
        source.execute("BEGIN")
        # A transaction reads nothing until its first statement; this one pins
        # the snapshot that every backup step then copies from.
        source.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    except sqlite3.Error:
        source.close()
        raise
    return source


def _check_integrity(copy: sqlite3.Connection, *, database: Path) -> None:
    problems = [row[0] for row in copy.execute("PRAGMA integrity_check")]
    if problems != ["ok"]:
        raise BackupError(
            f"the backup of {database} failed its integrity check: "
            + "; ".join(problems[:5])
        )


def _ticket_count(copy: sqlite3.Connection, *, database: Path) -> int:
    try:
        return int(copy.execute("SELECT count(*) FROM tickets").fetchone()[0])
    except sqlite3.OperationalError:
        raise BackupError(
            f"{database} has no tickets table: is it a Helpline database?"
        ) from None


def _place(temporary: Path, output: Path, *, overwrite: bool) -> None:
    """Rename the finished backup into place, refusing a file that appeared since
    the check unless ``overwrite``, and make the rename durable."""
    if overwrite:
        os.replace(temporary, output)
    else:
        try:
            # A hard link fails if the name is taken: no race with another writer.
            os.link(temporary, output)
        except FileExistsError:
            raise OutputExists(
                f"{output} already exists; pass --force to overwrite it"
            ) from None
        except OSError as problem:
            raise BackupError(f"cannot create {output}: {problem}") from None
        temporary.unlink()
    directory = os.open(output.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
