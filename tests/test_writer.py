"""The group-commit writer on each backend: shared commits, isolated failures."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import psycopg
import pytest

from helpline.storage.engine import postgres_dsn, sqlite_file
from helpline.storage.errors import Overloaded, StorageUnavailable
from helpline.storage.postgres import PostgresCommitter, PostgresTransaction
from helpline.storage.writer import GroupCommitWriter, SqliteCommitter


class Notes:
    """A scratch table, and writer jobs that add to it, on one backend."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.path = sqlite_file(database_url)
        self.pool: asyncpg.Pool | None = None
        self.statements: list[str] = []
        if self.path is not None:
            with sqlite3.connect(self.path) as connection:
                connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, v)")
        else:
            with psycopg.connect(postgres_dsn(database_url), autocommit=True) as pg:
                pg.execute("CREATE TABLE notes (id serial PRIMARY KEY, v text)")

    def writer(self, **options: Any) -> GroupCommitWriter:
        if self.path is not None:
            return GroupCommitWriter(SqliteCommitter(self.path), **options)
        return GroupCommitWriter(PostgresCommitter(self._pool, timeout=5), **options)

    async def start(self, writer: GroupCommitWriter) -> None:
        if self.path is None:
            self.pool = await asyncpg.create_pool(
                postgres_dsn(self.url), min_size=1, max_size=2
            )
        await writer.start()

    async def stop(self, writer: GroupCommitWriter) -> None:
        await writer.stop()
        if self.pool is not None:
            await self.pool.close()

    def submit(self, writer: GroupCommitWriter, job: Any) -> Awaitable[Any]:
        if self.path is not None:
            return writer.submit(job)
        return writer.submit_async(job)

    def insert(self, value: str, *, then_fail: bool = False) -> Any:
        if self.path is not None:

            def sqlite_job(connection: sqlite3.Connection) -> int:
                cursor = connection.execute(
                    "INSERT INTO notes (v) VALUES (?)", (value,)
                )
                if then_fail:
                    raise RuntimeError("this job fails after writing")
                assert cursor.lastrowid is not None
                return cursor.lastrowid

            return sqlite_job

        async def postgres_job(transaction: PostgresTransaction) -> int:
            new_id: int = await transaction.connection.fetchval(
                "INSERT INTO notes (v) VALUES ($1) RETURNING id", value
            )
            if then_fail:
                raise RuntimeError("this job fails after writing")
            return new_id

        return postgres_job

    def call(self, action: Callable[[], None]) -> Any:
        """A job that only calls ``action``."""
        if self.path is not None:
            return lambda _connection: action()

        async def job(_transaction: PostgresTransaction) -> None:
            action()

        return job

    def stored(self) -> list[str]:
        if self.path is not None:
            with sqlite3.connect(self.path) as connection:
                return [row[0] for row in connection.execute("SELECT v FROM notes")]
        with psycopg.connect(postgres_dsn(self.url)) as connection:
            return [row[0] for row in connection.execute("SELECT v FROM notes")]

    def transactions_used(self) -> int:
        """How many transactions wrote the notes."""
        if self.path is not None:
            return self.statements.count("COMMIT")
        with psycopg.connect(postgres_dsn(self.url)) as connection:
            row = connection.execute(
                "SELECT count(DISTINCT xmin::text) FROM notes"
            ).fetchone()
            assert row is not None
            return int(row[0])

    def traced(self, value: str) -> Any:
        """``insert``, and on SQLite trace the statements of the connection from
        then on."""
        if self.path is None:
            return self.insert(value)
        inner = self.insert(value)

        def job(connection: sqlite3.Connection) -> int:
            connection.set_trace_callback(self.statements.append)
            result: int = inner(connection)
            return result

        return job

    def _pool(self) -> asyncpg.Pool:
        assert self.pool is not None
        return self.pool


@pytest.fixture
def notes(database_url: str) -> Notes:
    return Notes(database_url)


def test_writer_commits_many_jobs_and_isolates_a_failing_one(notes: Notes) -> None:
    writer = notes.writer()

    async def submit_all() -> list[object]:
        await notes.start(writer)
        jobs = [notes.insert(str(n)) for n in range(50)]
        jobs.insert(25, notes.insert("doomed", then_fail=True))
        outcomes = await asyncio.gather(
            *(notes.submit(writer, job) for job in jobs), return_exceptions=True
        )
        await notes.stop(writer)
        return outcomes

    outcomes = asyncio.run(submit_all())

    assert isinstance(outcomes[25], StorageUnavailable)
    ids = [outcome for index, outcome in enumerate(outcomes) if index != 25]
    assert len(set(ids)) == 50
    stored = notes.stored()
    assert "doomed" not in stored
    assert len(stored) == 50


