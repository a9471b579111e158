"""From a verified request to the event that is stored and forwarded (the documented envelope).

Two body shapes are understood. The seed format `{"type": ..., "payload": ...}` gives the event
type and payload directly. Any other JSON body (a GitHub delivery, say) is kept whole as the
payload, and the type comes from the source's event header (`X-GitHub-Event`) or else the
body's `type` field (`object` for Meta, whose deliveries name their product there). Where
the event came from is recorded under `metadata.webhook`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from mfo_client.api.models import Event
from mfo_client.webhook._errors import IntakeError
from mfo_client.webhook._sources import Source

__all__ = ["build_event", "kept_headers"]

_ALWAYS_KEPT = ("content-type", "user-agent", "x-request-id")

# The id is forwarded as the event id and as the Idempotency-Key header, which the MFO API
# takes as 1 to 255 characters; a header value must be printable ASCII.
_DELIVERY_ID = re.compile(r"[\x20-\x7e]{1,255}")


def _is_seed_format(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("type"), str) and "payload" in body


def _delivery_id(source: Source, body: Any, headers: Mapping[str, str]) -> str | None:
    """The provider's id of this delivery, or None. An empty one counts as none: as a dedupe
    key it would make every later delivery without an id a repeat of the first."""
    where = f"the {source.delivery_header} header"
    value = headers.get(source.delivery_header, "").strip() if source.delivery_header else ""
    if not value and source.scheme == "stripe" and isinstance(body, dict):
        given = body.get("id")
        value, where = (given.strip() if isinstance(given, str) else ""), 'the event\'s "id"'
    if not value:
        return None
    if not _DELIVERY_ID.fullmatch(value):
        raise IntakeError(
            400,
            "bad_delivery_id",
            f"{where} must be 1 to 255 printable ASCII characters; it identifies the delivery "
            "to the MFO server",
        )
    return value


def build_event(
    source: Source,
    body: Any,
    headers: Mapping[str, str],
    received_at: float,
    signed: bool,
) -> tuple[dict[str, Any], str | None]:
    """The event (MFO wire shape, JSON-ready) and the provider's delivery id, if any."""
    provider_event = headers.get(source.type_header) if source.type_header else None
    delivery_id = _delivery_id(source, body, headers)
    if _is_seed_format(body):
        event_type: str = body["type"]
        payload = body["payload"]
    else:
        payload = body
        field = body.get(source.type_field) if isinstance(body, dict) else None
        if provider_event:
            event_type = provider_event
        elif isinstance(field, str) and field:
            event_type = field
        else:
            missing = f"no {source.type_header} header and " if source.type_header else ""
            raise IntakeError(
                400,
                "unknown_event_type",
                f'cannot tell the event type: {missing}no "{source.type_field}" field in the '
                'body; send {"type": ..., "payload": ...}',
            )
    if not event_type.strip() or len(event_type) > 256:
        raise IntakeError(400, "bad_event_type", "event type must be 1 to 256 characters")
    received = datetime.fromtimestamp(received_at, UTC).isoformat()
    event = {
        "id": delivery_id or str(uuid.uuid4()),
        "type": event_type,
        "payload": payload,
        "timestamp": received,
        "source": source.name,
        "metadata": {
            "webhook": {
                "source": source.name,
                "delivery_id": delivery_id,
                "received_at": received,
                "provider_event": provider_event,
                "scheme": source.scheme,
                "verified": signed,
            }
        },
    }
    try:  # refuse now what the forwarder could never send, rather than acknowledge it
        Event.model_validate(event)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise IntakeError(400, "invalid_event", f"event.{where}: {first['msg']}") from None
    return event, delivery_id


def kept_headers(source: Source, headers: Mapping[str, str]) -> dict[str, str]:
    """The request headers stored with the raw body: enough to audit, no signatures."""
    names = [*_ALWAYS_KEPT, source.type_header, source.delivery_header]
    return {n.lower(): headers[n] for n in names if n is not None and n in headers}
