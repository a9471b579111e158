"""Fixtures and helpers shared by the listener tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

TOKEN = "dev-token"
WAIT = 5.0
"""Seconds a forwarded event may take to reach the dev server."""


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def forwarded(http: httpx.AsyncClient, devserver: str, event_id: str) -> dict[str, Any]:
    """The event as the dev server stored it, once a forwarder has sent it (bounded wait)."""
    deadline = time.monotonic() + WAIT
    while True:
        response = await http.get(
            f"{devserver}/api/events/{event_id}", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        if response.status_code == 200:
            event: dict[str, Any] = response.json()
            return event
        assert response.status_code == 404, response.text
        assert time.monotonic() < deadline, f"event {event_id} was not forwarded in {WAIT} s"
        await asyncio.sleep(0.02)
