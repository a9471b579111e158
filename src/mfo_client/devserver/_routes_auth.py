"""`/auth/login` and `/auth/refresh`: exchange credentials or a refresh token for new tokens."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mfo_client.api.models import LoginRequest, RefreshRequest
from mfo_client.devserver._auth import Authenticator
from mfo_client.devserver._errors import ApiError
from mfo_client.devserver._http import json_response, parse_body, route

__all__ = ["auth_routes"]


def auth_routes(authenticator: Authenticator, *, login_enabled: bool) -> list[Route]:
    async def login(request: Request) -> Response:
        credentials = await parse_body(request, LoginRequest)
        if not login_enabled:
            raise ApiError(
                401,
                "unauthorized",
                "login is disabled on this server; start it with --user and --password",
            )
        tokens = authenticator.login(credentials.username, credentials.password)
        if tokens is None:
            raise ApiError(401, "unauthorized", "wrong username or password")
        return json_response(tokens)

    async def refresh(request: Request) -> Response:
        body = await parse_body(request, RefreshRequest)
        tokens = authenticator.refresh(body.refresh_token)
        if tokens is None:
            raise ApiError(
                401, "unauthorized", "refresh token unknown, already used or expired; log in again"
            )
        return json_response(tokens)

    return [
        route("/auth/login", {"POST": login}),
        route("/auth/refresh", {"POST": refresh}),
    ]
