"""Group commit: one thread commits every waiting write in one durable transaction.

A commit to disk costs the same for one row as for hundreds, so writes that arrive
while a commit is in flight wait for the next one and share it. Each caller awaits
its own job's outcome, which is set only after the transaction holding it is durable.

The writer speaks to SQLite through the bare ``sqlite3`` module: it holds the
interpreter lock for a few microseconds a statement, where a general-purpose query
layer would take tens and slow the event loop beside it.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import structlog

from helpline.storage.engine import SQLITE_BUSY_TIMEOUT_MS
from helpline.storage.errors import Overloaded, StorageUnavailable

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], T]
log = structlog.get_logger("helpline.storage")


@dataclass(slots=True)
class _Pending(Generic[T]):
    job: Job[T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop


_STOP = object()


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

    ``max_pending`` bounds the queue: past it ``submit`` raises ``Overloaded`` at once.
    ``on_idle`` carries low-priority bookkeeping such as key usage: it runs in a
    transaction of its own at most every ``idle_seconds``, whether or not writes keep
    arriving, and once more when the writer stops.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_pending: int = 10_000,
        max_batch: int = 1_000,
        idle_seconds: float = 1.0,
        on_idle: Job[None] | None = None,
    ) -> None:
        self._path = path
        self._connection: sqlite3.Connection | None = None
        self._max_pending = max_pending
        self._max_batch = max_batch
        self._idle_seconds = idle_seconds
        self._on_idle = on_idle
        self._queue: queue.SimpleQueue[_Pending[Any] | object] = queue.SimpleQueue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._idle_work_due = time.monotonic() + idle_seconds
        self._thread = threading.Thread(
            target=self._run, name="helpline-writer", daemon=True
        )

    def start(self) -> None:
        self._connection = connect_for_writing(self._path)
        self._thread.start()

    def stop(self) -> None:
        """Commit what is queued, run the idle work once more, and end the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def submit(self, job: Job[T]) -> T:
        """Run ``job`` in the next group commit and return its result once durable.

        Raises ``Overloaded`` when the queue is full, ``StorageUnavailable`` when the
        transaction could not be committed.
        """
        with self._pending_lock:
            if self._pending >= self._max_pending:
                raise Overloaded(f"{self._pending} writes are already waiting")
            self._pending += 1
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Pending(job, future, loop))
        return await future

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self._idle_seconds)
            except queue.Empty:
                self._run_idle_work()
                continue
            batch, stopping = self._drain(first)
            if batch:
                self._commit(batch)
            if stopping:
                self._run_idle_work()
                return
            if time.monotonic() >= self._idle_work_due:
                self._run_idle_work()

    def _drain(self, first: object) -> tuple[list[_Pending[Any]], bool]:
        batch: list[_Pending[Any]] = []
        item = first
        while True:
            if item is _STOP:
                return batch, True
            assert isinstance(item, _Pending)  # noqa: S101
            batch.append(item)
            if len(batch) >= self._max_batch:
                return batch, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False

    def _transaction(self, jobs: list[Job[Any]]) -> list[Any]:
        """Run ``jobs`` in one transaction; their results once it is committed."""
        connection = self._connection
        assert connection is not None, "the writer was not started"  # noqa: S101
        connection.execute("BEGIN IMMEDIATE")
        try:
            results = [job(connection) for job in jobs]
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return results

    def _commit(self, batch: list[_Pending[Any]]) -> None:
        try:
            results = self._transaction([pending.job for pending in batch])
        except Exception:
            if len(batch) > 1:
                # One bad job must not fail its neighbours: give each its own commit.
                for pending in batch:
                    self._commit([pending])
                return
            log.exception("write_failed")
            failure = StorageUnavailable("the write was not committed")
            self._settle(batch, [(False, failure)])
            return
        self._settle(batch, [(True, result) for result in results])

    def _settle(
        self, batch: list[_Pending[Any]], outcomes: list[tuple[bool, Any]]
    ) -> None:
        with self._pending_lock:
            self._pending -= len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for pending, outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(pending.loop, []).append((pending.future, outcome))
        for loop, settled in by_loop.items():
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, settled)

    def _run_idle_work(self) -> None:
        self._idle_work_due = time.monotonic() + self._idle_seconds
        if self._on_idle is None:
            return
        try:
            self._transaction([self._on_idle])
        except Exception:
            log.exception("idle_write_failed")


def _resolve(settled: list[tuple[asyncio.Future[Any], tuple[bool, Any]]]) -> None:
    for future, (ok, value) in settled:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
