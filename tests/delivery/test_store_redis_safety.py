"""The Redis store when Redis misbehaves or is set up wrong: a lost reply is a 503 and never a
second run of a script, a duplicate waits for the replicas too, no message shows a password,
an evicting Redis is refused, and what eviction (or an operator) removed breaks nothing.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from redis import Redis

from mfo_client.config import Config, ConfigError
from mfo_client.delivery import (
    FORWARD,
    Accepted,
    FlowJob,
    RedisStore,
    StoreError,
    StoreUnavailableError,
    flow_kind,
)
from mfo_client.flows._history import RunHistoryError
from mfo_client.flows._history_redis import RedisRunHistory
from tests._servers import free_port
from tests._stores import REDIS_URL, StoreKit
from tests.delivery._redis_servers import incoming, private_redis, stalled

REDIS_ONLY = pytest.mark.parametrize("kit", ["redis"], indirect=True)


def scripts_run(url: str) -> int:
    """How many scripts the Redis at `url` has run (EVALSHA calls) since it started."""
    with Redis.from_url(url) as r:
        stats: dict[str, Any] = r.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


# -- a lost reply ------------------------------------------------------------------------------


async def test_a_reply_lost_to_a_stalled_redis_is_unavailable_and_nothing_is_sent_twice() -> None:
    """Redis stalls longer than the store's timeout: the accept and the lease sent meanwhile
    fail with 503 (their outcome is unknown), and each ran once when Redis woke up; a client
    that sent them again would have answered a new event as a duplicate and leased jobs to
    nobody."""
    with private_redis() as url:
        # Stalled for less than two timeouts: a client that sent the script again once the
        # first reply was late would have had its answer before giving up.
        async with RedisStore(url, timeout=1) as store:
            before = scripts_run(url)
            with stalled(url, 1.8), pytest.raises(StoreUnavailableError, match="cannot be reached"):
                await store.accept(incoming("e1"), [FlowJob("run-1", "deploy")])
            assert scripts_run(url) == before + 1
            # It was stored after all: the sender's retry is a duplicate, as the contract says.
            assert await store.accept(incoming("e1")) == Accepted("e1", duplicate=True)
            assert (await store.stats(None)).pending == 2

            before = scripts_run(url)
            with stalled(url, 1.8), pytest.raises(StoreUnavailableError, match="cannot be reached"):
                await store.lease("worker-a", 10, 60, [FORWARD, flow_kind("deploy")])
            assert scripts_run(url) == before + 1


async def test_a_duplicate_is_acknowledged_only_once_the_replicas_have_the_event() -> None:
    with private_redis() as url:
        port = url.rsplit(":", 1)[1].split("/")[0]
        with private_redis("--replicaof", "127.0.0.1", port) as replica_url:
            with Redis.from_url(replica_url) as replica:
                deadline = time.monotonic() + 20
                while replica.info("replication").get("master_link_status") != "up":
                    assert time.monotonic() < deadline, "the replica did not connect"
                    time.sleep(0.05)
            async with RedisStore(url, wait_replicas=1, wait_timeout=0.2) as store:
                assert await store.accept(incoming("e1")) == Accepted("e1", duplicate=False)
                with stalled(replica_url, 3):
                    with pytest.raises(StoreUnavailableError, match="only 0 of the 1 replicas"):
                        await store.accept(incoming("e2"))
                    # The sender retries while the replica still lacks it: no 2xx yet.
                    with pytest.raises(StoreUnavailableError, match="only 0 of the 1 replicas"):
                        await store.accept(incoming("e2"))
                    with pytest.raises(StoreUnavailableError, match="only 0 of the 1 replicas"):
                        await store.accept(incoming("e1"))
            # The replica is back and catches up: now the duplicate is acknowledged.
            async with RedisStore(url, wait_replicas=1, wait_timeout=20) as store:
                assert await store.accept(incoming("e2")) == Accepted("e2", duplicate=True)


# -- passwords -----------------------------------------------------------------------------------


@pytest.mark.parametrize("password", ["S3cr#Xq7w", "S3cr/Xq7w", "S3cr?Xq7w", "8642/Xq7w"])
async def test_a_password_that_needs_percent_encoding_is_refused_without_showing_it(
    password: str,
) -> None:
    url = f"redis://:{password}@127.0.0.1:6379/0"
    pieces = [password[:4], password[5:]]

    with pytest.raises(ConfigError) as refused:
        Config.from_mapping({"store": {"backend": "redis", "url": url}}, env={})
    assert "store.url" in str(refused.value) and "percent-encode" in str(refused.value)

    with pytest.raises(ValueError, match="percent-encode") as store_refused:
        RedisStore(url)

    with pytest.raises(RunHistoryError, match="percent-encode") as history_refused:
        RedisRunHistory(url, "mfo")

    where = RedisRunHistory.describe(url, "mfo")
    assert where == "redis://127.0.0.1:6379/0 (prefix mfo)"
    for message in (str(refused.value), str(store_refused.value), str(history_refused.value)):
        assert not any(piece in message for piece in pieces), message


async def test_an_encoded_password_works_and_is_never_shown() -> None:
    with private_redis("--requirepass", "S3cr#et") as url:
        host = url.split("://", 1)[1]
        encoded = f"redis://:S3cr%23et@{host}"
        async with RedisStore(encoded) as store:
            assert await store.accept(incoming("e1")) == Accepted("e1", duplicate=False)
        assert store.url == f"redis://***@{host}"
        wrong = RedisStore(f"redis://{host}?password=wrong-pw")
        assert "wrong-pw" not in wrong.url and "password=***" in wrong.url
        with pytest.raises(StoreUnavailableError, match="refused the user or password") as bad:
            await wrong.open()
        assert "wrong-pw" not in str(bad.value)
    gone = RedisStore(f"redis://:S3cr%23et@127.0.0.1:{free_port()}/0", timeout=1)
    with pytest.raises(StoreUnavailableError) as unreachable:
        await gone.open()
    assert "S3cr" not in str(unreachable.value) and "***@" in str(unreachable.value)


# -- eviction ----------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl"])
async def test_a_redis_that_may_evict_keys_is_refused(policy: str) -> None:
    with private_redis("--maxmemory-policy", policy) as url:
        store = RedisStore(url)
        with pytest.raises(StoreError, match=f"maxmemory-policy {policy}") as refused:
            await store.open()
        assert "CONFIG SET maxmemory-policy noeviction" in str(refused.value)
        assert "redis.conf" in str(refused.value)
        with Redis.from_url(url) as r:
            r.config_set("maxmemory-policy", "noeviction")
        async with store:
            assert await store.healthy()


@REDIS_ONLY
async def test_a_job_whose_event_is_gone_becomes_a_dead_letter(kit: StoreKit) -> None:
    """An event evicted (or deleted by hand) from Redis: its jobs cannot run, and leasing them
    must not fail every worker that meets them; they are dead letters an operator can see."""
    async with kit.store() as store:
        await store.accept(incoming("e1"), [FlowJob("run-1", "deploy")])
        await store.accept(incoming("e2"))
        with Redis.from_url(REDIS_URL) as r:
            r.delete(f"{kit.prefix}:ev:e1")
        [lease] = await store.lease("w", 10, 30)
        assert lease.id == "e2"
        assert await store.lease("w", 10, 30, [flow_kind("deploy")]) == []
        dead = {letter.id: letter for letter in await store.list_dead()}
        assert sorted(dead) == ["e1", "run-1"]
        assert "missing from Redis" in dead["e1"].last_error
        stats = await store.stats(None)
        assert (stats.pending, stats.in_flight, stats.dead) == (0, 1, 2)


# -- nothing left behind ------------------------------------------------------------------------


@REDIS_ONLY
async def test_a_stale_stream_entry_leaves_no_lease_behind(kit: StoreKit) -> None:
    async with kit.store() as store:
        await store.accept(incoming("e1"))
        await store.lease("w", 10, 30)
        with Redis.from_url(REDIS_URL) as r:
            r.delete(f"{kit.prefix}:job:e1")  # gone behind the stream's back
            assert r.hlen(f"{kit.prefix}:lease:forward") == 1
            await kit.pass_time(60)
            assert await store.lease("w2", 10, 30) == []
            assert r.xlen(f"{kit.prefix}:q:forward") == 0
            assert r.hlen(f"{kit.prefix}:lease:forward") == 0


@REDIS_ONLY
async def test_purging_a_dead_letter_whose_job_is_gone_counts_nothing(kit: StoreKit) -> None:
    async with kit.store() as store:
        await store.accept(incoming("e1"))
        await store.accept(incoming("e2"))
        for lease in await store.lease("w", 10, 30):
            await store.dead_letter(lease, "422")
        with Redis.from_url(REDIS_URL) as r:
            r.delete(f"{kit.prefix}:job:e1")
            assert await store.purge_dead(None) == 1
            assert b"" not in r.hgetall(f"{kit.prefix}:deadn")  # no count of an unknown kind
        assert await store.list_dead() == []


@REDIS_ONLY
async def test_replaying_a_dead_letter_whose_job_is_gone_skips_it(kit: StoreKit) -> None:
    async with kit.store() as store:
        await store.accept(incoming("e1"))
        await store.accept(incoming("e2"))
        for lease in await store.lease("w", 10, 30):
            await store.dead_letter(lease, "422")
        with Redis.from_url(REDIS_URL) as r:
            r.delete(f"{kit.prefix}:job:e1")
        assert await store.replay(None) == 1
        assert [lease.id for lease in await store.lease("w", 10, 30)] == ["e2"]
        assert (await store.stats()).in_flight == 1


# -- prefixes ----------------------------------------------------------------------------------


def test_a_prefix_with_a_colon_is_refused() -> None:
    """`mfo:ev` would share keys with `mfo` (its events are `mfo:ev:<id>`)."""
    with pytest.raises(ConfigError, match="no ':'"):
        Config.from_mapping(
            {"store": {"backend": "redis", "url": "redis://h/0", "prefix": "mfo:ev"}}, env={}
        )
    with pytest.raises(ValueError, match="':'"):
        RedisStore(REDIS_URL, prefix="mfo:ev")
    config = Config.from_mapping(
        {"store": {"backend": "redis", "url": "redis://h/0", "prefix": "{mfo}"}}, env={}
    )
    assert config.store.prefix == "{mfo}"
