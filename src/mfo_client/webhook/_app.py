"""The listener's ASGI app: one intake endpoint per source, plus health and readiness.

An intake request goes: method -> size-limited raw body -> signature over those bytes ->
decode -> event envelope -> store commit -> 202. Nothing is acknowledged before the store has
committed it, and every refusal is a JSON error saying what was wrong, never a secret.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from mfo_client.delivery import (
    EventStore,
    IncomingEvent,
    StoreFullError,
    StoreUnavailableError,
)
from mfo_client.observability import Metrics
from mfo_client.webhook._body import ClientGoneError, decode_body, read_body
from mfo_client.webhook._envelope import build_event, kept_headers
from mfo_client.webhook._errors import IntakeError, error_response
from mfo_client.webhook._sources import Source
from mfo_client.webhook.schemes import SignatureError

__all__ = ["IntakeEndpoint", "create_webhook_app"]

_log = logging.getLogger("mfo_client.webhook")


class IntakeEndpoint:
    """The ASGI endpoint of one source."""

    def __init__(
        self,
        source: Source,
        store: EventStore,
        *,
        on_accepted: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.source = source
        self.store = store
        self.on_accepted = on_accepted
        self.clock = clock
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await self._handle(scope, receive)
        except ClientGoneError:
            return
        except IntakeError as exc:
            _log.warning(
                "webhook refused: %s %s",
                exc.status,
                exc.message,
                extra={"mfo": {"source": self.source.name, "status": exc.status, "code": exc.code}},
            )
            response = error_response(exc)
        if self.metrics is not None:
            self.metrics.request(self.source.name, response.status_code)
        await response(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive) -> Response:
        method = scope["method"]
        if method != "POST":
            raise IntakeError(
                405,
                "method_not_allowed",
                f"{method} is not allowed here; use POST",
                {"Allow": "POST"},
            )
        headers = Headers(scope=scope)
        source = self.source
        raw = await read_body(receive, source.max_body_size, headers.get("content-length"))
        received_at = self.clock()
        try:
            verified = source.verifier.verify(headers, raw, received_at)
        except SignatureError as exc:
            if self.metrics is not None:
                self.metrics.verification_failed(source.name, exc.reason)
            # A late (or early) but genuine delivery is told apart from a forgery.
            timing = exc.reason in ("stale_timestamp", "future_timestamp")
            code = exc.reason if timing else "invalid_signature"
            raise IntakeError(401, code, exc.message) from None
        body = decode_body(raw, headers.get("content-type"))
        event, delivery_id = build_event(
            source, body, headers, received_at, signed=verified.secret_index >= 0
        )
        item = IncomingEvent(
            id=event["id"],
            source=source.name,
            delivery_id=delivery_id,
            event=event,
            raw_body=raw,
            headers=kept_headers(source, headers),
            received_at=received_at,
        )
        try:
            accepted = await self.store.accept(item)
        except StoreFullError as exc:
            retry = max(1, round(exc.retry_after))
            raise IntakeError(
                503,
                "overloaded",
                "too many events are waiting to be forwarded; retry later",
                {"Retry-After": str(retry)},
            ) from None
        except StoreUnavailableError:
            _log.exception("the event store cannot write; refusing intake")
            raise IntakeError(
                503,
                "store_unavailable",
                "the event could not be stored; retry later",
                {"Retry-After": "30"},
            ) from None
        if self.on_accepted is not None and not accepted.duplicate:
            self.on_accepted()
        _log.info(
            "webhook accepted: %s %s%s",
            event["type"],
            accepted.id,
            " (repeat delivery)" if accepted.duplicate else "",
            extra={
                "mfo": {
                    "source": source.name,
                    "event_id": accepted.id,
                    "event_type": event["type"],
                    "duplicate": accepted.duplicate,
                }
            },
        )
        return JSONResponse({"id": accepted.id, "duplicate": accepted.duplicate}, status_code=202)


def create_webhook_app(
    sources: Sequence[Source],
    store: EventStore,
    *,
    on_accepted: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.time,
    lifespan: Callable[[Starlette], object] | None = None,
    metrics: Metrics | None = None,
    readiness: Callable[[], dict[str, Any]] | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The listener: `POST <source.path>` for each source, `GET /healthz` and `GET /readyz`."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        extra = readiness() if readiness is not None else {}
        if await store.healthy():
            return JSONResponse({"status": "ready", **extra})
        return JSONResponse(
            {"status": "unavailable", "reason": "the event store cannot write", **extra},
            status_code=503,
        )

    routes: list[BaseRoute] = [
        Route(
            s.path, IntakeEndpoint(s, store, on_accepted=on_accepted, clock=clock, metrics=metrics)
        )
        for s in sources
    ]
    routes += [Route("/healthz", healthz), Route("/readyz", readyz), *extra_routes]
    return Starlette(
        routes=routes,
        lifespan=lifespan,  # type: ignore[arg-type]
        exception_handlers={HTTPException: _routing_error},
    )


async def _routing_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no route for the path, a method a route does not take) in the
    same JSON shape as the intake's, so a sender with a wrong URL is told so."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        error = IntakeError(404, "not_found", f"no webhook source listens on {request.url.path}")
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed here"
        error = IntakeError(405, "method_not_allowed", message, headers)
    else:
        error = IntakeError(exc.status_code, "bad_request", exc.detail, headers)
    return error_response(error)
