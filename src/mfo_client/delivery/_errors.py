"""Every error the event store raises, whatever its backend.

    StoreError                   the store cannot do what was asked (closed, locked, bad cursor)
    ├── StoreFullError           backpressure: too much work is waiting; retry after a while
    └── StoreUnavailableError    the backend cannot write (disk full, read-only, I/O error)

The listener maps both subclasses to 503 and never to 202: an event is only acknowledged once it
is durably stored. They are kept apart because the fixes differ: a full outbox drains by itself
(so `StoreFullError` carries a `retry_after` for the answer's Retry-After header), an unavailable
store needs an operator.
"""

from __future__ import annotations

__all__ = ["StoreError", "StoreFullError", "StoreUnavailableError"]


class StoreError(Exception):
    """Base class of the event store's errors."""


class StoreFullError(StoreError):
    """More work is waiting than the store accepts; nothing was stored."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailableError(StoreError):
    """The backend failed to read or write; nothing of the failed call was stored."""
