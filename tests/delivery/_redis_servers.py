"""Helpers of the Redis store tests: events, polling, and private redis-servers to stop, stall
or reconfigure (the shared Redis on 127.0.0.1:6379 is never touched that way)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from redis import Redis
from redis.exceptions import AuthenticationError, BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mfo_client.delivery import IncomingEvent
from tests._servers import free_port

__all__ = ["incoming", "private_redis", "stalled", "until"]


def incoming(id: str, source: str = "github") -> IncomingEvent:
    return IncomingEvent(
        id=id,
        source=source,
        delivery_id=f"delivery-{id}",
        event={"type": "push", "data": {"id": id}},
        raw_body=b"{}",
        headers={},
        received_at=time.time(),
    )


async def until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll `check` until it returns something truthy (bounded wait); return that."""
    deadline = time.monotonic() + timeout
    while not (found := await check()):
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)
    return found


def _redis_server() -> str:
    server = shutil.which("redis-server")
    if server is None:
        reason = "redis-server is not installed (apt install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI runs the Redis tests")
        pytest.skip(reason)
    return server


@contextmanager
def private_redis(*options: str, port: int | None = None) -> Iterator[str]:
    """A redis-server of this test's own (no persistence) on a free port; yields its URL.
    DEBUG is enabled for local connections, so a test can stall it (`stalled`)."""
    port = port or free_port()
    args = [_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--enable-debug-command", "local"]
    # Its own directory: a replica writes the primary's snapshot to disk when it syncs.
    with (
        tempfile.TemporaryDirectory() as workdir,
        subprocess.Popen(
            [*args, "--dir", workdir, *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ) as server,
    ):
        try:
            with Redis(port=port, socket_timeout=1) as probe:
                deadline = time.monotonic() + 10
                while True:
                    try:
                        probe.ping()
                        break
                    except AuthenticationError:  # it answers (--requirepass)
                        break
                    except (RedisConnectionError, RedisTimeoutError, BusyLoadingError):
                        assert time.monotonic() < deadline, "redis-server did not come up"
                        time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.terminate()
            server.wait(timeout=30)


@contextmanager
def stalled(url: str, seconds: float) -> Iterator[None]:
    """The private Redis at `url` answers nothing for `seconds` (DEBUG SLEEP): entered once it
    has stopped answering, left once it answers again. What is sent meanwhile waits in its
    sockets and runs when it wakes, as after a long fork or a slow disk."""

    def sleep() -> None:
        with Redis.from_url(url, socket_timeout=seconds + 30) as r:
            r.execute_command("DEBUG", "SLEEP", seconds)

    sleeper = threading.Thread(target=sleep)
    sleeper.start()
    try:
        with Redis.from_url(url, socket_timeout=0.1) as probe:
            deadline = time.monotonic() + 10
            while True:
                try:
                    probe.ping()
                except RedisTimeoutError:
                    break
                assert time.monotonic() < deadline, "redis-server did not stall"
                time.sleep(0.01)
        yield
    finally:
        sleeper.join()
