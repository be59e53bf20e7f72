"""Group commit: every write waiting for the disk shares one durable transaction.

A commit to disk costs about the same for one row as for hundreds, so writes that
arrive while a commit is in flight wait for the next one and share it. Each caller
awaits its own job's outcome, which is set only after the transaction holding it is
durable.

The queue, its bound and the batching live here; how a batch becomes one
transaction is a ``Committer``'s business: ``SqliteCommitter`` below, and
``PostgresCommitter`` in ``storage/postgres.py``.

Where SQLite's work runs is the point of ``SqliteCommitter``. The jobs (a few
INSERTs each) run on the event loop's own thread: the ``sqlite3`` module lets go of
the interpreter lock around every statement, and a writer thread would have to win
the lock back from a busy event loop each time, waiting up to a switch interval
(5 ms) per statement. Only ``COMMIT``, which waits for the disk, runs on a thread
of its own, with before it the one long statement that indexes the batch's
tickets for search: one hand-off per batch instead of several per row.

``BEGIN IMMEDIATE`` runs on the loop's thread too whenever the write lock is free,
which under load is nearly always: it then takes microseconds, where the hand-off
to a thread took 2-6 ms of waiting for the busy loop to let go of the
interpreter, and the next batch could not start before it. So that the loop never
waits for a lock, the writer's connection has no busy timeout of its own: a
``BEGIN`` that finds the lock taken (by another writer of this process, or by
another process) is redone on the thread, with the timeout.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import structlog

from helpline.storage.engine import SQLITE_BUSY_TIMEOUT_MS, WriteGate
from helpline.storage.errors import Overloaded, StorageUnavailable

T = TypeVar("T")
# Each SQLite connection's page cache, in KiB (SQLite's own default is 2,000).
# With a million tickets stored (and the search index merged as migration 0006
# sets it), 16 MiB made the writer's 64-ticket commits about a tenth faster than
# 2 MiB, and 64 MiB no faster than 16 (2-core development machine). A cache fills
# up to its size only with pages the connection reads or writes, so a busy
# server's memory grows by up to this much per connection (the writer's and the
# reader's). Memory-mapped reads (mmap_size) measured no faster, and are off.
SQLITE_CACHE_KIB = 16 * 1024
# A job takes the committer's transaction handle: a ``sqlite3.Connection`` for
# SQLite, a ``PostgresTransaction`` for PostgreSQL.
Job = Callable[[Any], T]
# Whether a job succeeded, and its result or its exception.
Outcome = tuple[bool, Any]
log = structlog.get_logger("helpline.storage")


class Committer(Protocol):
    """Turns a batch of jobs into one durable transaction."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def commit(self, jobs: Sequence[Job[Any]]) -> list[Outcome]:
        """Run ``jobs`` in one transaction, each isolated from the others' failures,
        and return their outcomes once the transaction is durable.

        Raises ``StorageUnavailable`` when the transaction as a whole failed: then
        nothing of any job was stored.
        """
        ...


class TransactionHooks(Protocol):
    """Work a ``SqliteCommitter`` runs in every transaction, around its jobs."""

    def begun(self, connection: sqlite3.Connection) -> None:
        """Just after BEGIN, before any job."""

    def ending(self, connection: sqlite3.Connection) -> None:
        """After the jobs, on the event loop's thread; raising rolls the whole
        batch back."""

    def committing(self, connection: sqlite3.Connection) -> None:
        """Just before COMMIT, on the committing thread: for one long statement,
        which runs there without holding the interpreter. Raising rolls the whole
        batch back."""


class _Waiting:
    __slots__ = ("future", "job", "order")

    def __init__(
        self, job: Job[Any], future: asyncio.Future[Any], order: tuple[Any, ...]
    ) -> None:
        self.job = job
        self.future = future
        self.order = order


