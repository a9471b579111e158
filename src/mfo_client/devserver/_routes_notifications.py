"""`/api/notifications`: send (record) a notification; list them so tests can see what went out."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mfo_client.api.models import Notification, NotificationCreate, new_id
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

__all__ = ["notification_routes"]

KIND = "notifications"


def notification_routes(store: Store) -> list[Route]:
    async def create(request: Request) -> Response:
        body = await parse_body(request, NotificationCreate)
        notification = Notification(
            id=new_id(),
            recipient=body.recipient,
            message=body.message,
            channel=body.channel,
            metadata=body.metadata,
            created_at=datetime.now(UTC),
        )
        store.insert(KIND, notification.id, notification.recipient, notification.model_dump_json())
        return json_response(notification, 201)

    async def read(request: Request) -> Response:
        return stored_or_404(store, KIND, request.path_params["id"], "notification")

    async def listing(request: Request) -> Response:
        query = list_query(request)
        recipient = single_query_value(request, "recipient")
        return page_response(*store.page(KIND, recipient, query.after, query.limit))

    return [
        route(
            "/api/notifications",
            {"GET": listing, "POST": create},
            query={"GET": ("recipient", *PAGING)},
        ),
        route("/api/notifications/{id}", {"GET": read}),
    ]
