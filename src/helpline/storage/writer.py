"""Group commit: every write waiting for the disk shares one durable transaction.

A commit to disk costs about the same for one row as for hundreds, so writes that
arrive while a commit is in flight wait for the next one and share it. Each caller
awaits its own job's outcome, which is set only after the transaction holding it is
durable.

Where the work runs is the point of this module. The jobs (a few INSERTs each) run
on the event loop's own thread: the ``sqlite3`` module lets go of the interpreter
lock around every statement, and a writer thread would have to win the lock back
from a busy event loop each time, waiting up to a switch interval (5 ms) per
statement. Only ``BEGIN IMMEDIATE`` and ``COMMIT``, which may wait for a lock or for
the disk, run on a thread of their own: two hand-offs per batch instead of several
per row.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from helpline.storage.engine import SQLITE_BUSY_TIMEOUT_MS
from helpline.storage.errors import Overloaded, StorageUnavailable

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], T]
log = structlog.get_logger("helpline.storage")

_Waiting = tuple[Job[Any], "asyncio.Future[Any]"]


def connect_for_writing(path: Path) -> sqlite3.Connection:
    """A connection that commits durably (WAL, ``synchronous=FULL``) and leaves
    transactions to its caller."""
    connection = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
        timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


class GroupCommitWriter:
    """Runs write jobs on one SQLite connection, many to a transaction.

    Use it from one event loop. ``max_pending`` bounds the jobs waiting or in
    flight: past it ``submit`` raises ``Overloaded`` at once. ``max_batch`` bounds
    the jobs of one transaction, and so how long the loop runs them without a break.
    ``on_idle`` carries low-priority bookkeeping such as key usage: it joins a
    transaction at most every ``idle_seconds``, in one of its own when no writes
    come, and once more when the writer stops.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_pending: int = 10_000,
        max_batch: int = 256,
        idle_seconds: float = 1.0,
        on_idle: Job[None] | None = None,
    ) -> None:
        self._path = path
        self._max_pending = max_pending
        self._max_batch = max_batch
        self._idle_seconds = idle_seconds
        self._on_idle = on_idle
        self._connection: sqlite3.Connection | None = None
        self._disk: ThreadPoolExecutor | None = None
        self._waiting: list[_Waiting] = []
        self._in_flight = 0
        self._flusher: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_work_due = 0.0

    def start(self) -> None:
        self._connection = connect_for_writing(self._path)
        self._disk = ThreadPoolExecutor(1, thread_name_prefix="helpline-commit")
        self._idle_work_due = time.monotonic() + self._idle_seconds

    async def stop(self) -> None:
        """Commit what is queued, run the idle work once more, and close."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        while self._flusher is not None:
            await self._flusher
        if self._connection is None:
            return
        if self._on_idle is not None:
            await self._commit([], with_idle_work=True)
        self._connection.close()
        self._connection = None
        if self._disk is not None:
            self._disk.shutdown()

    async def submit(self, job: Job[T]) -> T:
        """Run ``job`` in the next group commit and return its result once durable.

        Raises ``Overloaded`` when too many writes are pending, and
        ``StorageUnavailable`` when the job or its transaction failed; then nothing
        of the job was stored.
        """
        if self._connection is None:
            raise StorageUnavailable("the writer is not running")
        if len(self._waiting) + self._in_flight >= self._max_pending:
            raise Overloaded(f"{self._max_pending} writes are already pending")

        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((job, future))
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
        if self._flusher is None and self._connection is not None:
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
        connection = self._connection
        assert connection is not None  # noqa: S101
        try:
            await self._on_disk_thread(connection, "BEGIN IMMEDIATE")
        except sqlite3.Error:
            log.exception("begin_failed")
            _fail(batch)
            return

        jobs = [job for job, _ in batch]
        if with_idle_work and self._on_idle is not None:
            self._idle_work_due = time.monotonic() + self._idle_seconds
            jobs.append(self._on_idle)
        outcomes = []
        for job in jobs:
            outcomes.append(_run_job(connection, job))
            if not connection.in_transaction:
                # SQLite rolled the whole transaction back (a full disk, say):
                # the jobs before this one are gone too.
                log.error("transaction_rolled_back")
                _fail(batch)
                return

        try:
            await self._on_disk_thread(connection, "COMMIT")
        except sqlite3.Error:
            log.exception("commit_failed")
            await self._roll_back(connection)
            _fail(batch)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=False):
            _settle(future, outcome)

    async def _roll_back(self, connection: sqlite3.Connection) -> None:
        if not connection.in_transaction:
            return
        try:
            await self._on_disk_thread(connection, "ROLLBACK")
        except sqlite3.Error:
            log.exception("rollback_failed")

    async def _on_disk_thread(self, connection: sqlite3.Connection, sql: str) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._disk, connection.execute, sql)


def _run_job(connection: sqlite3.Connection, job: Job[Any]) -> tuple[bool, Any]:
    """Run a job inside a savepoint, so a failing job leaves no trace."""
    connection.execute("SAVEPOINT job")
    try:
        result = job(connection)
    except Exception as error:
        log.exception("write_job_failed")
        if connection.in_transaction:
            connection.execute("ROLLBACK TO job")
            connection.execute("RELEASE job")
        failure = StorageUnavailable("the write was not committed")
        failure.__cause__ = error
        return False, failure
    connection.execute("RELEASE job")
    return True, result


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.cancelled():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _fail(batch: list[_Waiting]) -> None:
    for _, future in batch:
        _settle(future, (False, StorageUnavailable("the write was not committed")))
