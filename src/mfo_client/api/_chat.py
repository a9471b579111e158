"""Chat: messages posted to MFO chat threads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mfo_client.api._core import AsyncCaller, Operation, SyncCaller
from mfo_client.api._paging import list_params, quote_id
from mfo_client.api.models import ChatMessage, ChatMessageCreate, Page

__all__ = ["AsyncChat", "Chat"]


def _send(
    thread_id: str, message: str, metadata: Mapping[str, Any] | None, key: str | None
) -> Operation[ChatMessage]:
    body = ChatMessageCreate(message=message, metadata=dict(metadata or {}))
    return Operation(
        "POST",
        f"/chat/threads/{quote_id(thread_id)}/messages",
        ChatMessage,
        json=body.model_dump(mode="json"),
        idempotency_key=key,
    )


def _list(thread_id: str, limit: int | None, cursor: str | None) -> Operation[Page[ChatMessage]]:
    return Operation(
        "GET",
        f"/chat/threads/{quote_id(thread_id)}/messages",
        Page[ChatMessage],
        params=list_params(limit, cursor),
    )


class Chat:
    def __init__(self, client: SyncCaller) -> None:
        self._client = client

    def send_message(
        self,
        thread_id: str,
        message: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> ChatMessage:
        return self._client._request(_send(thread_id, message, metadata, idempotency_key))

    def list_messages(
        self, thread_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[ChatMessage]:
        return self._client._request(_list(thread_id, limit, cursor))


class AsyncChat:
    def __init__(self, client: AsyncCaller) -> None:
        self._client = client

    async def send_message(
        self,
        thread_id: str,
        message: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> ChatMessage:
        return await self._client._request(_send(thread_id, message, metadata, idempotency_key))

    async def list_messages(
        self, thread_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[ChatMessage]:
        return await self._client._request(_list(thread_id, limit, cursor))
