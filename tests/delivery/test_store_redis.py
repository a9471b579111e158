"""What only the Redis store does: workers of several processes share one outbox, a dead
worker's jobs are claimed after their idle time, failures of Redis become 503s, WAIT for
replicas, and housekeeping that leaves no keys behind.

The shared Redis on 127.0.0.1:6379 is used under a key prefix of each test's own; tests that
stop, fill or reconfigure a Redis start a private redis-server on a free port.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis import Redis

from mfo_client.delivery import (
    Accepted,
    FlowJob,
    RedisStore,
    StoreError,
    StoreUnavailableError,
    flow_kind,
)
from tests._servers import free_port
from tests._stores import REDIS_URL, StoreKit, redis_keys
from tests.delivery._redis_servers import incoming, private_redis, until

DAY = 86400.0


# -- workers share one outbox ------------------------------------------------------------------


REDIS_ONLY = pytest.mark.parametrize("kit", ["redis"], indirect=True)


@REDIS_ONLY
async def test_a_dead_workers_job_is_claimed_after_the_idle_time(kit: StoreKit) -> None:
    """Two processes: the first leases a job and dies with it; once the entry was idle for the
    lease time, the other claims it (XAUTOCLAIM), and the dead one's late verdicts do nothing."""
    async with kit.store(clock=time.time) as dead, kit.store(clock=time.time) as alive:
        await alive.accept(incoming("e1"))
        [held] = await dead.lease("worker-a", 10, 0.5)
        assert await alive.lease("worker-b", 10, 0.5) == []  # held, not idle long enough

        async def claimed() -> list[Any]:
            return await alive.lease("worker-b", 10, 0.5)

        [taken] = await until(claimed)
        assert (taken.id, taken.attempts, taken.event) == ("e1", 0, held.event)
        assert taken.token != held.token

        await dead.complete(held)
        await dead.retry_later(held, "late", 0)
        await dead.dead_letter(held, "late")
        assert not await dead.renew(held, 60)
        stats = await alive.stats()
        assert (stats.in_flight, stats.delivered, stats.dead) == (1, 0, 0)

        await alive.complete(taken)
        stats = await alive.stats()
    assert (stats.pending, stats.in_flight, stats.delivered) == (0, 0, 1)


@REDIS_ONLY
async def test_workers_in_one_consumer_group_share_the_work(kit: StoreKit) -> None:
    async with kit.store() as one, kit.store() as two:
        for n in range(10):
            await one.accept(incoming(f"e{n}"), [FlowJob(f"run-{n}", "deploy")])
        first = await one.lease("worker-a", 4, 30)
        second = await two.lease("worker-b", 10, 30)
        stores = [one, two, one, two]
        runs = await asyncio.gather(
            *(
                store.lease(f"runner-{n}", 3, 30, [flow_kind("deploy")])
                for n, store in enumerate(stores)
            )
        )
        assert await two.lease("worker-c", 10, 30) == []
    assert [lease.id for lease in first + second] == [f"e{n}" for n in range(10)]
    ran = sorted(lease.id for batch in runs for lease in batch)
    assert ran == sorted(f"run-{n}" for n in range(10))
    with Redis.from_url(REDIS_URL) as r:
        consumers = r.xinfo_consumers(f"{kit.prefix}:q:forward", "workers")
    assert sorted((c["name"], c["pending"]) for c in consumers) == [
        (b"worker-a", 4),
        (b"worker-b", 6),
    ]


@REDIS_ONLY
async def test_a_lease_of_several_kinds_takes_the_oldest_first(kit: StoreKit) -> None:
    deploy, notify = flow_kind("deploy"), flow_kind("notify")
    async with kit.store() as store:
        for n in range(6):
            trigger = "deploy" if n % 2 else "notify"
            await store.accept(incoming(f"e{n}"), [FlowJob(f"run-{n}", trigger)])
            await asyncio.sleep(0.002)  # stream entry ids are the server's milliseconds
        first = await store.lease("runner", 3, 30, [deploy, notify])
        rest = await store.lease("runner", 10, 30, [notify, deploy])
    assert [lease.id for lease in first] == ["run-0", "run-1", "run-2"]
    assert [lease.id for lease in rest] == ["run-3", "run-4", "run-5"]


# -- housekeeping ------------------------------------------------------------------------------


@REDIS_ONLY
async def test_prune_leaves_only_what_is_still_needed(kit: StoreKit) -> None:
    async with kit.store(retention=DAY) as store:
        await store.accept(incoming("e1"), [FlowJob("run-1", "deploy", "key")])
        await store.accept(incoming("e2"))
        for kind in await store.kinds():
            for lease in await store.lease("w", 10, 30, [kind]):
                await store.complete(lease)
        await kit.pass_time(2 * DAY)
        assert await store.prune() == 2
        left = sorted(key.decode() for key in await redis_keys(kit.prefix))
        # Nothing waits: the next event starts from a clean slate.
        assert await store.accept(incoming("e1")) == Accepted("e1", duplicate=False)
    assert left == [f"{kit.prefix}:pending"]  # the count of jobs waiting: 0