class GroupCommitWriter:
    """Runs write jobs through one committer, many to a transaction.

    Use it from one event loop. ``max_pending`` bounds the jobs waiting or in
    flight: past it ``submit`` raises ``Overloaded`` at once. ``max_batch`` bounds
    the jobs of one transaction, and so how long the loop runs them without a break.
    ``on_idle`` carries low-priority bookkeeping such as key usage: it joins a
    transaction at most every ``idle_seconds``, in one of its own when no writes
    come, and once more when the writer stops.
    """

    def __init__(
        self,
        committer: Committer,
        *,
        max_pending: int = 10_000,
        max_batch: int = 256,
        idle_seconds: float = 1.0,
        on_idle: Job[Any] | None = None,
    ) -> None:
        self._committer = committer
        self._max_pending = max_pending
        self._max_batch = max_batch
        self._idle_seconds = idle_seconds
        self._on_idle = on_idle
        self._running = False
        self._waiting: list[_Waiting] = []
        self._in_flight = 0
        self._flusher: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_work_due = 0.0

    async def start(self) -> None:
        await self._committer.open()
        self._running = True
        self._idle_work_due = time.monotonic() + self._idle_seconds

    async def stop(self) -> None:
        """Commit what is queued, run the idle work once more, and close."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        while self._flusher is not None:
            await self._flusher
        if not self._running:
            return
        if self._on_idle is not None:
            await self._commit([], with_idle_work=True)
        self._running = False
        await self._committer.close()

    async def submit(self, job: Job[T], *, order: tuple[Any, ...] = ()) -> T:
        """Run ``job`` in the next group commit and return its result once durable.

        Jobs of one batch run in the order of ``order`` (then of arrival), so that
        transactions on several nodes take their row locks in one order.

        Raises ``Overloaded`` when too many writes are pending, and
        ``StorageUnavailable`` when the job or its transaction failed; then nothing
        of the job was stored.
        """
        return await self._enqueue(job, order)  # type: ignore[no-any-return]

    async def submit_async(
        self, job: Callable[[Any], Awaitable[T]], *, order: tuple[Any, ...] = ()
    ) -> T:
        """``submit`` for a committer whose jobs are coroutine functions."""
        return await self._enqueue(job, order)  # type: ignore[no-any-return]

    async def _enqueue(self, job: Job[Any], order: tuple[Any, ...]) -> Any:
        if not self._running:
            raise StorageUnavailable("the writer is not running")
        if len(self._waiting) + self._in_flight >= self._max_pending:
            raise Overloaded(f"{self._max_pending} writes are already pending")

        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(job, future, order))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                self._in_flight = len(batch)
                due = time.monotonic() >= self._idle_work_due
                await self._commit(batch, with_idle_work=due)
                self._in_flight = 0
        finally:
            self._flusher = None
        self._schedule_idle_work()

    def _schedule_idle_work(self) -> None:
        if self._on_idle is None or self._idle_timer is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._idle_work_due - time.monotonic())
        self._idle_timer = loop.call_later(delay, self._start_idle_work)

    def _start_idle_work(self) -> None:
        self._idle_timer = None
        if self._flusher is None and self._running:
            self._flusher = asyncio.create_task(self._commit_idle_work())

    async def _commit_idle_work(self) -> None:
        try:
            await self._commit([], with_idle_work=True)
        finally:
            self._flusher = None
        if self._waiting:
            self._flusher = asyncio.create_task(self._flush())

    async def _commit(self, batch: list[_Waiting], *, with_idle_work: bool) -> None:
        """One transaction: its jobs' futures are settled when it is durable."""
        batch.sort(key=lambda waiting: waiting.order)
        jobs = [waiting.job for waiting in batch]
        if with_idle_work and self._on_idle is not None:
            self._idle_work_due = time.monotonic() + self._idle_seconds
            jobs.append(self._on_idle)
        try:
            outcomes = await self._committer.commit(jobs)
        except StorageUnavailable:
            _fail(batch)
            return
        except Exception:
            log.exception("commit_failed")
            _fail(batch)
            return
        for waiting, outcome in zip(batch, outcomes, strict=False):
            _settle(waiting.future, outcome)


