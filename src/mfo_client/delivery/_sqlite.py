"""The SQLite backend of the event store: one file, WAL mode, one writer thread.

Durability. The database runs in WAL mode. With `fsync="normal"` (`synchronous=NORMAL`) a
commit appends to the WAL without waiting for the disk: an acknowledged event survives a crash
of the process, because the committed bytes are already in the OS page cache, but not
necessarily a power loss or kernel crash. With `fsync="full"` (`synchronous=FULL`) every commit
also fsyncs the WAL and survives power loss, at the cost of one fsync per commit.

Throughput comes from group commit (see `_sqlite_writer`): every call runs on one thread that
owns the connection, and `accept` calls arriving while a commit is in progress share the next
one, so an fsync is paid per batch, not per event. Reads take the same path; simpler than a
reader pool, and they are few next to the writes.

One process serves a file. A "serve" store holds an exclusive `flock` on `<path>.lock` while
open, and on open releases every lease at once: a leftover lease can only belong to a worker of
a process that died, so its job is due again at once instead of after the lease expiry. An
"admin" store (the CLI's `mfo dlq ...` while `mfo serve` runs) takes no lock and leaves leases
alone.

Ids and dedupe. A repeat of `(source, delivery_id)` stores nothing and answers the first event's
id, for as long as that event is retained. An event id is unique across sources: if another
source already used it, the event is stored under `"<source>:<id>"`, the id `accept` returns.
The same id from the same source is taken as the same event, also a duplicate. A flow job's id
is its run id, in the same namespace as the forward jobs (whose id is the event id): an event
whose id a flow job holds is renamed the same way, and a flow job whose id is taken fails the
whole `accept`.

Jobs. `accept` stores the event, its forward job and the flow jobs it asks for in one
transaction; a duplicate event stores none of them. A flow job with a `dedupe_key` is not stored
when its trigger already has a job with that key: the key counts for `retention` after it was
taken, and for as long as its job is pending or finished (done or dead) less than `retention`
ago; `prune` forgets keys that no longer count. An event row is kept while any of its jobs is
pending, dead, or done less than `retention` ago, so every job can still be leased or replayed
with its event.

Backpressure counts jobs of every kind not yet done nor dead (in flight included) against
`max_pending`, from a cached count, so a full outbox is refused without a query. An event is
refused only once the limit is reached, so its flow jobs may overshoot it by a few.

Failure. Any SQLite error (disk full, read-only file, I/O error) becomes `StoreUnavailableError`;
`healthy()` is then False until an event could be written again, which it tries itself
with a probe write of about an event's size. `max_db_bytes` caps the database file, so a flood
fills the outbox, not the disk.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from mfo_client.delivery import _sqlite_ops as ops
from mfo_client.delivery._errors import StoreError
from mfo_client.delivery._models import (
    FORWARD,
    Accepted,
    DeadLetter,
    FlowJob,
    IncomingEvent,
    JobAccepted,
    Lease,
    OutboxStats,
    flow_kind,
)
from mfo_client.delivery._sqlite_lock import ServeLock
from mfo_client.delivery._sqlite_writer import Tx, Writer
from mfo_client.delivery._store import EventStore

__all__ = ["SQLiteStore"]

T = TypeVar("T")

PRUNE_CHUNK: Final = 1000
"""Jobs (or dedupe keys) deleted per transaction by `prune`, so intake never stalls for long."""

_SYNCHRONOUS: Final = {"normal": "NORMAL", "full": "FULL"}


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _dead_letter(row: tuple[Any, ...]) -> DeadLetter:
    id_, source, body, attempts, last_error, failed_at, received_at, raw_body, kind, event_id = row
    return DeadLetter(
        id=id_,
        source=source,
        event=json.loads(body),
        attempts=attempts,
        last_error=last_error,
        failed_at=failed_at,
        received_at=received_at,
        raw_body=bytes(raw_body),
        kind=kind,
        event_id=event_id,
    )


def _kinds(kinds: Sequence[str]) -> Sequence[str]:
    # A str is a Sequence[str] too, and would silently match no kind at all.
    if isinstance(kinds, str):
        raise TypeError(
            f"kinds must be a list of kinds, e.g. [{kinds!r}], not the string {kinds!r}"
        )
    return kinds


class SQLiteStore(EventStore):
    """The event store in one SQLite file; see the module docstring for what it guarantees.

    `max_pending` bounds the jobs not yet done (backpressure), `retention` is how long finished
    jobs, their events and the dedupe ids and keys are kept (seconds), `clock` gives unix
    seconds (tests inject
    one), `role="admin"` is for commands run beside a server, `max_db_bytes` caps the file and
    `busy_timeout` is how long to wait for another process's write lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: Literal["normal", "full"] = "normal",
        max_pending: int = 100_000,
        retention: float = 7 * 86400,
        clock: Callable[[], float] = time.time,
        role: Literal["serve", "admin"] = "serve",
        max_db_bytes: int | None = None,
        busy_timeout: float = 5.0,
    ) -> None:
        if fsync not in _SYNCHRONOUS:
            raise ValueError(f"fsync must be 'normal' or 'full', not {fsync!r}")
        if role not in ("serve", "admin"):
            raise ValueError(f"role must be 'serve' or 'admin', not {role!r}")
        self._path = Path(path)
        self._fsync = fsync
        self._max_pending = max_pending
        self._retention = retention
        self._clock = clock
        self._role = role
        self._max_db_bytes = max_db_bytes
        self._busy_timeout = busy_timeout
        self._lock = ServeLock(f"{self._path}.lock", str(self._path)) if role == "serve" else None
        self._writer: Writer | None = None

    @property
    def path(self) -> Path:
        return self._path

    @property
    def commits(self) -> int:
        """Write transactions committed since open; with the event count, the batching ratio."""
        return 0 if self._writer is None else self._writer.commits

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def idle_poll(self) -> float:
        """The serving process is told of new work by its own listener."""
        return 5.0

    async def open(self) -> None:
        if self._writer is not None:
            raise StoreError(f"the event store {self._path} is already open")
        writer = Writer(str(self._path), self._connect, ops.count_pending)
        writer.start()
        now = self._clock()
        serving = self._role == "serve"
        try:
            await writer.call(
                lambda tx: ops.setup(tx, str(self._path), serving=serving, now=now),
                write=True,
            )
        except BaseException:
            await writer.stop()
            if self._lock is not None:
                self._lock.release()
            raise
        self._writer = writer

    def _connect(self) -> sqlite3.Connection:
        """Runs on the writer thread, which then owns the connection."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        if self._lock is not None:
            self._lock.acquire()
        conn = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
        try:
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if str(mode).lower() != "wal":
                raise StoreError(f"the event store {self._path} cannot use WAL mode ({mode})")
            conn.execute(f"PRAGMA synchronous = {_SYNCHRONOUS[self._fsync]}")
            if self._max_db_bytes is not None:
                (page_size,) = conn.execute("PRAGMA page_size").fetchone()
                conn.execute(f"PRAGMA max_page_count = {self._max_db_bytes // page_size:d}")
        except BaseException:
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        await writer.stop()
        if self._lock is not None:
            self._lock.release()

    async def _call(self, fn: Callable[[Tx], T], *, write: bool, grows: bool = False) -> T:
        if self._writer is None:
            raise StoreError(f"the event store {self._path} is not open; call open() first")
        return await self._writer.call(fn, write=write, grows=grows)

    async def accept(self, item: IncomingEvent, jobs: Sequence[FlowJob] = ()) -> Accepted:
        row = ops.EventRow(
            item.id,
            item.source,
            item.delivery_id,
            _dump(item.event),
            item.raw_body,
            _dump(item.headers),
            item.received_at,
        )
        job_rows = [ops.JobRow(job.id, flow_kind(job.trigger), job.dedupe_key) for job in jobs]
        now = self._clock()
        cutoff = now - self._retention
        id_, duplicate, outcomes = await self._call(
            lambda tx: ops.accept(
                tx, row, job_rows, max_pending=self._max_pending, now=now, cutoff=cutoff
            ),
            write=True,
            grows=True,
        )
        if duplicate:  # its jobs were settled when it was first accepted
            return Accepted(id=id_, duplicate=True)
        return Accepted(
            id=id_,
            duplicate=False,
            jobs=tuple(
                JobAccepted(trigger=job.trigger, id=job_id, duplicate=dup)
                for job, (job_id, dup) in zip(jobs, outcomes, strict=True)
            ),
        )

    async def lease(
        self, owner: str, limit: int, lease_for: float, kinds: Sequence[str] = (FORWARD,)
    ) -> list[Lease]:
        if limit <= 0 or not _kinds(kinds):
            return []
        now = self._clock()
        rows = await self._call(
            lambda tx: ops.lease(tx, owner, limit, kinds, expires_at=now + lease_for, now=now),
            write=True,
        )
        return [
            Lease(
                id=row.id,
                event=json.loads(row.body),
                attempts=row.attempts,
                token=row.token,
                source=row.source,
                kind=row.kind,
                event_id=row.event_id,
            )
            for row in rows
        ]

    async def renew(self, lease: Lease, lease_for: float) -> bool:
        expires_at = self._clock() + lease_for
        return await self._call(
            lambda tx: ops.renew(tx, lease.id, lease.token, expires_at=expires_at), write=True
        )

    async def complete(self, lease: Lease) -> None:
        now = self._clock()
        await self._call(lambda tx: ops.complete(tx, lease.id, lease.token, now=now), write=True)

    async def retry_later(self, lease: Lease, error: str, delay: float) -> None:
        due_at = self._clock() + delay
        await self._call(
            lambda tx: ops.retry_later(tx, lease.id, lease.token, error, due_at=due_at),
            write=True,
        )

    async def release(self, lease: Lease, delay: float = 0.0) -> None:
        due_at = self._clock() + delay
        await self._call(
            lambda tx: ops.release(tx, lease.id, lease.token, due_at=due_at), write=True
        )

    async def dead_letter(self, lease: Lease, error: str) -> None:
        now = self._clock()
        await self._call(
            lambda tx: ops.dead_letter(tx, lease.id, lease.token, error, now=now), write=True
        )

    async def next_due_in(self, kinds: Sequence[str] = (FORWARD,)) -> float | None:
        due_at = await self._call(lambda tx: ops.next_due_at(tx, _kinds(kinds)), write=False)
        return None if due_at is None else max(0.0, due_at - self._clock())

    async def stats(self, kinds: Sequence[str] | None = (FORWARD,)) -> OutboxStats:
        kinds = None if kinds is None else _kinds(kinds)
        now = self._clock()
        pending, in_flight, delivered, dead, oldest = await self._call(
            lambda tx: ops.stats(tx, kinds, now=now), write=False
        )
        return OutboxStats(
            pending=pending,
            in_flight=in_flight,
            delivered=delivered,
            dead=dead,
            oldest_pending_age=None if oldest is None else max(0.0, now - oldest),
        )

    async def kinds(self) -> list[str]:
        return sorted(await self._call(ops.kinds, write=False))

    async def list_dead(
        self, limit: int = 100, after: str | None = None, kinds: Sequence[str] | None = None
    ) -> list[DeadLetter]:
        kinds = None if kinds is None else _kinds(kinds)
        rows = await self._call(lambda tx: ops.list_dead(tx, limit, after, kinds), write=False)
        return [_dead_letter(row) for row in rows]

    async def get_dead(self, id: str) -> DeadLetter | None:
        row = await self._call(lambda tx: ops.get_dead(tx, id), write=False)
        return None if row is None else _dead_letter(row)

    async def replay(self, ids: Sequence[str] | None) -> int:
        now = self._clock()
        return await self._call(lambda tx: ops.replay(tx, ids, now=now), write=True)

    async def purge_dead(self, older_than: float | None) -> int:
        now = self._clock()
        return await self._call(lambda tx: ops.purge_dead(tx, older_than, now=now), write=True)

    async def prune(self) -> int:
        before = self._clock() - self._retention
        pruned = 0
        while True:
            jobs, events = await self._call(
                lambda tx: ops.prune_some(tx, before=before, limit=PRUNE_CHUNK), write=True
            )
            pruned += events
            if jobs < PRUNE_CHUNK:
                break
        while True:
            keys = await self._call(
                lambda tx: ops.prune_keys(tx, before=before, limit=PRUNE_CHUNK), write=True
            )
            if keys < PRUNE_CHUNK:
                return pruned

    async def healthy(self) -> bool:
        writer = self._writer
        if writer is None or not writer.alive:
            return False
        if writer.healthy:
            return True
        try:
            await writer.call(ops.probe, write=True, grows=True)
        except StoreError:
            return False
        return True

    async def pragma(self, name: str) -> object:
        """A PRAGMA's value as the store's own connection sees it, for diagnostics and tests."""
        if not re.fullmatch(r"[a-z_]+", name):
            raise ValueError(f"not a PRAGMA name: {name!r}")
        return await self._call(
            lambda tx: tx.conn.execute(f"PRAGMA {name}").fetchone()[0], write=False
        )