async def test_every_key_is_under_the_prefix() -> None:
    with private_redis() as url:
        async with RedisStore(url, prefix="tenant-a") as store:
            await store.accept(incoming("e1"), [FlowJob("run-1", "deploy", "k")])
            [lease] = await store.lease("w", 1, 30)
            await store.dead_letter(lease, "422")
            [run] = await store.lease("w", 1, 30, [flow_kind("deploy")])
            await store.retry_later(run, "busy", 60)
            assert await store.healthy()
            assert await store.list_dead() != []
        with Redis.from_url(url) as r:
            keys = sorted(key.decode() for key in r.keys("*"))
    assert keys and all(key.startswith("tenant-a:") for key in keys), keys


# -- failures ------------------------------------------------------------------------------------


async def test_an_unreachable_redis_is_unavailable_and_its_password_is_not_shown() -> None:
    store = RedisStore(f"redis://:s3cret@127.0.0.1:{free_port()}/0", timeout=2)
    assert "s3cret" not in store.url and "redis://***@127.0.0.1:" in store.url
    with pytest.raises(StoreUnavailableError, match="cannot be reached") as refused:
        await store.open()
    assert "s3cret" not in str(refused.value) and "***" in str(refused.value)
    assert not await store.healthy()
    with pytest.raises(StoreError, match="not open"):
        await store.accept(incoming("e1"))


async def test_a_redis_that_stops_or_refuses_writes_fails_intake_but_can_be_looked_at() -> None:
    with private_redis() as url:
        async with RedisStore(url, timeout=2) as store:
            await store.accept(incoming("e1"))
            with Redis.from_url(url) as r:
                # A replica refuses writes (READONLY): no 202 then, and not ready.
                r.replicaof("127.0.0.1", str(free_port()))
                with pytest.raises(StoreUnavailableError, match="refuses writes"):
                    await store.accept(incoming("e2"))
                assert not await store.healthy()
                # What is there can still be looked at (read-only scripts).
                assert (await store.stats()).pending == 1
                assert await store.list_dead() == []
                r.replicaof("NO", "ONE")
                assert await store.healthy()
                # Out of memory (maxmemory, noeviction) refuses writes too.
                r.config_set("maxmemory", "1")
                with pytest.raises(StoreUnavailableError, match="refuses writes"):
                    await store.accept(incoming("e2"))
                assert (await store.stats()).pending == 1
                r.config_set("maxmemory", "0")
            assert await store.accept(incoming("e2")) == Accepted("e2", duplicate=False)
        # A Redis that is gone: unavailable, not a hang; and back once it is back.
        async with RedisStore(url, timeout=2) as store:
            await store.accept(incoming("e3"))
            with Redis.from_url(url) as r:
                r.shutdown(nosave=True)
            with pytest.raises(StoreUnavailableError, match="cannot be reached"):
                await store.accept(incoming("e4"))
            assert not await store.healthy()
            port = int(url.rsplit(":", 1)[1].split("/")[0])
            with private_redis(port=port):  # restarted empty: it had no persistence
                assert await store.healthy()
                assert await store.accept(incoming("e4")) == Accepted("e4", duplicate=False)


async def test_wait_replicas_fails_the_accept_when_too_few_confirm() -> None:
    with private_redis() as url:
        async with RedisStore(url, wait_replicas=1, wait_timeout=0.05) as store:
            with pytest.raises(StoreUnavailableError, match="only 0 of the 1 replicas"):
                await store.accept(incoming("e1"))
        async with RedisStore(url) as store:
            # It is on the primary: the sender's retry is answered as a duplicate.
            assert await store.accept(incoming("e1")) == Accepted("e1", duplicate=True)


async def test_wait_replicas_passes_once_a_replica_confirms() -> None:
    with private_redis() as url:
        port = url.rsplit(":", 1)[1].split("/")[0]
        with private_redis("--replicaof", "127.0.0.1", port) as replica_url:
            with Redis.from_url(replica_url) as replica:
                deadline = time.monotonic() + 20
                while replica.info("replication").get("master_link_status") != "up":
                    assert time.monotonic() < deadline, "the replica did not connect"
                    time.sleep(0.05)
            async with RedisStore(url, wait_replicas=1, wait_timeout=10) as store:
                accepted = await store.accept(incoming("e1"))
            # The replica has it: a store reading from it sees the event.
            with Redis.from_url(replica_url) as replica:
                assert replica.hget("mfo:ev:e1", "s") == b"github"
    assert accepted == Accepted("e1", duplicate=False)
