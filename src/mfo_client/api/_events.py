"""Events: the business events this client forwards to the MFO server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mfo_client.api._core import AsyncCaller, Operation, SyncCaller
from mfo_client.api._paging import list_params, quote_id
from mfo_client.api.models import Event, EventReceipt, Page, StoredEvent

__all__ = ["AsyncEvents", "Events"]


def _send(event: Event | Mapping[str, Any], idempotency_key: str | None) -> Operation[EventReceipt]:
    if not isinstance(event, Event):
        event = Event.model_validate(event)
    # The event id doubles as the idempotency key: a re-sent event is stored once.
    return Operation(
        "POST",
        "/events",
        EventReceipt,
        json=event.model_dump(mode="json"),
        idempotency_key=idempotency_key or event.id,
    )


def _get(event_id: str) -> Operation[StoredEvent]:
    return Operation("GET", f"/events/{quote_id(event_id)}", StoredEvent)


def _list(type: str | None, limit: int | None, cursor: str | None) -> Operation[Page[StoredEvent]]:
    return Operation(
        "GET", "/events", Page[StoredEvent], params=list_params(limit, cursor, type=type)
    )


class Events:
    def __init__(self, client: SyncCaller) -> None:
        self._client = client

    def send_event(
        self, event: Event | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> EventReceipt:
        """Send one event; the receipt's id is the event's id."""
        return self._client._request(_send(event, idempotency_key))

    def get(self, event_id: str) -> StoredEvent:
        return self._client._request(_get(event_id))

    def list(
        self, *, type: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[StoredEvent]:
        return self._client._request(_list(type, limit, cursor))


class AsyncEvents:
    def __init__(self, client: AsyncCaller) -> None:
        self._client = client

    async def send_event(
        self, event: Event | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> EventReceipt:
        """Send one event; the receipt's id is the event's id."""
        return await self._client._request(_send(event, idempotency_key))

    async def get(self, event_id: str) -> StoredEvent:
        return await self._client._request(_get(event_id))

    async def list(
        self, *, type: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[StoredEvent]:
        return await self._client._request(_list(type, limit, cursor))
