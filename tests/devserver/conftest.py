"""A live dev server per test (or per module for the contract test), reached over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mfo_client.devserver import DevServerSettings
from tests._servers import run_devserver

TOKEN = "test-token"
USER, PASSWORD = "alice", "wonderland"


def settings(**overrides: Any) -> DevServerSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "token": TOKEN,
        "username": USER,
        "password": PASSWORD,
        "job_duration": 0.4,
    }
    values.update(overrides)
    return DevServerSettings(**values)


@pytest.fixture
def server_url() -> Iterator[str]:
    with run_devserver(settings()) as url:
        yield url


@pytest.fixture
def api(server_url: str) -> Iterator[httpx.Client]:
    """A client authenticated with the static token."""
    with httpx.Client(
        base_url=server_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ) as client:
        yield client


@pytest.fixture
def anon(server_url: str) -> Iterator[httpx.Client]:
    """A client without credentials (for /auth, /_admin and 401 checks)."""
    with httpx.Client(base_url=server_url, timeout=10) as client:
        yield client


def error_code(response: httpx.Response) -> str:
    """The `error.code` of an error answer (and proof that it has the error shape)."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    code: str = body["error"]["code"]
    return code
