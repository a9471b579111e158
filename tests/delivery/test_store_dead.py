"""Dead letters (list, inspect, replay, purge) and pruning after the retention, on both
backends."""

from __future__ import annotations

import asyncio

import pytest

from mfo_client.delivery import Accepted, DeadLetter, EventStore, IncomingEvent, StoreError
from tests._stores import T0, StoreKit

DAY = 86400.0


def incoming(id: str) -> IncomingEvent:
    return IncomingEvent(
        id=id,
        source="github",
        delivery_id=f"delivery-{id}",
        event={"type": "push", "data": {"id": id}},
        raw_body=f"raw {id}".encode(),
        headers={},
        received_at=T0 - 1,
    )


async def fail(store: EventStore, kit: StoreKit, *ids: str) -> None:
    """Accept the events and dead-letter them one by one, a minute apart."""
    for id in ids:
        await store.accept(incoming(id))
    leases = await store.lease("w", len(ids), 3600)
    for lease in leases:
        await kit.pass_time(60)
        await store.dead_letter(lease, f"422 for {lease.id}")


async def test_a_dead_letter_keeps_what_is_needed_to_inspect_it(kit: StoreKit) -> None:
    async with kit.store() as store:
        await store.accept(incoming("e0"))
        [lease] = await store.lease("w", 1, 30)
        await store.retry_later(lease, "timeout", delay=10)
        await kit.pass_time(10)
        [lease] = await store.lease("w", 1, 30)
        await store.dead_letter(lease, "422 Unprocessable")

        dead = await store.get_dead("e0")
        assert await store.get_dead("nope") is None
        stats = await store.stats()
        assert await store.lease("w", 1, 30) == []
        assert await store.next_due_in() is None
    assert dead == DeadLetter(
        id="e0",
        source="github",
        event={"type": "push", "data": {"id": "e0"}},
        attempts=2,
        last_error="422 Unprocessable",
        failed_at=T0 + 10,
        received_at=T0 - 1,
        raw_body=b"raw e0",
        kind="forward",
        event_id="e0",
    )
    assert (stats.pending, stats.in_flight, stats.dead) == (0, 0, 1)


async def test_dead_letters_are_listed_in_pages(kit: StoreKit) -> None:
    async with kit.store() as store:
        await fail(store, kit, "e0", "e1", "e2", "e3", "e4")
        first = await store.list_dead(limit=2)
        second = await store.list_dead(limit=2, after=first[-1].id)
        last = await store.list_dead(limit=2, after=second[-1].id)
        everything = await store.list_dead()
        with pytest.raises(StoreError, match="list again from the start"):
            await store.list_dead(after="unknown")
    assert [d.id for d in first + second + last] == ["e0", "e1", "e2", "e3", "e4"]
    assert [d.last_error for d in everything] == [f"422 for e{i}" for i in range(5)]


async def test_replay_makes_dead_letters_pending_again(kit: StoreKit) -> None:
    async with kit.store() as store:
        await fail(store, kit, "e0", "e1", "e2")
        assert await store.replay(["e1", "unknown"]) == 1
        [lease] = await store.lease("w", 10, 30)
        assert (lease.id, lease.attempts) == ("e1", 0)
        assert [d.id for d in await store.list_dead()] == ["e0", "e2"]

        assert await store.replay(None) == 2
        assert await store.list_dead() == []
        assert [lease.id for lease in await store.lease("w", 10, 30)] == ["e0", "e2"]
        assert (await store.stats()).in_flight == 3


async def test_purge_deletes_old_dead_letters_and_their_events(kit: StoreKit) -> None:
    async with kit.store() as store:
        await fail(store, kit, "e0", "e1")  # fail at T0+60 and T0+120
        await kit.pass_time(T0 + 60 + 3600 + 30 - kit.clock.now)
        assert await store.purge_dead(older_than=3600) == 1
        assert [d.id for d in await store.list_dead()] == ["e1"]
        # The purged event went with its delivery id; the other one is still known.
        assert await store.accept(incoming("e1")) == Accepted("e1", duplicate=True)
        assert await store.accept(incoming("e0")) == Accepted("e0", duplicate=False)
        assert await store.purge_dead(older_than=None) == 1
        assert await store.list_dead() == []
        assert await store.accept(incoming("e1")) == Accepted("e1", duplicate=False)


async def test_prune_forgets_delivered_events_after_the_retention(kit: StoreKit) -> None:
    async with kit.store(retention=7 * DAY) as store:
        for id in ("delivered", "pending"):
            await store.accept(incoming(id))
        delivered, _ = await store.lease("w", 2, 30)
        await store.complete(delivered)
        await fail(store, kit, "dead")

        await kit.pass_time(7 * DAY - 3600)
        assert await store.prune() == 0
        assert await store.accept(incoming("delivered")) == Accepted("delivered", True)

        await kit.pass_time(2 * 3600)
        assert await store.prune() == 1
        stats = await store.stats()
        assert (stats.delivered, stats.in_flight + stats.pending, stats.dead) == (0, 1, 1)
        # The undelivered and the dead one stay, with their events.
        assert (await store.get_dead("dead")) is not None
        [pending] = await store.lease("w", 10, 30)
        assert (pending.id, pending.event["data"]) == ("pending", {"id": "pending"})
        # Its dedupe id is forgotten with it: the same delivery is new again.
        assert await store.accept(incoming("delivered")) == Accepted("delivered", False)
        assert await store.accept(incoming("pending")) == Accepted("pending", True)
        assert await store.accept(incoming("dead")) == Accepted("dead", True)


async def test_prune_works_through_many_rows(kit: StoreKit) -> None:
    async with kit.store(retention=DAY) as store:
        await asyncio.gather(*(store.accept(incoming(f"e{i}")) for i in range(2500)))
        leases = await store.lease("w", 2500, 30)
        await asyncio.gather(*(store.complete(lease) for lease in leases))
        await kit.pass_time(2 * DAY)
        assert await store.prune() == 2500
        assert (await store.stats()).delivered == 0
