"""Notifications: messages the MFO server delivers to a recipient over a channel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mfo_client.api._core import AsyncCaller, Operation, SyncCaller
from mfo_client.api._paging import list_params, quote_id
from mfo_client.api.models import Notification, NotificationCreate, Page

__all__ = ["AsyncNotifications", "Notifications"]


def _create(
    recipient: str,
    message: str,
    channel: str | None,
    metadata: Mapping[str, Any] | None,
    key: str | None,
) -> Operation[Notification]:
    body = NotificationCreate(
        recipient=recipient,
        message=message,
        channel=channel or "default",
        metadata=dict(metadata or {}),
    )
    return Operation(
        "POST",
        "/notifications",
        Notification,
        json=body.model_dump(mode="json"),
        idempotency_key=key,
    )


def _get(notification_id: str) -> Operation[Notification]:
    return Operation("GET", f"/notifications/{quote_id(notification_id)}", Notification)


def _list(
    recipient: str | None, limit: int | None, cursor: str | None
) -> Operation[Page[Notification]]:
    params = list_params(limit, cursor, recipient=recipient)
    return Operation("GET", "/notifications", Page[Notification], params=params)


class Notifications:
    def __init__(self, client: SyncCaller) -> None:
        self._client = client

    def create(
        self,
        recipient: str,
        message: str,
        channel: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Notification:
        op = _create(recipient, message, channel, metadata, idempotency_key)
        return self._client._request(op)

    def get(self, notification_id: str) -> Notification:
        return self._client._request(_get(notification_id))

    def list(
        self, *, recipient: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[Notification]:
        return self._client._request(_list(recipient, limit, cursor))


class AsyncNotifications:
    def __init__(self, client: AsyncCaller) -> None:
        self._client = client

    async def create(
        self,
        recipient: str,
        message: str,
        channel: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Notification:
        op = _create(recipient, message, channel, metadata, idempotency_key)
        return await self._client._request(op)

    async def get(self, notification_id: str) -> Notification:
        return await self._client._request(_get(notification_id))

    async def list(
        self, *, recipient: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[Notification]:
        return await self._client._request(_list(recipient, limit, cursor))
