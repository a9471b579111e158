"""The event store interface: what the listener, the forwarders and the CLI rely on.

The store is a transactional outbox. The listener answers 202 only after `accept` returned, so an
acknowledged event survives a crash; forwarders then `lease` due events, and settle each lease
with exactly one of `complete`, `retry_later` or `dead_letter`. A lease is a token with an
expiry: settling with a token that is no longer current does nothing, so a worker that stalled
past its lease cannot undo what the worker that took over did. At-least-once delivery follows:
an event whose forwarder died mid-send is leased again, so the MFO server must tolerate repeats
(the event id is the idempotency key).

The interface names no backend: SQLite implements it now, Redis Streams later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mfo_client.delivery._models import Accepted, DeadLetter, IncomingEvent, Lease, OutboxStats

__all__ = ["EventStore"]


class EventStore(Protocol):
    """A durable outbox of webhook events with a dead-letter table."""

    async def open(self) -> None:
        """Connect and prepare the backend; a serving store also releases every old lease."""
        ...

    async def close(self) -> None:
        """Finish the calls in progress and release the backend."""
        ...

    async def accept(self, item: IncomingEvent) -> Accepted:
        """Store an event durably; returns only after it is committed.

        Raises `StoreFullError` when too much is waiting and `StoreUnavailableError` when the
        backend cannot write; in both cases nothing was stored.
        """
        ...

    async def lease(self, owner: str, limit: int, lease_for: float) -> list[Lease]:
        """Take up to `limit` due events, oldest first, for `lease_for` seconds."""
        ...

    async def complete(self, lease: Lease) -> None:
        """Mark the event delivered."""
        ...

    async def retry_later(self, lease: Lease, error: str, delay: float) -> None:
        """Count a failed attempt and make the event due again after `delay` seconds."""
        ...

    async def release(self, lease: Lease, delay: float = 0.0) -> None:
        """Give the lease back without counting an attempt; due again after `delay` seconds."""
        ...

    async def dead_letter(self, lease: Lease, error: str) -> None:
        """Count a failed attempt and move the event to the dead-letter table."""
        ...

    async def next_due_in(self) -> float | None:
        """Seconds until an event is leasable (0 if one is now); None if nothing is pending."""
        ...

    async def stats(self) -> OutboxStats:
        """Counts by state, for metrics and status output."""
        ...

    async def list_dead(self, limit: int = 100, after: str | None = None) -> list[DeadLetter]:
        """Dead letters in the order they failed; `after` is the last id of the previous page."""
        ...

    async def get_dead(self, id: str) -> DeadLetter | None:
        """One dead letter, or None if there is no such id."""
        ...

    async def replay(self, ids: Sequence[str] | None) -> int:
        """Make dead letters pending again, attempts reset (None: all); returns how many."""
        ...

    async def purge_dead(self, older_than: float | None) -> int:
        """Delete dead letters that failed over `older_than` seconds ago (None: all); how many."""
        ...

    async def prune(self) -> int:
        """Delete events delivered longer ago than the retention, dedupe ids too; how many."""
        ...

    async def healthy(self) -> bool:
        """Whether the store can write right now (the listener's readiness)."""
        ...
