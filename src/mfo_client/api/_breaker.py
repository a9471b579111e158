"""A circuit breaker per server, shared by every client in the process that talks to it.

Hand-written because the well-known Python breakers are either sync-only or tied to one event
loop, while this one must serve the sync and async clients alike; it does no I/O, so a
threading lock held for a few instructions is safe to take from a coroutine.

closed --N consecutive failures--> open --reset_timeout--> half-open (one probe allowed)
half-open --probe succeeds--> closed;  half-open --probe fails--> open (timer restarts)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum

from mfo_client.api._errors import CircuitOpenError
from mfo_client.api._policies import CircuitBreakerPolicy

__all__ = ["BreakerState", "CircuitBreaker", "CircuitBreakerRegistry", "default_breakers"]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        policy: CircuitBreakerPolicy,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, BreakerState, BreakerState], None] | None = None,
    ) -> None:
        self.name = name
        self.policy = policy
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._current_state()

    def _current_state(self) -> BreakerState:
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.policy.reset_timeout
        ):
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def _set(self, state: BreakerState) -> None:
        old, self._state = self._state, state
        if old is not state and self._on_change is not None:
            self._on_change(self.name, old, state)

    def wait_time(self) -> float:
        """Seconds until a call could get through (0 now); lets queue workers wait, not spin."""
        with self._lock:
            state = self._current_state()
            if state is BreakerState.CLOSED:
                return 0.0
            if state is BreakerState.HALF_OPEN:
                return 0.0 if not self._probe_in_flight else min(1.0, self.policy.reset_timeout)
            return max(0.0, self.policy.reset_timeout - (self._clock() - self._opened_at))

    def before_call(self) -> bool:
        """Let a call through (True if it is the half-open probe), or raise CircuitOpenError
        without touching the network."""
        with self._lock:
            state = self._current_state()
            if state is BreakerState.CLOSED:
                return False
            if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
                self._probe_in_flight = True
                return True
            remaining = self.policy.reset_timeout - (self._clock() - self._opened_at)
            raise CircuitOpenError(self.name, max(0.0, remaining))

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._probe_in_flight = False
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            was_probe = self._probe_in_flight
            self._probe_in_flight = False
            if was_probe or self._failures >= self.policy.failure_threshold:
                self._opened_at = self._clock()
                self._set(BreakerState.OPEN)

    def release(self, probe: bool) -> None:
        """Forget a call that ended without a verdict (cancelled); if it was the probe, the
        probe slot frees up for the next call."""
        if probe:
            with self._lock:
                self._probe_in_flight = False


class CircuitBreakerRegistry:
    """Breakers keyed by server base URL, created on first use with the caller's policy."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(
        self,
        base_url: str,
        policy: CircuitBreakerPolicy,
        on_change: Callable[[str, BreakerState, BreakerState], None] | None = None,
    ) -> CircuitBreaker:
        with self._lock:
            breaker = self._breakers.get(base_url)
            if breaker is None:
                breaker = CircuitBreaker(base_url, policy, self._clock, on_change)
                self._breakers[base_url] = breaker
            return breaker


default_breakers = CircuitBreakerRegistry()
