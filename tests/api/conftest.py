"""A real reference server on loopback for every API test, with its admin endpoints at hand."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mfo_client.api import AttemptDetails, CircuitBreakerRegistry, set_testing
from mfo_client.devserver import DevServerSettings
from tests._servers import run_devserver

TOKEN = "test-token"
USER, PASSWORD = "alice", "wonderland"


class Server:
    """The running dev server: its URLs and its fault-injection and stats endpoints."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.api = f"{self.url}/api"
        self.auth = f"{self.url}/auth"
        self.admin = httpx.Client(base_url=self.url, timeout=10)

    def faults(self, **fault: Any) -> None:
        self.admin.post("/_admin/faults", json=fault).raise_for_status()

    def clear_faults(self) -> None:
        self.admin.delete("/_admin/faults").raise_for_status()

    def stats(self) -> dict[str, dict[str, int]]:
        response = self.admin.get("/_admin/stats")
        response.raise_for_status()
        requests: dict[str, dict[str, int]] = response.json()["requests"]
        return requests

    def count(self, route: str, status: int | None = None) -> int:
        by_status = self.stats().get(route, {})
        if status is not None:
            return by_status.get(str(status), 0)
        return sum(by_status.values())

    def expire_tokens(self) -> None:
        self.admin.post("/_admin/tokens/expire").raise_for_status()


def start(**overrides: Any) -> Any:
    settings = DevServerSettings(
        **{
            "host": "127.0.0.1",
            "port": 0,
            "token": TOKEN,
            "username": USER,
            "password": PASSWORD,
            "job_duration": 0.3,
            **overrides,
        }
    )
    return run_devserver(settings)


@pytest.fixture
def server() -> Iterator[Server]:
    with start() as url:
        srv = Server(url)
        yield srv
        srv.admin.close()


@pytest.fixture(autouse=True)
def no_backoff_waits() -> Iterator[None]:
    set_testing(True)
    yield
    set_testing(False)


@pytest.fixture
def breakers() -> CircuitBreakerRegistry:
    """A registry of its own, so no breaker state leaks between tests."""
    return CircuitBreakerRegistry()


class Attempts(list[AttemptDetails]):
    """A hook that records every attempt."""

    def __call__(self, details: AttemptDetails) -> None:
        self.append(details)


@pytest.fixture
def attempts() -> Attempts:
    return Attempts()
