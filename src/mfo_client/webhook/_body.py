"""Reading and decoding request bodies: a hard size limit, then JSON or GitHub's form mode.

The raw bytes are read first and kept whole, because signatures are computed over exactly
those bytes; decoding happens only after verification.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from starlette.types import Receive

from mfo_client.webhook._errors import IntakeError

__all__ = ["decode_body", "read_body"]

JSON_TYPES = ("application/json",)
FORM_TYPE = "application/x-www-form-urlencoded"


class ClientGoneError(Exception):
    """The caller disconnected before the body was complete; nothing is stored."""


def _too_large(limit: int) -> IntakeError:
    return IntakeError(
        413, "payload_too_large", f"request body exceeds this source's limit of {limit} bytes"
    )


async def read_body(receive: Receive, limit: int, content_length: str | None) -> bytes:
    """The whole body, refusing as soon as it is known to exceed `limit` (nothing more is read)."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise IntakeError(400, "bad_request", "Content-Length is not a number") from None
        if declared > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_body(raw: bytes, content_type: str | None) -> Any:
    """The JSON value a webhook body carries, or a 400/415 IntakeError saying what is wrong."""
    kind = media_type(content_type)
    if kind in JSON_TYPES or (kind.startswith("application/") and kind.endswith("+json")):
        return _json(raw, "body")
    if kind == FORM_TYPE:
        try:
            fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise IntakeError(400, "bad_request", "form body is not valid UTF-8") from None
        payload = fields.get("payload")
        if not payload:
            raise IntakeError(
                400, "bad_request", 'form body has no "payload" field (GitHub form deliveries do)'
            )
        return _json(payload[0].encode("utf-8"), 'the "payload" form field')
    shown = kind or "no Content-Type"
    raise IntakeError(
        415,
        "unsupported_media_type",
        f"{shown} is not accepted; send application/json or "
        "application/x-www-form-urlencoded with a payload field",
    )


def _json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise IntakeError(
            400,
            "invalid_json",
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None
    except UnicodeDecodeError:
        raise IntakeError(400, "invalid_json", f"{what} is not UTF-8 encoded JSON") from None
