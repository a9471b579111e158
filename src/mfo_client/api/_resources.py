"""Resources: documents and data objects kept by the MFO server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mfo_client.api._core import AsyncCaller, Operation, SyncCaller
from mfo_client.api._paging import list_params, quote_id
from mfo_client.api.models import Page, Resource, ResourceCreate

__all__ = ["AsyncResources", "Resources"]


def _create(
    type: str, content: Any, metadata: Mapping[str, Any] | None, key: str | None
) -> Operation[Resource]:
    body = ResourceCreate(type=type, content=content, metadata=dict(metadata or {}))
    return Operation(
        "POST", "/resources", Resource, json=body.model_dump(mode="json"), idempotency_key=key
    )


def _get(resource_id: str) -> Operation[Resource]:
    return Operation("GET", f"/resources/{quote_id(resource_id)}", Resource)


def _list(type: str | None, limit: int | None, cursor: str | None) -> Operation[Page[Resource]]:
    return Operation(
        "GET", "/resources", Page[Resource], params=list_params(limit, cursor, type=type)
    )


class Resources:
    def __init__(self, client: SyncCaller) -> None:
        self._client = client

    def create(
        self,
        type: str,
        content: Any = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Resource:
        return self._client._request(_create(type, content, metadata, idempotency_key))

    def get(self, resource_id: str) -> Resource:
        return self._client._request(_get(resource_id))

    def list(
        self, *, type: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[Resource]:
        return self._client._request(_list(type, limit, cursor))


class AsyncResources:
    def __init__(self, client: AsyncCaller) -> None:
        self._client = client

    async def create(
        self,
        type: str,
        content: Any = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Resource:
        return await self._client._request(_create(type, content, metadata, idempotency_key))

    async def get(self, resource_id: str) -> Resource:
        return await self._client._request(_get(resource_id))

    async def list(
        self, *, type: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[Resource]:
        return await self._client._request(_list(type, limit, cursor))