class SqliteCommitter:
    """One SQLite connection, one transaction a batch (with ``hooks`` around its
    jobs, if given)."""

    def __init__(self, path: Path, *, hooks: TransactionHooks | None = None) -> None:
        self._path = path
        self._hooks = hooks
        self._connection: sqlite3.Connection | None = None
        self._disk: ThreadPoolExecutor | None = None
        self._gate = WriteGate(path)
        self._turn_taken = False

    async def open(self) -> None:
        self._connection = connect_for_writing(self._path)
        self._disk = ThreadPoolExecutor(1, thread_name_prefix="helpline-commit")

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._disk is not None:
            self._disk.shutdown()
            self._disk = None

    async def commit(self, jobs: Sequence[Job[Any]]) -> list[Outcome]:
        """Run the jobs one after another in one transaction; if one fails, roll
        back and run them again, each in a savepoint, so that only it fails.

        Savepoints cost two statements a job, and jobs almost never fail: they
        are paid for only when one does.
        """
        connection = self._connection
        if connection is None:
            raise StorageUnavailable("the writer is not running")
        await self._begin(connection)
        try:
            outcomes = _run_together(connection, jobs)
            if outcomes is None:
                await self._roll_back(connection)
                await self._begin(connection)
                outcomes = _run_each_alone(connection, jobs)
            if self._hooks is not None:
                self._hooks.ending(connection)
        except Exception:
            await self._roll_back(connection)
            raise

        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._disk, self._finish, connection)
        except sqlite3.Error as error:
            log.exception("commit_failed")
            await self._roll_back(connection)
            raise StorageUnavailable("the write was not committed") from error
        finally:
            self._end_turn(connection)
        return outcomes

    def _finish(self, connection: sqlite3.Connection) -> None:
        if self._hooks is not None:
            self._hooks.committing(connection)
        connection.execute("COMMIT")

    async def _begin(self, connection: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE after this process's turn at the write lock: here if
        both are free, else on the disk thread, so the event loop never waits."""
        loop = asyncio.get_running_loop()
        try:
            if not self._begin_at_once(connection):
                await loop.run_in_executor(
                    self._disk, self._take_turn_and_begin, connection
                )
        except sqlite3.Error as error:
            log.exception("begin_failed")
            raise StorageUnavailable("the write was not committed") from error
        if self._hooks is not None:
            try:
                self._hooks.begun(connection)
            except Exception:
                await self._roll_back(connection)
                raise

    def _begin_at_once(self, connection: sqlite3.Connection) -> bool:
        """BEGIN IMMEDIATE without waiting, if the turn and SQLite's lock are
        both free; returns whether it began."""
        if self._turn_taken or not self._gate.try_acquire():
            return False
        self._turn_taken = True
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            self._end_turn(connection)
            if error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
                return False
            raise
        return True

    def _take_turn_and_begin(self, connection: sqlite3.Connection) -> None:
        if not self._turn_taken:
            self._turn_taken = self._gate.acquire()
        try:
            connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            try:
                connection.execute("BEGIN IMMEDIATE")
            finally:
                connection.execute("PRAGMA busy_timeout=0")
        except sqlite3.Error:
            self._end_turn(connection)
            raise

    def _end_turn(self, connection: sqlite3.Connection) -> None:
        """Give the turn back once no transaction is open."""
        if self._turn_taken and not connection.in_transaction:
            self._turn_taken = False
            self._gate.release(True)

    async def _roll_back(self, connection: sqlite3.Connection) -> None:
        try:
            if connection.in_transaction:
                await self._on_disk_thread(connection, "ROLLBACK")
        except sqlite3.Error:
            log.exception("rollback_failed")
        finally:
            self._end_turn(connection)

    async def _on_disk_thread(self, connection: sqlite3.Connection, sql: str) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._disk, connection.execute, sql)


def connect_sqlite(path: Path) -> sqlite3.Connection:
    """A connection for the event loop's thread that leaves transactions to its
    caller, waits for SQLite's lock up to the busy timeout and caches up to
    ``SQLITE_CACHE_KIB`` of pages."""
    connection = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
        timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
    )
    # A negative size is in KiB; a positive one would count pages.
    connection.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    return connection


def connect_for_writing(path: Path) -> sqlite3.Connection:
    """A connection that commits durably (WAL, ``synchronous=FULL``), leaves
    transactions to its caller, and is refused SQLite's lock at once when it is
    taken (see ``SqliteCommitter._begin``)."""
    connection = connect_sqlite(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA busy_timeout=0")
    return connection


def _run_together(
    connection: sqlite3.Connection, jobs: Sequence[Job[Any]]
) -> list[Outcome] | None:
    """The jobs' outcomes, or None when one raised: the batch must be redone."""
    outcomes: list[Outcome] = []
    for job in jobs:
        try:
            outcomes.append((True, job(connection)))
        except Exception as error:
            log.info("batch_retried_job_by_job", error=type(error).__name__)
            return None
    return outcomes


def _run_each_alone(
    connection: sqlite3.Connection, jobs: Sequence[Job[Any]]
) -> list[Outcome]:
    outcomes = []
    for job in jobs:
        outcomes.append(_run_job(connection, job))
        if not connection.in_transaction:
            # SQLite rolled the whole transaction back (a full disk, say): the
            # jobs before this one are gone too.
            log.error("transaction_rolled_back")
            raise StorageUnavailable("the write was not committed")
    return outcomes


def _run_job(connection: sqlite3.Connection, job: Job[Any]) -> Outcome:
    """Run a job inside a savepoint, so a failing job leaves no trace."""
    connection.execute("SAVEPOINT job")
    try:
        result = job(connection)
    except Exception as error:
        log.exception("write_job_failed")
        if connection.in_transaction:
            connection.execute("ROLLBACK TO job")
            connection.execute("RELEASE job")
        return False, not_committed(error)
    connection.execute("RELEASE job")
    return True, result


def not_committed(cause: BaseException) -> StorageUnavailable:
    failure = StorageUnavailable("the write was not committed")
    failure.__cause__ = cause
    return failure


def _settle(future: asyncio.Future[Any], outcome: Outcome) -> None:
    if future.cancelled():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _fail(batch: list[_Waiting]) -> None:
    for waiting in batch:
        _settle(
            waiting.future, (False, StorageUnavailable("the write was not committed"))
        )
