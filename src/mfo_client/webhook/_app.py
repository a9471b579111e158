"""The listener's ASGI app: one intake endpoint per source, plus health and readiness.

An intake request goes: method -> size-limited raw body -> signature over those bytes ->
decode -> event envelope -> the dispatch's flow runs -> store commit (event and runs in one
transaction) -> 202, or the dispatch's own answer. Nothing is acknowledged before the store
has committed it, and every refusal is a JSON error saying what was wrong, never a secret.
A configured subscription handshake is answered on the way (Meta's GET before anything is
read, Slack's signed POST after decoding) and is never stored.
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
    Accepted,
    EventStore,
    FlowJob,
    IncomingEvent,
    StoreFullError,
    StoreUnavailableError,
)
from mfo_client.observability import Metrics
from mfo_client.webhook._body import ClientGoneError, decode_body, read_body
from mfo_client.webhook._dispatch import Dispatch, runs_body
from mfo_client.webhook._envelope import build_event, kept_headers
from mfo_client.webhook._errors import IntakeError, error_response
from mfo_client.webhook._handshake import meta_challenge, slack_challenge
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
        on_accepted: Callable[[Accepted], None] | None = None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        dispatch: Dispatch | None = None,
    ) -> None:
        self.source = source
        self.store = store
        self.on_accepted = on_accepted
        self.clock = clock
        self.metrics = metrics
        self.dispatch = dispatch

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
        source = self.source
        verify_token = source.verify_token if source.handshake == "meta" else None
        if method == "GET" and verify_token is not None:
            response = meta_challenge(scope.get("query_string", b""), verify_token)
            _log.info("subscription check answered", extra={"mfo": {"source": source.name}})
            return response
        if method != "POST":
            meta = verify_token is not None
            also = ", or GET for Meta's subscription check" if meta else ""
            raise IntakeError(
                405,
                "method_not_allowed",
                f"{method} is not allowed here; use POST{also}",
                {"Allow": "GET, POST" if meta else "POST"},
            )
        headers = Headers(scope=scope)
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
        if source.handshake == "slack":
            answer = slack_challenge(body)
            if answer is not None:
                _log.info("url_verification answered", extra={"mfo": {"source": source.name}})
                return answer
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
        jobs = self._plan(item)
        try:
            accepted = await self.store.accept(item, jobs)
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
            self.on_accepted(accepted)
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
                    "runs": [job.id for job in accepted.jobs],
                }
            },
        )
        if self.dispatch is not None and not accepted.duplicate:
            answer = await self._respond(item, accepted)
            if answer is not None:
                return answer
        reply: dict[str, Any] = {"id": accepted.id, "duplicate": accepted.duplicate}
        if accepted.jobs:
            reply["runs"] = runs_body(accepted)
        return JSONResponse(reply, status_code=self.source.ack_status)

    def _plan(self, item: IncomingEvent) -> Sequence[FlowJob]:
        if self.dispatch is None:
            return ()
        try:
            return self.dispatch.plan(item)
        except Exception:
            # The contract says plan never raises; if it does, storing the event without the
            # runs it asked for would lose them, so refuse and let the sender retry.
            _log.exception("the dispatch could not plan the runs of an event; refusing it")
            raise IntakeError(
                500,
                "dispatch_failed",
                "the flow runs of this event could not be planned; nothing was stored, retry later",
            ) from None

    async def _respond(self, item: IncomingEvent, accepted: Accepted) -> Response | None:
        assert self.dispatch is not None
        try:
            return await self.dispatch.respond(item, accepted)
        except Exception:
            # Committed already: the sender is told so (202) rather than made to retry.
            _log.exception("the dispatch's answer failed; answering 202 for event %s", item.id)
            return None


def create_webhook_app(
    sources: Sequence[Source],
    store: EventStore,
    *,
    on_accepted: Callable[[Accepted], None] | None = None,
    clock: Callable[[], float] = time.time,
    lifespan: Callable[[Starlette], object] | None = None,
    metrics: Metrics | None = None,
    readiness: Callable[[], dict[str, Any]] | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    dispatch: Dispatch | None = None,
) -> Starlette:
    """The listener: `POST <source.path>` for each source, `GET /healthz` and `GET /readyz`.

    With `dispatch`, accepted events start the flow runs it plans (see `Dispatch`).
    """

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
            s.path,
            IntakeEndpoint(
                s, store, on_accepted=on_accepted, clock=clock, metrics=metrics, dispatch=dispatch
            ),
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
