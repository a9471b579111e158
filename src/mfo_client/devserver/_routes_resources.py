"""`/api/resources`: create, read, list by type."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mfo_client.api.models import Resource, ResourceCreate, new_id
from mfo_client.devserver._http import (
    PAGING,
    json_response,
    list_query,
    page_response,
    parse_body,
    route,
    single_query_value,
    stored_or_404,
)
from mfo_client.devserver._store import Store

__all__ = ["resource_routes"]

KIND = "resources"


def resource_routes(store: Store) -> list[Route]:
    async def create(request: Request) -> Response:
        body = await parse_body(request, ResourceCreate)
        resource = Resource(
            id=new_id(),
            type=body.type,
            content=body.content,
            metadata=body.metadata,
            created_at=datetime.now(UTC),
        )
        store.insert(KIND, resource.id, resource.type, resource.model_dump_json())
        return json_response(resource, 201)

    async def read(request: Request) -> Response:
        return stored_or_404(store, KIND, request.path_params["id"], "resource")

    async def listing(request: Request) -> Response:
        query = list_query(request)
        resource_type = single_query_value(request, "type")
        return page_response(*store.page(KIND, resource_type, query.after, query.limit))

    return [
        route("/api/resources", {"GET": listing, "POST": create}, query={"GET": ("type", *PAGING)}),
        route("/api/resources/{id}", {"GET": read}),
    ]
