"""Breaker state machine on a fake clock; the network-level behaviour is in test_resilience."""

from __future__ import annotations

import pytest

from mfo_client.api import BreakerState, CircuitBreaker, CircuitBreakerPolicy, CircuitOpenError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock, changes: list[tuple[str, str]] | None = None) -> CircuitBreaker:
    def record(name: str, old: BreakerState, new: BreakerState) -> None:
        if changes is not None:
            changes.append((old.value, new.value))

    return CircuitBreaker("http://mfo.test/api", CircuitBreakerPolicy(3, 10.0), clock, record)


def test_opens_after_threshold_consecutive_failures_only() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    breaker.before_call()
    breaker.record_success()  # a success in between resets the count
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        breaker.before_call()
    assert info.value.base_url == "http://mfo.test/api"
    assert info.value.retry_in == pytest.approx(10.0)


def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = Clock()
    changes: list[tuple[str, str]] = []
    breaker = _breaker(clock, changes)
    for _ in range(3):
        breaker.before_call()
        breaker.record_failure()
    clock.now += 10.0
    breaker.before_call()  # the probe
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    breaker.before_call()
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_failed_probe_reopens_and_restarts_the_timer() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.before_call()
        breaker.record_failure()
    clock.now += 10.0
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 9.0
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    clock.now += 1.0
    breaker.before_call()
    assert breaker.state is BreakerState.HALF_OPEN


def test_released_probe_frees_the_slot() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.before_call()
        breaker.record_failure()
    clock.now += 10.0
    assert breaker.before_call() is True  # this call is the probe
    breaker.release(True)  # e.g. the probing task was cancelled
    assert breaker.before_call() is True


def test_a_cancelled_call_that_was_not_the_probe_does_not_free_the_slot() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    started_while_closed = breaker.before_call()
    assert started_while_closed is False
    for _ in range(3):
        breaker.before_call()
        breaker.record_failure()
    clock.now += 10.0
    assert breaker.before_call() is True  # the probe is out
    breaker.release(started_while_closed)  # the old call is cancelled now
    with pytest.raises(CircuitOpenError):
        breaker.before_call()


def test_wait_time_tells_queue_workers_how_long_to_wait() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    assert breaker.wait_time() == 0.0
    for _ in range(3):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.wait_time() == pytest.approx(10.0)
    clock.now += 4.0
    assert breaker.wait_time() == pytest.approx(6.0)
    clock.now += 6.0
    assert breaker.wait_time() == 0.0  # half-open: the probe may go
    breaker.before_call()
    assert breaker.wait_time() == 1.0  # the probe is out; check back soon
