"""Request bodies are capped (1 MiB by default): larger ones get 413 before any route runs.

The body is read here in full and handed on from memory, so the routes and the idempotency
layer can read it again without caring how it arrived.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mfo_client.devserver._errors import ApiError, send_error

__all__ = ["BodyLimitMiddleware", "ClientGone", "read_body", "replay"]


class _TooLarge(Exception):
    pass


class ClientGone(Exception):
    """The client disconnected before its body was complete: nothing is processed or kept.

    Treating the part that arrived as the whole body would store an answer to a request that
    was never made (and, under an Idempotency-Key, refuse the real one when it is resent).
    """


async def read_body(receive: Receive, limit: int | None = None) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields `body` once, then defers to the real one (for disconnects)."""
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_again


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = ApiError(
            413,
            "payload_too_large",
            f"request body exceeds the limit of {self.max_bytes} bytes",
        )
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await send_error(too_large, scope, receive, send)
                return
        try:
            body = await read_body(receive, self.max_bytes)
        except _TooLarge:
            await send_error(too_large, scope, receive, send)
            return
        except ClientGone:
            return  # no one is listening for an answer
        await self.app(scope, replay(body, receive), send)
