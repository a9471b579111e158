"""The forwarder against the real reference server and a real outbox, SQLite and Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from mfo_client.api import (
    AsyncMFOClient,
    CircuitBreakerPolicy,
    CircuitBreakerRegistry,
    RetryPolicy,
    set_testing,
)
from mfo_client.delivery import EventStore, FlowJob, IncomingEvent, flow_kind
from mfo_client.delivery._forwarder import Forwarder, ForwarderSettings
from mfo_client.devserver import DevServerSettings
from tests._servers import run_devserver
from tests._stores import StoreKit

FAST = ForwarderSettings(
    concurrency=2, max_attempts=5, lease_time=30, initial_backoff=0.01, max_backoff=0.05
)


class Mfo:
    def __init__(self, url: str) -> None:
        self.url = url
        self.api = f"{url}/api"
        self.admin = httpx.Client(base_url=url, timeout=10)

    def faults(self, **fault: Any) -> None:
        self.admin.post("/_admin/faults", json=fault).raise_for_status()

    def clear_faults(self) -> None:
        self.admin.delete("/_admin/faults").raise_for_status()

    def events_posted(self, status: int | None = None) -> int:
        counts: dict[str, int] = (
            self.admin.get("/_admin/stats").json()["requests"].get("POST /api/events", {})
        )
        return counts.get(str(status), 0) if status else sum(counts.values())

    def stored_ids(self) -> list[str]:
        response = self.admin.get(
            "/api/events", params={"limit": 1000}, headers={"Authorization": "Bearer dev-token"}
        )
        return [e["id"] for e in response.json()["items"]]


@pytest.fixture
def mfo() -> Iterator[Mfo]:
    with run_devserver(DevServerSettings(port=0)) as url:
        server = Mfo(url)
        yield server
        server.admin.close()


@pytest.fixture
async def store(kit: StoreKit) -> AsyncIterator[EventStore]:
    async with kit.store(clock=time.time) as s:  # the forwarder's delays are real ones
        yield s


@pytest.fixture(autouse=True)
def no_backoff_waits() -> Iterator[None]:
    set_testing(True)
    yield
    set_testing(False)


def client(mfo: Mfo, *, token: str = "dev-token", **kwargs: Any) -> AsyncMFOClient:
    return AsyncMFOClient(
        mfo.api,
        auth=token,
        breakers=CircuitBreakerRegistry(),
        retry=kwargs.pop("retry", RetryPolicy(max_attempts=1)),
        **kwargs,
    )


def incoming(n: int) -> IncomingEvent:
    event = {"id": f"evt-{n}", "type": "user_created", "payload": {"n": n}, "source": "test"}
    return IncomingEvent(
        id=f"evt-{n}",
        source="test",
        delivery_id=f"d-{n}",
        event=event,
        raw_body=b"{}",
        headers={},
        received_at=time.time(),
    )


async def until(check: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def run(forwarder: Forwarder, check: Callable[[], Any], timeout: float = 10.0) -> None:
    forwarder.start()
    try:
        await until(check, timeout)
    finally:
        await forwarder.stop()


async def test_every_accepted_event_is_forwarded_once(mfo: Mfo, store: EventStore) -> None:
    for n in range(25):
        await store.accept(incoming(n))
    async with client(mfo) as api:
        forwarder = Forwarder(store, api, FAST)

        async def all_delivered() -> bool:
            return (await store.stats()).delivered == 25

        await run(forwarder, all_delivered)
    assert sorted(mfo.stored_ids()) == sorted(f"evt-{n}" for n in range(25))
    assert mfo.events_posted(202) == 25
    assert forwarder.delivered == 25


async def test_flow_jobs_are_left_to_the_flow_runner(mfo: Mfo, store: EventStore) -> None:
    for n in range(5):
        await store.accept(incoming(n), [FlowJob(f"run-{n}", "deploy")])
    async with client(mfo) as api:
        forwarder = Forwarder(store, api, FAST)

        async def all_delivered() -> bool:
            return (await store.stats()).delivered == 5

        await run(forwarder, all_delivered)
    assert sorted(mfo.stored_ids()) == sorted(f"evt-{n}" for n in range(5))
    assert forwarder.delivered == 5
    flows = await store.stats(kinds=[flow_kind("deploy")])
    assert (flows.pending, flows.in_flight, flows.delivered) == (5, 0, 0)


async def test_transient_failures_are_redelivered_until_accepted(
    mfo: Mfo, store: EventStore
) -> None:
    mfo.faults(status=503, count=3)
    await store.accept(incoming(1))
    async with client(mfo) as api:
        forwarder = Forwarder(store, api, FAST)

        async def delivered() -> bool:
            return (await store.stats()).delivered == 1

        await run(forwarder, delivered)
    assert mfo.events_posted(503) == 3
    assert mfo.events_posted(202) == 1
    assert mfo.stored_ids() == ["evt-1"]


async def test_a_rejected_event_goes_to_the_dead_letters_at_once(
    mfo: Mfo, store: EventStore
) -> None:
    mfo.faults(status=422, count=1)
    await store.accept(incoming(1))
    async with client(mfo) as api:
        forwarder = Forwarder(store, api, FAST)

        async def dead() -> bool:
            return (await store.stats()).dead == 1

        await run(forwarder, dead)
    (letter,) = await store.list_dead()
    assert letter.id == "evt-1"
    assert letter.attempts == 1
    assert "rejected by the MFO server: 422 injected_fault" in letter.last_error
    assert mfo.events_posted() == 1


async def test_max_attempts_then_dead_letter_with_the_last_error(
    mfo: Mfo, store: EventStore
) -> None:
    mfo.faults(status=502)
    await store.accept(incoming(1))
    settings = ForwarderSettings(
        concurrency=1, max_attempts=3, initial_backoff=0.01, max_backoff=0.02
    )
    async with client(mfo) as api:
        forwarder = Forwarder(store, api, settings)

        async def dead() -> bool:
            return (await store.stats()).dead == 1

        await run(forwarder, dead)
    (letter,) = await store.list_dead()
    assert letter.attempts == 3
    assert letter.last_error.startswith("gave up after 3 attempts: 502 injected_fault")
    assert mfo.events_posted(502) == 3
    # Replayed after the outage, it is delivered.
    mfo.clear_faults()
    assert await store.replay(["evt-1"]) == 1
    async with client(mfo) as api:
        forwarder = Forwarder(store, api, settings)

        async def delivered() -> bool:
            return (await store.stats()).delivered == 1

        await run(forwarder, delivered)
    assert mfo.stored_ids() == ["evt-1"]


async def test_bad_token_is_retried_not_dead_lettered(mfo: Mfo, store: EventStore) -> None:
    await store.accept(incoming(1))
    async with client(mfo, token="wrong") as api:
        forwarder = Forwarder(store, api, FAST)

        async def tried_twice() -> bool:
            return mfo.events_posted(401) >= 2

        await run(forwarder, tried_twice)
    stats = await store.stats()
    assert stats.dead == 0
    assert stats.pending == 1


async def test_open_breaker_makes_workers_wait_instead_of_spinning(
    mfo: Mfo, store: EventStore
) -> None:
    mfo.faults(status=503)
    for n in range(5):
        await store.accept(incoming(n))
    breaker = CircuitBreakerPolicy(failure_threshold=2, reset_timeout=0.4)
    settings = ForwarderSettings(
        concurrency=4, max_attempts=1000, initial_backoff=0.001, max_backoff=0.002
    )
    async with client(mfo, circuit_breaker=breaker) as api:
        forwarder = Forwarder(store, api, settings)
        forwarder.start()
        await asyncio.sleep(1.0)
        attempts_while_failing = mfo.events_posted()
        mfo.clear_faults()

        async def all_delivered() -> bool:
            return (await store.stats()).delivered == 5

        try:
            await until(all_delivered)
        finally:
            await forwarder.stop()
    # Without the breaker, 4 workers with millisecond backoffs would post hundreds of times a
    # second; with it, a few failures open it and then one probe per reset period goes out.
    assert 2 <= attempts_while_failing <= 4 + 2 * 4
    assert mfo.events_posted(202) == 5


async def test_a_new_event_wakes_idle_workers(mfo: Mfo, store: EventStore) -> None:
    async with client(mfo) as api:
        forwarder = Forwarder(store, api, FAST)
        forwarder.start()
        try:
            await asyncio.sleep(0.2)  # the workers are idle now
            await store.accept(incoming(1))
            forwarder.notify()

            async def delivered() -> bool:
                return (await store.stats()).delivered == 1

            # Well inside the idle wait, so only the notification can have woken them.
            await until(delivered, timeout=3.0)
        finally:
            await forwarder.stop()
