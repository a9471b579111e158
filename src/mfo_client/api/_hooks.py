"""Instrumentation hooks: each attempt of a request is reported as one frozen details object.

Hooks keep logging and metrics out of the request core; the logging hook is on by default and
anything else (Prometheus, tests that want to see the retry schedule) plugs in the same way. The
logging hook writes to the standard `logging` tree so that an application embedding the client
decides where records go; the `mfo` command routes that tree through structlog.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

__all__ = ["AttemptDetails", "ClientHook", "LoggingHook"]


@dataclass(frozen=True, slots=True)
class AttemptDetails:
    """What happened on one attempt of one request."""

    method: str
    url: str
    attempt: int
    idempotency_key: str | None
    elapsed: float
    status: int | None
    error: str | None
    retry_in: float | None
    """Seconds until the next attempt, or None when this was the last one."""


class ClientHook(Protocol):
    def __call__(self, details: AttemptDetails) -> None: ...


class LoggingHook:
    """Logs retries at warning level and final outcomes at debug level."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("mfo_client.api")

    def __call__(self, details: AttemptDetails) -> None:
        fields = {
            "method": details.method,
            "url": details.url,
            "attempt": details.attempt,
            "status": details.status,
            "error": details.error,
            "elapsed_ms": round(details.elapsed * 1000, 1),
        }
        if details.retry_in is not None:
            fields["retry_in"] = round(details.retry_in, 3)
            self._log.warning(
                "%s %s attempt %d got %s; retrying in %.3fs",
                details.method,
                details.url,
                details.attempt,
                details.status or details.error,
                details.retry_in,
                extra={"mfo": fields},
            )
        elif self._log.isEnabledFor(logging.DEBUG):
            self._log.debug(
                "%s %s attempt %d got %s",
                details.method,
                details.url,
                details.attempt,
                details.status or details.error,
                extra={"mfo": fields},
            )
