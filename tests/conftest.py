"""`kit`: a test taking it runs once per store backend (ids `[sqlite]` and `[redis]`).
`module_kit` is the same for a module's long-lived service: the module's tests taking it run
once per backend, all against one service and one store.

The Redis is the one on 127.0.0.1:6379 (started if none answers; skipped without one, failed
in CI); each test has a key prefix of its own, deleted afterwards (see `tests/_stores.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests._stores import BACKENDS, StoreKit, ensure_redis


@pytest.fixture(scope="session")
def redis_server() -> None:
    """Redis on 127.0.0.1:6379, started if none answers (skips without one; fails in CI)."""
    ensure_redis()


@pytest.fixture(params=BACKENDS)
async def kit(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreKit]:
    if request.param == "redis":
        request.getfixturevalue("redis_server")
    made = StoreKit(request.param, tmp_path)
    yield made
    await made.cleanup()


@pytest.fixture(scope="module", params=BACKENDS)
def module_kit(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StoreKit]:
    if request.param == "redis":
        request.getfixturevalue("redis_server")
    made = StoreKit(request.param, tmp_path_factory.mktemp(f"store-{request.param}"))
    yield made
    # Sync with its own loop: the tests' loops are per function, gone by the module's end.
    asyncio.run(made.cleanup())
