"""Retries, idempotency and the circuit breaker over loopback, driven by fault injection."""

from __future__ import annotations

import asyncio
import time

import pytest

from mfo_client import (
    APIError,
    AsyncMFOClient,
    CircuitBreakerPolicy,
    CircuitOpenError,
    Event,
    MFOClient,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    ServerError,
)
from mfo_client.api import BreakerState, CircuitBreakerRegistry
from tests.api.conftest import TOKEN, Attempts, Server

POST_EVENTS = "POST /api/events"


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_transient_failures_are_retried_with_one_idempotency_key_and_applied_once(
    server: Server, breakers: CircuitBreakerRegistry, attempts: Attempts, status: int
) -> None:
    server.faults(status=status, count=2)
    with MFOClient(server.api, auth=TOKEN, breakers=breakers, hooks=[attempts]) as mfo:
        receipt = mfo.resources.create("doc", {"x": 1}, idempotency_key="create-doc-1")
    assert [a.status for a in attempts] == [status, status, 201]
    assert {a.idempotency_key for a in attempts} == {"create-doc-1"}
    assert server.count("POST /api/resources", status) == 2
    assert server.count("POST /api/resources", 201) == 1
    with MFOClient(server.api, auth=TOKEN, breakers=breakers) as mfo:
        assert [r.id for r in mfo.resources.list().items] == [receipt.id]


def test_a_retry_after_the_server_applied_the_request_is_not_applied_twice(
    server: Server, breakers: CircuitBreakerRegistry
) -> None:
    # The first attempt is stored, then the client gives up on it (timeout) and retries.
    server.faults(latency_ms=400, fail_rate=0.0, count=1)
    with MFOClient(server.api, auth=TOKEN, timeout=0.2, breakers=breakers) as mfo:
        first = mfo.resources.create("doc", "once", idempotency_key="k-timeout")
    time.sleep(0.4)  # let the slow first attempt finish on the server
    with MFOClient(server.api, auth=TOKEN, breakers=breakers) as mfo:
        items = mfo.resources.list(type="doc").items
        assert [r.id for r in items] == [first.id]
        # The same key with the same body answers the stored response again.
        assert mfo.resources.create("doc", "once", idempotency_key="k-timeout").id == first.id


def test_exhausted_retries_raise_the_last_error_after_max_attempts(
    server: Server, breakers: CircuitBreakerRegistry, attempts: Attempts
) -> None:
    server.faults(status=503)
    retry = RetryPolicy(max_attempts=4, initial_backoff=0.5, max_backoff=2.0)
    with MFOClient(server.api, auth=TOKEN, retry=retry, breakers=breakers, hooks=[attempts]) as mfo:
        with pytest.raises(ServerError) as info:
            mfo.events.send_event(Event(type="t", payload=None))
    assert info.value.status == 503
    assert server.count(POST_EVENTS, 503) == 4
    assert [a.attempt for a in attempts] == [1, 2, 3, 4]
    delays = [a.retry_in for a in attempts]
    assert delays[-1] is None
    caps = [0.5, 1.0, 2.0]
    assert all(d is not None and 0 <= d <= cap for d, cap in zip(delays[:-1], caps, strict=True))


def test_retry_after_is_honoured(
    server: Server, breakers: CircuitBreakerRegistry, attempts: Attempts
) -> None:
    server.faults(status=429, count=1, retry_after=2)
    with MFOClient(server.api, auth=TOKEN, breakers=breakers, hooks=[attempts]) as mfo:
        mfo.notifications.create("ops", "hello")
    assert [a.retry_in for a in attempts] == [2.0, None]


def test_retry_after_beyond_max_backoff_ends_retries_and_is_reported(
    server: Server, breakers: CircuitBreakerRegistry
) -> None:
    server.faults(status=429, count=1, retry_after=120)
    with MFOClient(server.api, auth=TOKEN, breakers=breakers) as mfo:
        with pytest.raises(RateLimitError) as info:
            mfo.notifications.create("ops", "hello")
    assert info.value.retry_after == 120
    assert server.count("POST /api/notifications") == 1


