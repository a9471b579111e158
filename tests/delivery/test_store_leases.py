"""Leases: due events go out oldest first, once at a time, and come back when a worker dies.

Tests taking `kit` run on both backends; the others are about SQLite's lock and restarts.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mfo_client.delivery import IncomingEvent, OutboxStats, SQLiteStore
from tests._stores import StoreKit


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def incoming(id: str) -> IncomingEvent:
    return IncomingEvent(
        id=id,
        source="github",
        delivery_id=id,
        event={"type": "push", "data": {"id": id}},
        raw_body=b"{}",
        headers={},
        received_at=1_700_000_000.0,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_leases_go_oldest_first_and_only_once(kit: StoreKit) -> None:
    async with kit.store() as store:
        for i in range(5):
            await store.accept(incoming(f"e{i}"))
            await kit.pass_time(1)
        first = await store.lease("w1", 3, 30)
        second = await store.lease("w2", 10, 30)
        third = await store.lease("w3", 10, 30)
        stats = await store.stats()
    assert [lease.id for lease in first] == ["e0", "e1", "e2"]
    assert [lease.id for lease in second] == ["e3", "e4"]
    assert third == []
    assert {lease.attempts for lease in first + second} == {0}
    assert len({lease.token for lease in first + second}) == 5
    assert stats == OutboxStats(pending=0, in_flight=5, delivered=0, dead=0, oldest_pending_age=5.0)


async def test_complete_marks_delivered(kit: StoreKit) -> None:
    async with kit.store() as store:
        await store.accept(incoming("e0"))
        [lease] = await store.lease("w", 10, 30)
        await store.complete(lease)
        assert await store.stats() == OutboxStats(0, 0, 1, 0, None)
        assert await store.next_due_in() is None
        await kit.pass_time(3600)
        assert await store.lease("w", 10, 30) == []


async def test_retry_later_waits_for_the_delay(kit: StoreKit) -> None:
    async with kit.store() as store:
        assert await store.next_due_in() is None
        await store.accept(incoming("e0"))
        assert await store.next_due_in() == 0.0
        [lease] = await store.lease("w", 10, 30)
        # Only the lease expiry is ahead (on Redis by the server's clock, which went on).
        due = await store.next_due_in()
        assert due == 30.0 if kit.backend == "sqlite" else due is not None and 0 < due <= 30.0

        await store.retry_later(lease, "503 from server", delay=60)
        assert await store.lease("w", 10, 30) == []
        assert await store.next_due_in() == 60.0
        assert (await store.stats()).pending == 1

        await kit.pass_time(59.5)
        assert await store.lease("w", 10, 30) == []
        assert await store.next_due_in() == 0.5
        await kit.pass_time(0.5)
        [again] = await store.lease("w", 10, 30)
    assert (again.id, again.attempts) == ("e0", 1)
    assert again.token != lease.token


async def test_an_expired_lease_is_leased_again(kit: StoreKit) -> None:
    """The worker holding it stalled or died; another one takes over."""
    async with kit.store() as store:
        await store.accept(incoming("e0"))
        assert len(await store.lease("w1", 10, 30)) == 1
        await kit.pass_time(29)
        assert await store.lease("w2", 10, 30) == []
        await kit.pass_time(1)
        assert (await store.stats()).in_flight == 0
        [taken_over] = await store.lease("w2", 10, 30)
        assert (taken_over.id, taken_over.attempts) == ("e0", 0)


async def test_a_stale_token_changes_nothing(kit: StoreKit) -> None:
    async with kit.store() as store:
        await store.accept(incoming("e0"))
        [stalled] = await store.lease("w1", 10, 30)
        await kit.pass_time(31)
        [current] = await store.lease("w2", 10, 30)

        # The stalled worker wakes up: none of its verdicts may touch w2's lease.
        await store.complete(stalled)
        await store.retry_later(stalled, "late", delay=1)
        await store.dead_letter(stalled, "late")
        await store.release(stalled)
        assert not await store.renew(stalled, 30)
        assert await store.stats() == OutboxStats(0, 1, 0, 0, 31.0)

        await store.complete(current)
        assert await store.stats() == OutboxStats(0, 0, 1, 0, None)


async def test_reopening_releases_the_leases_of_the_previous_process(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "outbox.db"
    async with SQLiteStore(path, clock=clock) as store:
        await store.accept(incoming("e0"))
        assert len(await store.lease("w", 10, 3600)) == 1
        # Closed without settling the lease, as a crash would leave it.
    async with SQLiteStore(path, clock=clock) as store:
        [again] = await store.lease("w", 10, 3600)
    assert (again.id, again.attempts) == ("e0", 0)


_LEASE_AND_HANG = """
import asyncio, sys
from mfo_client.delivery import SQLiteStore

async def main() -> None:
    store = SQLiteStore(sys.argv[1])
    await store.open()
    leases = await store.lease("doomed", 10, 3600)
    print(",".join(lease.id for lease in leases), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_killed_server_leaves_nothing_stuck(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    async with SQLiteStore(path) as store:
        for id in ("e0", "e1"):
            await store.accept(incoming(id))

    with subprocess.Popen(
        [sys.executable, "-c", _LEASE_AND_HANG, str(path)], stdout=subprocess.PIPE, text=True
    ) as server:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "e0,e1"
        server.send_signal(signal.SIGKILL)
        assert server.wait(timeout=30) == -signal.SIGKILL

    # An admin store leaves leases alone: they still look in flight for an hour.
    async with SQLiteStore(path, role="admin") as admin:
        assert (await admin.stats()).in_flight == 2
    # The next server takes the lock the kernel released and frees the leases at once.
    async with SQLiteStore(path) as store:
        leases = await store.lease("w", 10, 30)
    assert [(lease.id, lease.attempts) for lease in leases] == [("e0", 0), ("e1", 0)]


async def test_release_gives_the_lease_back_without_counting_an_attempt(kit: StoreKit) -> None:
    async with kit.store() as store:
        await store.accept(incoming("evt-r"))
        (first,) = await store.lease("w1", 1, 60)
        await store.release(first)
        (again,) = await store.lease("w2", 1, 60)
        assert again.id == "evt-r"
        assert again.attempts == 0
        await store.complete(first)  # the old token no longer settles anything
        assert (await store.stats()).delivered == 0
