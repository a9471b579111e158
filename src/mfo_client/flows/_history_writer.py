"""The one thread that owns the run history's SQLite connection, and its group commit.

Every call of `SQLiteRunHistory`, read or write, is a function queued to this thread. The thread
takes the first waiting call and everything queued behind it (up to `MAX_BATCH`), runs them in
ONE transaction, commits once, and only then resolves their futures: a call returns when what
it wrote is committed. While one commit is being written, the task states of other tasks pile
up in the queue and ride the next transaction together, so concurrent tasks share a commit;
when idle, a call commits at once (no linger delay). One FIFO queue also means writes land in
the order they were called: a task's `running` state can never overwrite its final one.

Each call of a batch runs inside its own SAVEPOINT (a call alone has the transaction to itself):
a call that raises (a Python error, or an SQLite error of its statement alone: a constraint, a
bad value) is rolled back alone, and its error goes to its caller only. Any other SQLite error
(disk full, I/O) aborts the batch, which is then redone one call per transaction, so each call
that can succeed does and each one that cannot gets its own error; a busy database (another
process holding the lock past the busy timeout) fails the whole batch at once instead of
waiting once per call.

A call runs even when its caller stops waiting (is cancelled): what was asked is written, in
its place in the order. The results of a batch go back to the event loop in one callback, not
one wake-up per call. The connection is opened by the thread, on its first batch, and again on
the next batch if opening failed (the error goes to the batch's callers).

Kept apart from the delivery store's writer (`flows/` does not import `delivery/`, and their
transactions differ); both take their batches with `mfo_client._batches.take_batch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from mfo_client._batches import STOP, take_batch
from mfo_client.flows._history import RunHistoryError

__all__ = ["MAX_BATCH", "Writer"]

T = TypeVar("T")

MAX_BATCH: Final = 256
"""Most calls in one transaction: bounds how long one commit keeps the others waiting."""


@dataclass(frozen=True, slots=True)
class _Call:
    fn: Callable[[sqlite3.Connection], Any]
    write: bool
    future: asyncio.Future[Any]
    """Created on, and resolved only on, the caller's event loop."""


_CALL_ERRORS: Final = (
    sqlite3.IntegrityError,
    sqlite3.ProgrammingError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
)
"""SQLite errors of one statement, which leave the transaction usable: the caller's alone."""


class Writer:
    """Runs calls on a dedicated thread with one connection, batching them into transactions.

    The thread starts with the first call; calls after `stop` raise `RunHistoryError`.
    """

    def __init__(self, name: str, connect: Callable[[], sqlite3.Connection]) -> None:
        self._name = name
        self._connect = connect
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped: Future[None] = Future()
        self._lock = threading.Lock()
        """Orders "start the thread / queue a call" against "queue the stop": nothing is
        queued behind the stop, where it would never be served."""
        self._closing = False
        self.commits = 0
        """Write transactions committed: fewer than the writes when batching works."""

    async def call(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        """Run `fn` on the thread; returns after the transaction that ran it committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._closing:
                raise RunHistoryError(f"the run history {self._name} is closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name=f"mfo-history:{self._name}", daemon=True
                )
                self._thread.start()
            self._queue.put(_Call(fn, write, future))
        return await future

    async def stop(self) -> None:
        """Let the queued calls finish, then close the connection and end the thread."""
        with self._lock:
            started = self._thread is not None
            if not self._closing:
                self._closing = True
                if started:
                    self._queue.put(STOP)
        if started:
            await asyncio.wrap_future(self._stopped)

    # The thread's side.

    def _serve(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            stopping = False
            while not stopping:
                calls, stopping = take_batch(self._queue, _Call, MAX_BATCH)
                if not calls:
                    continue
                outcomes: list[tuple[Any, BaseException | None]]
                try:
                    if conn is None:
                        conn = self._connect()
                    outcomes = self._execute(conn, calls)
                except BaseException as exc:  # opening failed, or a bug: no caller may hang
                    outcomes = [(None, exc)] * len(calls)
                _resolve(calls, outcomes)
        finally:
            if conn is not None:
                conn.close()
            self._stopped.set_result(None)

    def _execute(
        self, conn: sqlite3.Connection, calls: list[_Call]
    ) -> list[tuple[Any, BaseException | None]]:
        try:
            return self._transaction(conn, calls)
        except sqlite3.Error as exc:
            # SQLite may have rolled back already, and a failing disk may fail this too; either
            # way nothing of the batch is committed.
            with contextlib.suppress(sqlite3.Error):
                conn.rollback()
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if len(calls) > 1 and code not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                # The one that fails gets its error; the others are committed on their own.
                return [self._execute(conn, [call])[0] for call in calls]
            return [(None, exc)] * len(calls)

    def _transaction(
        self, conn: sqlite3.Connection, calls: list[_Call]
    ) -> list[tuple[Any, BaseException | None]]:
        writes = any(call.write for call in calls)
        # IMMEDIATE takes the write lock up front, so a busy file fails here, before any work.
        conn.execute("BEGIN IMMEDIATE" if writes else "BEGIN")
        outcomes: list[tuple[Any, BaseException | None]] = []
        alone = len(calls) == 1  # the transaction is the call's own: no savepoint needed
        for call in calls:
            if not alone:
                conn.execute("SAVEPOINT call")
            try:
                outcomes.append((call.fn(conn), None))
            except Exception as exc:
                # A failed statement leaves the transaction usable (a constraint, a bad
                # value); anything else (I/O, disk full, busy) fails the batch.
                if isinstance(exc, sqlite3.Error) and not isinstance(exc, _CALL_ERRORS):
                    raise
                if not conn.in_transaction:
                    raise
                if alone:
                    conn.execute("ROLLBACK")
                    return [(None, exc)]
                conn.execute("ROLLBACK TO call")
                outcomes.append((None, exc))
            if not alone:
                conn.execute("RELEASE call")
        conn.execute("COMMIT")
        if writes:
            self.commits += 1
        return outcomes


def _resolve(calls: list[_Call], outcomes: list[tuple[Any, BaseException | None]]) -> None:
    """Hand each call its outcome on its own loop: one callback per loop for the batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, Any]]] = {}
    for call, (result, error) in zip(calls, outcomes, strict=True):
        by_loop.setdefault(call.future.get_loop(), []).append((call.future, result, error))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in settled:
        if future.done():  # the caller stopped waiting
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
