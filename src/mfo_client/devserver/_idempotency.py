"""`Idempotency-Key` on POST: the first response is kept and replayed to repeats for 24 hours.

Keys are scoped per (caller, method, path, key). A repeat with the same body gets the stored
status and body plus `Idempotent-Replayed: true`; a different body is a 422
`idempotency_key_reused`; a repeat while the first is still running is a 409 `conflict`.
Transient answers (429, 5xx) are not kept, so a retry after them is processed afresh.
"""

from __future__ import annotations

import hashlib
import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mfo_client.devserver._auth import subject_of
from mfo_client.devserver._errors import ApiError, send_error
from mfo_client.devserver._limits import ClientGone, read_body, replay
from mfo_client.devserver._routing import is_admin
from mfo_client.devserver._store import IdempotentResponse, Store

__all__ = ["KEY_TTL_SECONDS", "IdempotencyMiddleware", "fingerprint"]

KEY_TTL_SECONDS = 24 * 3600
MAX_KEY_LENGTH = 255


def fingerprint(body: bytes) -> str:
    """Hash of the body's meaning: the same JSON with other spacing or key order still matches."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


def _is_kept(status: int) -> bool:
    return status != 429 and status < 500


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, *, store: Store, ttl: float = KEY_TTL_SECONDS) -> None:
        self.app = app
        self.store = store
        self.ttl = ttl
        self._in_flight: set[tuple[str, str, str, str]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = None if scope["type"] != "http" else _header(scope, b"idempotency-key")
        if key is None or scope["method"] != "POST" or is_admin(scope):
            await self.app(scope, receive, send)
            return
        if not 1 <= len(key) <= MAX_KEY_LENGTH:
            error = ApiError(
                422,
                "validation_error",
                f"header.Idempotency-Key: must be 1 to {MAX_KEY_LENGTH} characters",
            )
            await send_error(error, scope, receive, send)
            return
        try:
            body = await read_body(receive)
        except ClientGone:
            return
        ident = (subject_of(scope), scope["method"], scope["path"], key)
        digest = fingerprint(body)
        now = time.time()
        if ident in self._in_flight:
            error = ApiError(
                409, "conflict", "a request with this Idempotency-Key is still being processed"
            )
            await send_error(error, scope, receive, send)
            return
        stored = self.store.idempotent_response(ident, now - self.ttl)
        if stored is not None:
            await self._replay(stored, digest, scope, receive, send)
            return
        # From here to the first await nothing else runs, so checking and marking is atomic.
        self._in_flight.add(ident)
        try:
            status, response_body = await self._forward(scope, replay(body, receive), send)
        finally:
            self._in_flight.discard(ident)
        if _is_kept(status):
            done = time.time()
            self.store.save_idempotent_response(
                ident, IdempotentResponse(digest, status, response_body), done, done - self.ttl
            )

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> tuple[int, bytes]:
        status = 500
        chunks: list[bytes] = []

        async def capturing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capturing_send)
        return status, b"".join(chunks)

    async def _replay(
        self,
        stored: IdempotentResponse,
        digest: str,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        if stored.fingerprint != digest:
            error = ApiError(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request body;"
                " use a new key for a new request",
            )
            await send_error(error, scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": stored.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(stored.body)).encode()),
                    (b"idempotent-replayed", b"true"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": stored.body})
