"""The event store backends for tests: the same test runs on SQLite and on Redis.

A `StoreKit` makes stores of one backend for one test: SQLite files in its tmp_path, or Redis on
127.0.0.1:6379 under a random key prefix of its own; `cleanup` deletes that prefix's keys only
(SCAN + UNLINK), never the whole server. `pass_time` moves the fake clock forward and, on
Redis, ages the held leases as much: a Redis lease expires by the server's idle time of its
stream entry, not by the store's clock.

`StoreKit.beside` opens a second store on the same file or prefix, as `mfo outbox` does beside
a running service, and `peek` reads through it the jobs a worker could lease (giving them back):
tests read what a service stored through the `EventStore` interface, whatever the backend.

`ensure_redis` finds the Redis, starting one if none answers; without one the Redis tests skip,
except in CI (`CI=true`), where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError

from mfo_client.delivery import FORWARD, Lease, RedisStore, SQLiteStore

__all__ = ["BACKENDS", "REDIS_URL", "Clock", "StoreKit", "ensure_redis", "peek", "redis_keys"]

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
BACKENDS = ("sqlite", "redis")
GROUP = "workers"
T0 = 1_700_000_000.0


def _answers() -> bool:
    try:
        with Redis(REDIS_HOST, REDIS_PORT, socket_timeout=1, socket_connect_timeout=1) as r:
            return bool(r.ping())
    except (RedisError, OSError):
        return False


def ensure_redis() -> None:
    """Make sure Redis answers on 127.0.0.1:6379 (start one once if none does), else skip the
    test, or fail it when CI is "true": CI must run the Redis tests."""
    if _answers():
        return
    reason = f"no Redis answers on {REDIS_HOST}:{REDIS_PORT}"
    server = shutil.which("redis-server")
    if server is None:
        reason += " and redis-server is not installed (apt install redis-server)"
    else:
        start = ["--daemonize", "yes", "--bind", REDIS_HOST, "--port", str(REDIS_PORT)]
        subprocess.run(
            [server, *start, "--save", ""],
            check=False,
            capture_output=True,
            timeout=30,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _answers():
                return
            time.sleep(0.1)
        reason += f", and {server} started in the background did not answer either"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI runs the Redis tests, so this fails instead of skipping")
    pytest.skip(f"{reason}; `make test` starts one")


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def redis_keys(prefix: str) -> list[bytes]:
    """Every key under `prefix`."""
    async with AsyncRedis.from_url(REDIS_URL) as r:
        return [key async for key in r.scan_iter(match=f"{prefix}:*", count=1000)]


@dataclass
class StoreKit:
    """Stores of one backend for one test; they all share its clock, file or key prefix."""

    backend: Literal["sqlite", "redis"]
    tmp_path: Path
    clock: Clock = field(default_factory=Clock)
    prefix: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:16]}")

    @property
    def path(self) -> Path:
        return self.tmp_path / "outbox.db"

    def store(self, **options: Any) -> SQLiteStore | RedisStore:
        """A store (not open yet; use `async with`); options go to its constructor."""
        options.setdefault("clock", self.clock)
        if self.backend == "sqlite":
            return SQLiteStore(self.path, **options)
        return RedisStore(REDIS_URL, prefix=self.prefix, **options)

    def beside(self) -> SQLiteStore | RedisStore:
        """A second store on this kit's file or prefix, as `mfo outbox` opens one beside a
        running service: role admin (on Redis the role changes nothing; any number of stores
        share a prefix) and the real clock, the one the service's store runs on."""
        return self.store(role="admin", clock=time.time)

    def config(self, **options: Any) -> dict[str, Any]:
        """The `store` section of a configuration for this backend."""
        if self.backend == "sqlite":
            return {"path": str(self.path), **options}
        return {"backend": "redis", "url": REDIS_URL, "prefix": self.prefix, **options}

    async def pass_time(self, seconds: float) -> None:
        """Let `seconds` pass for the store: the clock, and on Redis the leases' idle times."""
        self.clock.now += seconds
        if self.backend != "redis":
            return
        ms = round(seconds * 1000)
        async with AsyncRedis.from_url(REDIS_URL) as r:
            async for stream in r.scan_iter(match=f"{self.prefix}:q:*", _type="STREAM"):
                for held in await r.xpending_range(stream, GROUP, "-", "+", 100_000):
                    await r.xclaim(
                        stream,
                        GROUP,
                        held["consumer"],
                        0,
                        [held["message_id"]],
                        idle=held["time_since_delivered"] + ms,
                        justid=True,
                    )

    async def cleanup(self) -> None:
        if self.backend != "redis":
            return
        async with AsyncRedis.from_url(REDIS_URL) as r:
            keys = [key async for key in r.scan_iter(match=f"{self.prefix}:*", count=1000)]
            for start in range(0, len(keys), 1000):
                await r.unlink(*keys[start : start + 1000])


async def peek(kit: StoreKit, kinds: Sequence[str] = (FORWARD,)) -> list[Lease]:
    """The jobs of `kinds` a worker could lease now, through a store `beside` the service's,
    leased and given straight back (`release` counts no attempt)."""
    async with kit.beside() as store:
        leases = await store.lease("test", 1000, 60, kinds=kinds)
        for lease in leases:
            await store.release(lease)
    return leases
