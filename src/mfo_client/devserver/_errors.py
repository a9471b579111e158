"""Every failure leaves the server as `{"error": {"code", "message"}}`, whoever raised it.

`ApiError` is what routes and middleware raise or render; Starlette's own `HTTPException`
(unknown route, wrong method) is mapped onto the same shape; `InternalErrorMiddleware` turns
anything unexpected into a 500 inside the stack, so request ids and stats still see it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send

__all__ = [
    "ApiError",
    "InternalErrorMiddleware",
    "error_response",
    "exception_handlers",
    "send_error",
]

logger = logging.getLogger("mfo_client.devserver")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


def code_for_status(status: int) -> str:
    return _CODES.get(status, "internal_error" if status >= 500 else "bad_request")


class ApiError(Exception):
    """An error answer: raise it from a route, or render it from middleware."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        return json.dumps({"error": {"code": self.code, "message": self.message}}).encode()

    def response(self) -> Response:
        return Response(
            self.body(),
            status_code=self.status,
            headers=self.headers,
            media_type="application/json",
        )


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    return ApiError(status, code, message, headers).response()


async def send_error(error: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer from middleware, before any route ran."""
    await error.response()(scope, receive, send)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail
    if exc.status_code == 404:
        message = f"no such route: {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    return error_response(exc.status_code, code_for_status(exc.status_code), message, exc.headers)


def exception_handlers() -> dict[type[Exception], ExceptionHandler]:
    return {ApiError: _api_error, HTTPException: _http_exception}


class InternalErrorMiddleware:
    """Answer an unexpected exception with a JSON 500 instead of letting it escape the stack."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started:
                raise
            error = ApiError(500, "internal_error", "the server failed to handle this request")
            await send_error(error, scope, receive, send)
