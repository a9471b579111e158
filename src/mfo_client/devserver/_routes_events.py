"""`/api/events`: accept, deduplicate by id, read back, list by type."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mfo_client.api.models import Event, EventReceipt, StoredEvent
from mfo_client.devserver._errors import ApiError
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

__all__ = ["event_routes"]

KIND = "events"

# RFC 3339 as JSON Schema's `date-time` means it: an offset is required. pydantic alone would
# also take dates, Unix times and naive times, which the contract does not allow.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _check_timestamp(raw: bytes) -> None:
    value = json.loads(raw).get("timestamp")
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        raise ApiError(
            422,
            "validation_error",
            "body.timestamp: must be an RFC 3339 date-time with an offset,"
            " e.g. 2024-05-01T12:00:00Z",
        )


def event_routes(store: Store) -> list[Route]:
    async def create(request: Request) -> Response:
        event = await parse_body(request, Event)
        _check_timestamp(await request.body())
        stored = StoredEvent(
            id=event.id,
            type=event.type,
            payload=event.payload,
            timestamp=event.timestamp,
            source=event.source,
            metadata=event.metadata,
            received_at=datetime.now(UTC),
        )
        # A known id answers with the first receipt: the event is stored once.
        kept = StoredEvent.model_validate_json(
            store.insert(KIND, event.id, event.type, stored.model_dump_json())
        )
        receipt = EventReceipt(id=kept.id, status="accepted", received_at=kept.received_at)
        return json_response(receipt, 202)

    async def read(request: Request) -> Response:
        return stored_or_404(store, KIND, request.path_params["id"], "event")

    async def listing(request: Request) -> Response:
        query = list_query(request)
        event_type = single_query_value(request, "type")
        return page_response(*store.page(KIND, event_type, query.after, query.limit))

    return [
        route("/api/events", {"GET": listing, "POST": create}, query={"GET": ("type", *PAGING)}),
        route("/api/events/{id}", {"GET": read}),
    ]
