"""The event store interface: what the listener, the forwarders and the CLI rely on.

The store is a transactional outbox. The listener answers 202 only after `accept` returned, so an
acknowledged event survives a crash; forwarders then `lease` due events, and settle each lease
with exactly one of `complete`, `retry_later` or `dead_letter`. A lease is a token with an
expiry: settling with a token that is no longer current does nothing, so a worker that stalled
past its lease cannot undo what the worker that took over did. At-least-once delivery follows:
an event whose forwarder died mid-send is leased again, so the MFO server must tolerate repeats
(the event id is the idempotency key).

Work comes in kinds, each its own queue: `FORWARD` (send the event to the MFO server) and one
`flow_kind(trigger)` per trigger (run that trigger's flow). A flow job is stored in the same
transaction as its event, so an acknowledged event never loses the runs it asked for. Leasing
names the kinds wanted, so a worker takes flow runs only for triggers with a free slot, and
forwarding and flow runs never wait on each other. A long job keeps its lease with `renew`.

The interface names no backend: SQLite implements it now, Redis Streams later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mfo_client.delivery._models import (
    FORWARD,
    Accepted,
    DeadLetter,
    FlowJob,
    IncomingEvent,
    Lease,
    OutboxStats,
)

__all__ = ["EventStore"]


class EventStore(Protocol):
    """A durable outbox of webhook events with a dead-letter table."""

    @property
    def idle_poll(self) -> float:
        """Seconds an idle worker waits before looking for new work again. A store one process
        serves is told of new work at once (`notify`), so it can wait long; on a shared store
        new work usually comes from another process, which cannot wake this one."""
        ...

    async def open(self) -> None:
        """Connect and prepare the backend. A store one process serves (SQLite) also releases
        every old lease, which only a dead predecessor can hold; a shared store (Redis) leaves
        them, and a dead worker's jobs are claimed once idle for their lease time."""
        ...

    async def close(self) -> None:
        """Finish the calls in progress and release the backend."""
        ...

    async def accept(self, item: IncomingEvent, jobs: Sequence[FlowJob] = ()) -> Accepted:
        """Store an event, its forward job and `jobs` durably; returns only after the commit.

        A duplicate event stores nothing, jobs included. A job whose trigger already has a job
        with the same `dedupe_key` (within the retention) is not stored: `Accepted.jobs` names
        the earlier job's id for it.

        Raises `StoreFullError` when too much is waiting (nothing was stored) and
        `StoreUnavailableError` when the write cannot be confirmed: on SQLite nothing was
        stored; on Redis the write may have reached the primary (a lost reply, too few
        replicas for WAIT), so a sender's retry may be answered as a duplicate.
        """
        ...

    async def lease(
        self, owner: str, limit: int, lease_for: float, kinds: Sequence[str] = (FORWARD,)
    ) -> list[Lease]:
        """Take up to `limit` due jobs of `kinds`, oldest first, for `lease_for` seconds.

        Workers of one kind must use the same `lease_for` (they do when they share a config):
        on Redis a job held longer than the claimer's `lease_for` without renewal is claimed."""
        ...

    async def renew(self, lease: Lease, lease_for: float) -> bool:
        """Extend a held lease to `lease_for` seconds from now; False if it is no longer held
        (it expired and another worker took the job): stop working on it then."""
        ...

    async def complete(self, lease: Lease) -> None:
        """Mark the job done (the event delivered, the flow run finished)."""
        ...

    async def retry_later(self, lease: Lease, error: str, delay: float) -> None:
        """Count a failed attempt and make the job due again after `delay` seconds."""
        ...

    async def release(self, lease: Lease, delay: float = 0.0) -> None:
        """Give the lease back without counting an attempt; due again after `delay` seconds."""
        ...

    async def dead_letter(self, lease: Lease, error: str) -> None:
        """Count a failed attempt and move the job to the dead-letter table."""
        ...

    async def next_due_in(self, kinds: Sequence[str] = (FORWARD,)) -> float | None:
        """Seconds until a job of `kinds` is leasable (0 if one is now); None if none pending."""
        ...

    async def stats(self, kinds: Sequence[str] | None = (FORWARD,)) -> OutboxStats:
        """Counts by state of the jobs of `kinds` (None: every kind), for metrics and status.
        `dead` counts the dead letters of those kinds."""
        ...

    async def kinds(self) -> list[str]:
        """Every kind that has pending, in-flight or dead jobs (for `mfo outbox stats`)."""
        ...

    async def list_dead(
        self, limit: int = 100, after: str | None = None, kinds: Sequence[str] | None = None
    ) -> list[DeadLetter]:
        """Dead letters in the order they failed, of `kinds` (None: all); `after` is the last
        id of the previous page."""
        ...

    async def get_dead(self, id: str) -> DeadLetter | None:
        """One dead letter, or None if there is no such id."""
        ...

    async def replay(self, ids: Sequence[str] | None) -> int:
        """Make dead letters pending again as their own kind, attempts reset (None: all); returns
        how many."""
        ...

    async def purge_dead(self, older_than: float | None) -> int:
        """Delete dead letters that failed over `older_than` seconds ago (None: all); how many."""
        ...

    async def prune(self) -> int:
        """Delete events whose jobs all finished longer ago than the retention, with their
        delivery-id and flow dedupe keys; returns how many events."""
        ...

    async def healthy(self) -> bool:
        """Whether the store can write right now (the listener's readiness)."""
        ...
