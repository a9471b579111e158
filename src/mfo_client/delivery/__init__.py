"""Durable delivery of webhook events: the store interface, its backends and the dead letters.

The listener hands each verified event to an `EventStore` and answers 202 only once it is
committed; forwarders lease events from the store and settle each lease. `SQLiteStore` is the
backend for one process; `RedisStore` (Redis Streams) lets many processes share one outbox.
"""

from __future__ import annotations

from mfo_client.delivery._errors import StoreError, StoreFullError, StoreUnavailableError
from mfo_client.delivery._forwarder import Forwarder, ForwarderSettings
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
    trigger_of,
)
from mfo_client.delivery._redis import RedisStore
from mfo_client.delivery._sqlite import SQLiteStore
from mfo_client.delivery._store import EventStore

__all__ = [
    "FORWARD",
    "Accepted",
    "DeadLetter",
    "EventStore",
    "FlowJob",
    "Forwarder",
    "ForwarderSettings",
    "IncomingEvent",
    "JobAccepted",
    "Lease",
    "OutboxStats",
    "RedisStore",
    "SQLiteStore",
    "StoreError",
    "StoreFullError",
    "StoreUnavailableError",
    "flow_kind",
    "trigger_of",
]
