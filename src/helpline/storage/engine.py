"""Database URLs and engines, with each backend's settings for durability."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

DEFAULT_DATABASE_URL = "sqlite:///helpline.db"
SQLITE_BUSY_TIMEOUT_MS = 5_000


def is_sqlite(url: str) -> bool:
    return sa.make_url(url).get_backend_name() == "sqlite"


def sqlite_file(url: str) -> Path | None:
    """The file an SQLite URL points at, or None for an in-memory database."""
    database = sa.make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def make_engine(url: str, *, immediate: bool = False) -> sa.Engine:
    """An engine for ``url``; ``immediate`` makes SQLite take the write lock at BEGIN.

    SQLite connections run in WAL mode with ``synchronous=FULL``: a commit returns
    only once it is on disk.
    """
    if not is_sqlite(url):
        message = (
            f"unsupported database URL {sa.make_url(url).render_as_string()!r}: "
            "this version of Helpline stores data in SQLite (sqlite:///path/file.db)"
        )
        raise ValueError(message)

    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, poolclass=sa.pool.QueuePool, pool_size=4)
    _configure_sqlite(engine, begin="BEGIN IMMEDIATE" if immediate else "BEGIN")
    return engine


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
