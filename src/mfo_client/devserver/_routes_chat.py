"""`/api/chat/threads/{thread_id}/messages`: post to a thread, read it oldest first."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mfo_client.api.models import ChatMessage, ChatMessageCreate, new_id
from mfo_client.devserver._http import (
    PAGING,
    json_response,
    list_query,
    page_response,
    parse_body,
    path_id,
    route,
)
from mfo_client.devserver._store import Store

__all__ = ["chat_routes"]

KIND = "chat"


def chat_routes(store: Store) -> list[Route]:
    async def create(request: Request) -> Response:
        thread_id = path_id(request, "thread_id")
        body = await parse_body(request, ChatMessageCreate)
        message = ChatMessage(
            message_id=new_id(),
            thread_id=thread_id,
            message=body.message,
            metadata=body.metadata,
            created_at=datetime.now(UTC),
        )
        store.insert(KIND, message.message_id, thread_id, message.model_dump_json())
        return json_response(message, 201)

    async def listing(request: Request) -> Response:
        thread_id = path_id(request, "thread_id")
        query = list_query(request)
        return page_response(*store.page(KIND, thread_id, query.after, query.limit))

    return [
        route(
            "/api/chat/threads/{thread_id}/messages",
            {"GET": listing, "POST": create},
            query={"GET": PAGING},
        ),
    ]
