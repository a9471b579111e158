"""The values passed in and out of an event store; plain frozen data, backend-neutral."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Accepted", "DeadLetter", "IncomingEvent", "Lease", "OutboxStats"]


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """A verified webhook event, as the listener hands it to the store."""

    id: str
    """The event id: the provider's delivery id, or a UUID."""
    source: str
    """The configured source name, e.g. "github"."""
    delivery_id: str | None
    """The provider's delivery id used to drop repeats; None turns dedupe off for this event."""
    event: dict[str, Any]
    """The JSON-able event to forward (the MFO Event wire shape)."""
    raw_body: bytes
    """The exact request bytes, kept for audit and replay."""
    headers: dict[str, str]
    """The request headers worth keeping."""
    received_at: float
    """Unix seconds."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """The store committed the event (or had already: `duplicate`, and `id` is the first one's)."""

    id: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Lease:
    """One event handed to one forwarder until `token` expires; pass it back to settle it."""

    id: str
    event: dict[str, Any]
    attempts: int
    """Attempts made before this one."""
    token: str
    source: str


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Counts for metrics and `mfo status`; `pending` and `in_flight` do not overlap."""

    pending: int
    """Waiting to be leased, due or not (an expired lease counts here again)."""
    in_flight: int
    """Leased and the lease has not expired."""
    delivered: int
    """Delivered and not yet pruned."""
    dead: int
    """In the dead-letter table."""
    oldest_pending_age: float | None
    """Seconds since the oldest undelivered event (pending or in flight) was queued."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event that will not be retried until someone replays it."""

    id: str
    source: str
    event: dict[str, Any]
    attempts: int
    """All attempts made, the failing one included."""
    last_error: str
    failed_at: float
    received_at: float
    raw_body: bytes
