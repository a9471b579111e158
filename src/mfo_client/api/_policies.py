"""Retry and circuit-breaker policies: frozen values, their defaults, and the one retry decision.

`retry_delay` answers "should this attempt be retried, and after how long" in one place, returning
a delay so that a server's Retry-After can win over the computed backoff.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

__all__ = [
    "DEFAULT_BREAKER",
    "DEFAULT_RETRY",
    "RETRYABLE_STATUSES",
    "CircuitBreakerPolicy",
    "RetryPolicy",
    "is_testing",
    "parse_retry_after",
    "retry_delay",
    "set_testing",
]

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter.

    `max_attempts` counts every try, the first included. The n-th retry waits a random time in
    [0, min(max_backoff, initial_backoff * multiplier**(n-1))]; a Retry-After from the server is
    honoured when it is no longer than `max_backoff`, and ends the retries when it is longer (the
    raised error carries `retry_after` so a queue can schedule the next try).
    """

    max_attempts: int = 3
    initial_backoff: float = 1.0
    max_backoff: float = 30.0
    backoff_multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_backoff < 0 or self.max_backoff < 0:
            raise ValueError("backoff durations must not be negative")
        if self.backoff_multiplier < 1:
            raise ValueError(f"backoff_multiplier must be >= 1, got {self.backoff_multiplier}")

    def backoff_cap(self, retry_number: int) -> float:
        """The upper bound of the jittered wait before retry `retry_number` (1-based)."""
        exponent = min(retry_number - 1, 64)
        return float(
            min(self.max_backoff, self.initial_backoff * self.backoff_multiplier**exponent)
        )


@dataclass(frozen=True, slots=True)
class CircuitBreakerPolicy:
    """Open after `failure_threshold` consecutive failures; probe once after `reset_timeout`."""

    failure_threshold: int = 5
    reset_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {self.failure_threshold}")
        if self.reset_timeout < 0:
            raise ValueError("reset_timeout must not be negative")


DEFAULT_RETRY = RetryPolicy()
DEFAULT_BREAKER = CircuitBreakerPolicy()

_testing = False


def set_testing(enabled: bool) -> None:
    """Skip every backoff and polling wait; decisions and reported delays stay the same."""
    global _testing
    _testing = enabled


def is_testing() -> bool:
    return _testing


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retry_delay(
    policy: RetryPolicy,
    attempt: int,
    outcome: httpx.Response | BaseException,
    retry_after: float | None = None,
) -> float | None:
    """Seconds to wait before the next attempt, or None when attempt `attempt` was the last.

    Retried: transport errors (connect, read, timeout) and statuses 429, 502, 503, 504. Never:
    any other 4xx or 5xx, since repeating the same request cannot change the answer.
    """
    if attempt >= policy.max_attempts:
        return None
    if isinstance(outcome, httpx.Response):
        if outcome.status_code not in RETRYABLE_STATUSES:
            return None
    elif not isinstance(outcome, httpx.TransportError):
        return None
    if retry_after is not None:
        if retry_after > policy.max_backoff:
            return None
        delay = retry_after
    else:
        delay = random.uniform(0, policy.backoff_cap(attempt))  # noqa: S311 (jitter, not crypto)
    return delay