@pytest.mark.parametrize("status", [400, 404, 409, 422, 500])
def test_other_statuses_are_tried_once(
    server: Server, breakers: CircuitBreakerRegistry, status: int
) -> None:
    server.faults(status=status, count=1)
    with MFOClient(server.api, auth=TOKEN, breakers=breakers) as mfo:
        with pytest.raises(APIError) as info:
            mfo.jobs.create("j")
    assert info.value.status == status
    assert server.count("POST /api/jobs") == 1


def test_breaker_opens_fails_fast_without_traffic_then_probes_and_closes(
    server: Server, breakers: CircuitBreakerRegistry
) -> None:
    changes: list[str] = []
    policy = CircuitBreakerPolicy(failure_threshold=3, reset_timeout=0.5)
    breaker = breakers.get(server.api, policy, lambda _n, _o, new: changes.append(new.value))
    server.faults(status=503)
    with MFOClient(
        server.api,
        auth=TOKEN,
        retry=RetryPolicy(max_attempts=1),
        circuit_breaker=policy,
        breakers=breakers,
    ) as mfo:
        for _ in range(3):
            with pytest.raises(ServerError):
                mfo.resources.list()
        assert breaker.state is BreakerState.OPEN
        for _ in range(5):
            with pytest.raises(CircuitOpenError):
                mfo.resources.list()
        assert server.count("GET /api/resources") == 3  # nothing was sent while open
        server.clear_faults()
        time.sleep(0.55)
        assert mfo.resources.list().items == []
    assert breaker.state is BreakerState.CLOSED
    assert changes == ["open", "half_open", "closed"]
    assert server.count("GET /api/resources") == 4


async def test_half_open_sends_a_single_probe_while_others_fail_fast(
    server: Server, breakers: CircuitBreakerRegistry
) -> None:
    policy = CircuitBreakerPolicy(failure_threshold=1, reset_timeout=0.2)
    async with AsyncMFOClient(
        server.api,
        auth=TOKEN,
        retry=RetryPolicy(max_attempts=1),
        circuit_breaker=policy,
        breakers=breakers,
    ) as mfo:
        server.faults(status=502, count=1)
        with pytest.raises(ServerError):
            await mfo.jobs.get("missing")
        await asyncio.sleep(0.25)
        server.faults(latency_ms=300, fail_rate=0.0)  # the probe is slow; others arrive meanwhile
        results = await asyncio.gather(
            *(mfo.resources.list() for _ in range(6)), return_exceptions=True
        )
    opened = [r for r in results if isinstance(r, CircuitOpenError)]
    assert len(opened) == 5
    assert server.count("GET /api/resources") == 1
    assert breakers.get(server.api, policy).state is BreakerState.CLOSED


def test_a_failed_probe_reopens_the_breaker(
    server: Server, breakers: CircuitBreakerRegistry
) -> None:
    policy = CircuitBreakerPolicy(failure_threshold=2, reset_timeout=0.2)
    server.faults(status=503)
    with MFOClient(
        server.api,
        auth=TOKEN,
        retry=RetryPolicy(max_attempts=1),
        circuit_breaker=policy,
        breakers=breakers,
    ) as mfo:
        for _ in range(2):
            with pytest.raises(ServerError):
                mfo.resources.list()
        time.sleep(0.25)
        with pytest.raises(ServerError):
            mfo.resources.list()  # the probe fails
        with pytest.raises(CircuitOpenError):
            mfo.resources.list()
    assert server.count("GET /api/resources") == 3


def test_client_errors_do_not_trip_the_breaker(
    server: Server, breakers: CircuitBreakerRegistry
) -> None:
    policy = CircuitBreakerPolicy(failure_threshold=2, reset_timeout=60)
    with MFOClient(server.api, auth=TOKEN, circuit_breaker=policy, breakers=breakers) as mfo:
        for _ in range(5):
            with pytest.raises(NotFoundError):
                mfo.resources.get("missing")
        assert breakers.get(server.api, policy).state is BreakerState.CLOSED
