"""Assemble the dev server: routes, then the middleware stack around them.

Outermost first: request id, stats, internal errors, body limit, auth, faults, idempotency.
Stats sit outside the error catcher so they count 500s. Faults sit after auth (a request without
a valid token still gets 401) and outside idempotency, so an injected failure is never kept for
replay, and a response held back by injected latency is already kept when the client retries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mfo_client.devserver._auth import Authenticator, AuthMiddleware
from mfo_client.devserver._errors import InternalErrorMiddleware, exception_handlers
from mfo_client.devserver._faults import FaultMiddleware, FaultState
from mfo_client.devserver._idempotency import IdempotencyMiddleware
from mfo_client.devserver._limits import BodyLimitMiddleware
from mfo_client.devserver._request_id import RequestIdMiddleware
from mfo_client.devserver._routes_admin import admin_routes
from mfo_client.devserver._routes_auth import auth_routes
from mfo_client.devserver._routes_chat import chat_routes
from mfo_client.devserver._routes_events import event_routes
from mfo_client.devserver._routes_jobs import job_routes
from mfo_client.devserver._routes_notifications import notification_routes
from mfo_client.devserver._routes_resources import resource_routes
from mfo_client.devserver._routing import templates
from mfo_client.devserver._stats import Stats, StatsMiddleware
from mfo_client.devserver._store import Store
from mfo_client.devserver.settings import DevServerSettings

__all__ = ["create_app"]


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(settings: DevServerSettings) -> Starlette:
    """A fresh server with its own store; the SQLite connection closes at lifespan shutdown."""
    store = Store(settings.db)
    authenticator = Authenticator(settings, store)
    stats = Stats()
    api_routes: list[BaseRoute] = [
        Route("/healthz", _healthz, methods=["GET"]),
        *auth_routes(authenticator, login_enabled=settings.login_enabled),
        *event_routes(store),
        *chat_routes(store),
        *resource_routes(store),
        *job_routes(store, settings.job_duration),
        *notification_routes(store),
    ]
    faults = FaultState(templates(api_routes))
    if settings.faults is not None:
        faults.set(settings.faults)
    routes = [*api_routes, *admin_routes(faults, stats, authenticator)]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            store.close()

    return Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(StatsMiddleware, stats=stats, routes=routes),
            Middleware(InternalErrorMiddleware),
            Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
            Middleware(AuthMiddleware, authenticator=authenticator),
            Middleware(FaultMiddleware, state=faults, routes=routes),
            Middleware(IdempotencyMiddleware, store=store),
        ],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
