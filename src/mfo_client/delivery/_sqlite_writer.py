"""The one thread that owns the SQLite connection, and its group commit.

Every call of the store, read or write, is a function queued to this thread. The thread takes the
first waiting call and everything queued behind it (up to `MAX_BATCH`), runs them in ONE
transaction, commits once, and only then resolves their futures. While a commit is syncing, new
`accept` calls pile up in the queue and ride the next transaction together, so the cost of a
commit (the WAL append, and the fsync with `synchronous=FULL`) is shared by every event that
arrived meanwhile. Under load, batches grow by themselves; when idle, a call commits at once, so
there is no linger delay to tune.

Each call runs inside its own SAVEPOINT: a call that raises (the outbox is full, a bad cursor) is
rolled back alone and its error goes to its caller only. An SQLite error (disk full, read-only,
I/O) aborts the whole transaction; the batch is then redone one call per transaction, so a call
that could succeed does, and each one that cannot gets `StoreUnavailableError`. A failed write
marks the store unhealthy. Only a committed call that adds data (an accepted event, the health
probe) marks it healthy again: settling a lease rewrites rows in place and would succeed even
in a full database, so it proves nothing about the next event.

Work waiting (the `pending` count) is cached here so backpressure costs no query. Another
process (an admin command replaying dead letters) may change the file behind our back; `PRAGMA
data_version` tells us so, and the count is then taken again inside the write transaction.
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
from mfo_client.delivery._errors import StoreError, StoreUnavailableError

__all__ = ["MAX_BATCH", "Tx", "Writer"]

T = TypeVar("T")

MAX_BATCH: Final = 512
"""Most calls in one transaction: bounds how long one commit keeps the others waiting."""


@dataclass(slots=True)
class Tx:
    """What a call sees: the connection, inside a transaction, and the running pending count."""

    conn: sqlite3.Connection
    pending: int


@dataclass(frozen=True, slots=True)
class _Call:
    fn: Callable[[Tx], Any]
    write: bool
    grows: bool
    future: Future[Any]


class Writer:
    """Runs calls on a dedicated thread with one connection, batching them into transactions."""

    def __init__(
        self,
        name: str,
        connect: Callable[[], sqlite3.Connection],
        count_pending: Callable[[sqlite3.Connection], int],
    ) -> None:
        self._name = name
        self._connect = connect
        self._count_pending = count_pending
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=f"mfo-store:{name}", daemon=True)
        self._stopped: Future[None] = Future()
        self._closing = False
        self._data_version: int | None = None
        self.pending = 0
        self.commits = 0
        self.healthy = False
        """Unknown counts as unhealthy until a call that grows the store commits."""

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closing

    def start(self) -> None:
        self._thread.start()

    async def call(self, fn: Callable[[Tx], T], *, write: bool, grows: bool = False) -> T:
        """Run `fn` on the thread; returns after the transaction that ran it committed.

        `grows`: the call adds data, so its success shows the store is healthy.
        """
        if self._closing:
            raise StoreError(f"the event store {self._name} is closed")
        future: Future[T] = Future()
        self._queue.put(_Call(fn, write, grows, future))
        return await asyncio.wrap_future(future)

    async def stop(self) -> None:
        """Let the queued calls finish, then close the connection and end the thread."""
        if not self._closing:
            self._closing = True
            self._queue.put(STOP)
        if self._thread.ident is not None:
            await asyncio.wrap_future(self._stopped)

    # The thread's side.

    def _serve(self) -> None:
        conn: sqlite3.Connection | None = None
        broken: StoreError | None = None
        try:
            conn = self._connect()
        except StoreError as exc:
            broken = exc
        except (sqlite3.Error, OSError) as exc:
            broken = StoreUnavailableError(f"cannot open the event store {self._name}: {exc}")
        try:
            stopping = False
            while not stopping:
                calls, stopping = take_batch(self._queue, _Call, MAX_BATCH)
                live = [c for c in calls if c.future.set_running_or_notify_cancel()]
                if not live:
                    continue
                if conn is None:
                    assert broken is not None
                    for call in live:
                        call.future.set_exception(broken)
                    continue
                try:
                    self._execute(conn, live)
                except BaseException as exc:  # a bug here must not leave callers hanging
                    for call in live:
                        if not call.future.done():
                            call.future.set_exception(exc)
        finally:
            if conn is not None:
                conn.close()
            self._stopped.set_result(None)

    def _execute(self, conn: sqlite3.Connection, calls: list[_Call]) -> None:
        try:
            outcomes = self._transaction(conn, calls)
        except sqlite3.Error as exc:
            # SQLite may have rolled back already, and a failing disk may fail this too; either
            # way nothing of the batch is committed.
            with contextlib.suppress(sqlite3.Error):
                conn.rollback()
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            busy = code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if len(calls) > 1 and not busy:
                # Find the one call that fails; the others are committed on their own.
                for call in calls:
                    self._execute(conn, [call])
                return
            # Busy: another process holds the lock past busy_timeout. Retrying each call would
            # wait that long again per call, so the whole batch fails at once (intake: 503).
            failure = StoreUnavailableError(f"the event store {self._name} failed: {exc}")
            for call in calls:
                if call.write and not busy:
                    self.healthy = False
                call.future.set_exception(failure)
            return
        for call, (result, error) in zip(calls, outcomes, strict=True):
            if error is None:
                call.future.set_result(result)
            else:
                call.future.set_exception(error)

    def _transaction(
        self, conn: sqlite3.Connection, calls: list[_Call]
    ) -> list[tuple[Any, Exception | None]]:
        writes = any(call.write for call in calls)
        # IMMEDIATE takes the write lock up front: no other process can commit in between, so
        # the pending count refreshed below stays exact for the whole transaction.
        conn.execute("BEGIN IMMEDIATE" if writes else "BEGIN")
        if writes:
            (version,) = conn.execute("PRAGMA data_version").fetchone()
            # The first write transaction is the store's setup, which counts for itself.
            if self._data_version is not None and version != self._data_version:
                self.pending = self._count_pending(conn)
            self._data_version = version
        tx = Tx(conn, self.pending)
        outcomes: list[tuple[Any, Exception | None]] = []
        for call in calls:
            conn.execute("SAVEPOINT call")
            pending = tx.pending
            try:
                outcomes.append((call.fn(tx), None))
            except sqlite3.Error:
                raise
            except Exception as exc:
                conn.execute("ROLLBACK TO call")
                tx.pending = pending
                outcomes.append((None, exc))
            conn.execute("RELEASE call")
        conn.execute("COMMIT")
        if writes:
            self.pending = tx.pending
            self.commits += 1
            if any(call.grows for call in calls):
                self.healthy = True
        return outcomes
