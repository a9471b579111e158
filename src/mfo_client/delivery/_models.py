"""The values passed in and out of an event store; plain frozen data, backend-neutral."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "FORWARD",
    "Accepted",
    "DeadLetter",
    "FlowJob",
    "IncomingEvent",
    "JobAccepted",
    "Lease",
    "OutboxStats",
    "flow_kind",
    "trigger_of",
]

FORWARD = "forward"
"""The work kind of forwarding an event to the MFO server."""

_FLOW_PREFIX = "flow:"


def flow_kind(trigger: str) -> str:
    """The work kind of a flow run started by `trigger`: one queue per trigger, so a worker
    can lease only from the triggers that have a free slot."""
    return f"{_FLOW_PREFIX}{trigger}"


def trigger_of(kind: str) -> str | None:
    """The trigger name of a flow-run kind; None for any other kind."""
    return kind[len(_FLOW_PREFIX) :] if kind.startswith(_FLOW_PREFIX) else None


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
class FlowJob:
    """A flow run that an accepted event asks for, stored in the same transaction as the event."""

    id: str
    """The run id the flow will run under (also the job's id)."""
    trigger: str
    """The trigger's name; the job's kind is `flow_kind(trigger)`."""
    dedupe_key: str | None = None
    """With a value, a job of the same trigger and key within the retention is not enqueued
    again: the existing job's id is answered instead (see `JobAccepted.duplicate`)."""


@dataclass(frozen=True, slots=True)
class JobAccepted:
    """What became of one `FlowJob` of an accepted event."""

    trigger: str
    id: str
    """The run id: the new job's, or for a duplicate the earlier job's with the same key."""
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Accepted:
    """The store committed the event (or had already: `duplicate`, and `id` is the first one's)."""

    id: str
    duplicate: bool
    jobs: tuple[JobAccepted, ...] = ()
    """The flow jobs asked for, in order; empty for a duplicate event (its jobs were settled
    when it was first accepted)."""


@dataclass(frozen=True, slots=True)
class Lease:
    """One event handed to one forwarder until `token` expires; pass it back to settle it."""

    id: str
    event: dict[str, Any]
    attempts: int
    """Attempts made before this one."""
    token: str
    source: str
    kind: str = FORWARD
    """`FORWARD`, or `flow_kind(trigger)` for a flow run (then `id` is the run id)."""
    event_id: str = ""
    """The event the work is about (for a forward, the same as `id`)."""


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
    kind: str = FORWARD
    """What failed: forwarding the event, or a flow run (`flow_kind(trigger)`; then `id` is
    the run id)."""
    event_id: str = ""
    """The event the failed job was about (for a forward, the same as `id`)."""
