"""A run history on each backend: a real SQLite file, and a real Redis under a prefix of its own.

A test taking `history` (or `new_history`, to open further handles on the same history, as
another process would) runs once per backend, with ids `sqlite` and `redis`. The Redis is the
one the store tests use (`tests/_stores.py`: started if none answers; skipped without one,
failed in CI); a test's keys are deleted afterwards, and only those.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from mfo_client.flows import RedisRunHistory, SQLiteRunHistory
from tests._stores import REDIS_URL, ensure_redis

AnyHistory = SQLiteRunHistory | RedisRunHistory


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own on the test Redis; its keys are deleted afterwards."""
    ensure_redis()
    prefix = f"test-history-{uuid.uuid4().hex[:16]}"
    yield prefix
    async with Redis.from_url(REDIS_URL) as client:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.unlink(*keys[start : start + 1000])


@pytest.fixture(params=["sqlite", "redis"])
def history_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_history(
    history_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[[], AnyHistory]:
    """Opens a handle on this test's run history; each must be closed."""
    if history_backend == "sqlite":
        path = tmp_path / "sub" / "runs.db"
        return lambda: SQLiteRunHistory(path)
    prefix = request.getfixturevalue("redis_prefix")
    return lambda: RedisRunHistory(REDIS_URL, prefix)


@pytest.fixture
async def history(new_history: Callable[[], AnyHistory]) -> AsyncIterator[AnyHistory]:
    async with new_history() as store:
        yield store