def test_writer_shares_commits_between_concurrent_jobs(notes: Notes) -> None:
    writer = notes.writer()

    async def submit_all() -> list[int]:
        await notes.start(writer)
        first = notes.submit(writer, notes.traced("first"))
        ids = await asyncio.gather(
            first, *(notes.submit(writer, notes.insert(str(n))) for n in range(199))
        )
        await notes.stop(writer)
        return ids

    ids = asyncio.run(submit_all())

    assert len(set(ids)) == 200
    assert len(notes.stored()) == 200
    assert notes.transactions_used() <= 2


def test_writer_refuses_work_past_its_queue_bound(notes: Notes) -> None:
    writer = notes.writer(max_pending=3)

    async def submit_all() -> list[object]:
        await notes.start(writer)
        outcomes = await asyncio.gather(
            *(notes.submit(writer, notes.insert(str(n))) for n in range(5)),
            return_exceptions=True,
        )
        await notes.stop(writer)
        return outcomes

    outcomes = asyncio.run(submit_all())

    assert [type(outcome) for outcome in outcomes[3:]] == [Overloaded, Overloaded]
    assert len(notes.stored()) == 3


def test_writer_runs_bookkeeping_while_busy_when_idle_and_at_stop(
    notes: Notes,
) -> None:
    runs: list[str] = []
    phase = ["busy"]
    writer = notes.writer(
        idle_seconds=0.05, on_idle=notes.call(lambda: runs.append(phase[0]))
    )

    async def exercise() -> None:
        await notes.start(writer)
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            await notes.submit(writer, notes.insert("0"))
        phase[0] = "idle"
        await asyncio.sleep(0.2)
        phase[0] = "stop"
        await notes.stop(writer)

    asyncio.run(exercise())

    assert runs.count("busy") >= 2
    assert runs.count("idle") == 1
    assert runs[-1] == "stop"


def test_writer_refuses_work_when_stopped(notes: Notes) -> None:
    writer = notes.writer()

    with pytest.raises(StorageUnavailable):
        asyncio.run(notes.submit(writer, notes.insert("1")))


@pytest.mark.backends("postgresql")
def test_postgres_batch_fails_promptly_when_the_server_is_unreachable(
    notes: Notes,
) -> None:
    writer = notes.writer()

    async def submit_after_the_pool_closes() -> list[object]:
        await notes.start(writer)
        assert notes.pool is not None
        notes.pool.terminate()
        outcomes = await asyncio.gather(
            *(notes.submit(writer, notes.insert(str(n))) for n in range(3)),
            return_exceptions=True,
        )
        await writer.stop()
        return outcomes

    started = time.monotonic()
    outcomes = asyncio.run(submit_after_the_pool_closes())

    assert all(isinstance(outcome, StorageUnavailable) for outcome in outcomes)
    assert time.monotonic() - started < 5
    assert notes.stored() == []


def _begins_traced(begins: list[int]) -> Any:
    """A job that records, from then on, the thread each BEGIN of its
    connection runs on."""

    def trace(statement: str) -> None:
        if statement.startswith("BEGIN"):
            begins.append(threading.get_ident())

    def job(connection: sqlite3.Connection) -> None:
        connection.set_trace_callback(trace)

    return job


@pytest.mark.backends("sqlite")
def test_sqlite_writer_begins_on_the_loop_while_the_lock_is_free(
    notes: Notes,
) -> None:
    writer = notes.writer()
    begins: list[int] = []

    async def write_twice() -> int:
        await notes.start(writer)
        await writer.submit(_begins_traced(begins))
        await writer.submit(notes.insert("second"))
        await notes.stop(writer)
        return threading.get_ident()

    loop_thread = asyncio.run(write_twice())

    assert begins == [loop_thread]
    assert notes.stored() == ["second"]


@pytest.mark.backends("sqlite")
def test_sqlite_writer_waits_off_the_loop_for_a_lock_held_elsewhere(
    notes: Notes,
) -> None:
    assert notes.path is not None
    writer = notes.writer()
    begins: list[int] = []
    blocker = sqlite3.connect(notes.path, isolation_level=None, check_same_thread=False)

    async def write_while_blocked() -> tuple[int, float, float]:
        await notes.start(writer)
        await writer.submit(_begins_traced(begins))
        blocker.execute("BEGIN IMMEDIATE")
        released_at: list[float] = []

        def release_later() -> None:
            time.sleep(0.6)
            released_at.append(time.monotonic())
            blocker.execute("ROLLBACK")

        releaser = threading.Thread(target=release_later)
        releaser.start()
        written = asyncio.ensure_future(writer.submit(notes.insert("waited")))
        longest_gap, last = 0.0, time.monotonic()
        while not written.done():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            longest_gap, last = max(longest_gap, now - last), now
        await written
        done_at = time.monotonic()
        releaser.join()
        await notes.stop(writer)
        return threading.get_ident(), longest_gap, done_at - released_at[0]

    loop_thread, longest_gap, after_release = asyncio.run(write_while_blocked())
    blocker.close()

    assert after_release >= 0
    assert longest_gap < 0.3, "the event loop waited for SQLite's lock"
    assert begins[-1] != loop_thread
    assert notes.stored() == ["waited"]
