"""Database URLs and engines, with each backend's settings for durability.

Helpline takes ``sqlite:///path/file.db`` (the embedded default) or
``postgresql://user@host:port/database``. SQLAlchemy, which the migrations and the
operator commands use, reaches PostgreSQL through psycopg; the serving hot path
uses asyncpg (see ``storage/postgres.py``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

DEFAULT_DATABASE_URL = "sqlite:///helpline.db"
SQLITE_BUSY_TIMEOUT_MS = 5_000
# Any constant of our own: the advisory lock under which nodes migrate and bootstrap.
_SCHEMA_LOCK_ID = 0x48454C50  # "HELP"
_POSTGRES_NAMES = frozenset({"postgres", "postgresql"})


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """How a PostgreSQL node connects: ``size`` connections at most, each connect
    given up after ``connect_timeout`` seconds and each statement after
    ``statement_timeout`` seconds."""

    size: int = 10
    connect_timeout: float = 5.0
    statement_timeout: float = 10.0


def backend_name(url: str) -> str:
    """``sqlite`` or ``postgresql``; raises ``ValueError`` for any other URL."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ValueError(_unsupported(url)) from None
    name = parsed.get_backend_name()
    if name == "sqlite":
        return "sqlite"
    if name in _POSTGRES_NAMES:
        return "postgresql"
    raise ValueError(_unsupported(parsed.render_as_string()))


def is_sqlite(url: str) -> bool:
    return backend_name(url) == "sqlite"


def is_postgres(url: str) -> bool:
    return backend_name(url) == "postgresql"


def sqlite_file(url: str) -> Path | None:
    """The file an SQLite URL points at; None for an in-memory or other database."""
    if not is_sqlite(url):
        return None
    database = sa.make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def postgres_dsn(url: str) -> str:
    """A ``postgresql://`` URL as libpq and asyncpg take it, whatever driver it
    names."""
    parsed = sa.make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def make_engine(
    url: str, *, immediate: bool = False, pool: PoolSettings | None = None
) -> sa.Engine:
    """An engine for ``url``; ``immediate`` makes SQLite take the write lock at BEGIN.

    SQLite connections run in WAL mode with ``synchronous=FULL``: a commit returns
    only once it is on disk. PostgreSQL commits are durable with its defaults
    (``synchronous_commit=on``). Raises ``ValueError`` for an unsupported URL.
    """
    if is_postgres(url):
        return _postgres_engine(url, pool or PoolSettings())

    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, poolclass=sa.pool.QueuePool, pool_size=4)
    _configure_sqlite(engine, begin="BEGIN IMMEDIATE" if immediate else "BEGIN")
    return engine


class WriteGate:
    """Turns, within one process, at an SQLite file's write lock.

    SQLite's own busy wait sleeps in growing steps (up to 100 ms) and favours no
    one, so a writer that loses the lock a few times in a row waits far longer
    than the transaction that held it. Writers of one process that take this gate
    around their write transactions wait for each other here instead, and wake
    the moment it is free: the API's group commit, the console and the outbox's
    dispatcher. Other processes still meet at SQLite's lock.
    """

    _gates: dict[Path, threading.Lock] = {}  # noqa: RUF012 - one per file, shared
    _guard = threading.Lock()

    def __init__(self, path: Path) -> None:
        with self._guard:
            self._lock = self._gates.setdefault(path.resolve(), threading.Lock())

    def acquire(self) -> bool:
        """Wait for the turn; after the busy timeout, go on without it and let
        SQLite decide. Returns whether the turn was taken, for ``release``."""
        return self._lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)

    def try_acquire(self) -> bool:
        """Take the turn if it is free now; never waits."""
        return self._lock.acquire(blocking=False)

    def release(self, taken: bool) -> None:
        if taken:
            self._lock.release()

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        taken = self.acquire()
        try:
            yield
        finally:
            self.release(taken)


def hold_schema_lock(connection: sa.Connection) -> None:
    """Serialize migrations and the first start across every node, until the
    transaction ends.

    On SQLite the ``BEGIN IMMEDIATE`` of an ``immediate`` engine already holds
    the database's one write lock; on PostgreSQL this takes an advisory lock.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _SCHEMA_LOCK_ID}
        )


def _postgres_engine(url: str, pool: PoolSettings) -> sa.Engine:
    parsed = sa.make_url(url).set(drivername="postgresql+psycopg")
    timeout_ms = int(pool.statement_timeout * 1000)
    return sa.create_engine(
        parsed,
        pool_size=max(1, min(pool.size, 5)),
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": max(1, round(pool.connect_timeout)),
            "options": f"-c statement_timeout={timeout_ms}",
            "application_name": "helpline-admin",
        },
    )


def _configure_sqlite(engine: sa.Engine, *, begin: str) -> None:
    # The sqlite3 module's own transaction handling issues BEGIN lazily and never
    # for SELECT; taking over BEGIN makes transactions real (see SQLAlchemy's
    # "Serializable isolation / Savepoints / Transactional DDL" notes for pysqlite).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql(begin)


def _unsupported(url: str) -> str:
    return (
        f"unsupported database URL {url!r}: use sqlite:///path/file.db or "
        "postgresql://user@host:5432/database"
    )
