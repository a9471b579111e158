"""Reading and decoding request bodies: a hard size limit, then JSON or GitHub's form mode.

The raw bytes are read first and kept whole, because signatures are computed over exactly
those bytes; decoding happens only after verification.
"""

from __future__ import annotations

import json
import math
import re
import sys
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


class _NotJsonError(ValueError):
    """Text Python's decoder takes but JSON does not, so the event could not be stored or sent."""


def _constant(name: str) -> Any:
    raise _NotJsonError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJsonError(f"the number {text[:40]} is too large to represent")
    return value


MAX_DEPTH = 200
"""Deepest nesting of arrays and objects accepted; the forwarder's serializer stops at 255."""

# An escaped UTF-16 surrogate; only then can the decoded text hold one that has no pair.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def _too_deep(value: Any, raw: bytes) -> bool:
    # Fewer brackets than the limit cannot nest deeper, whatever the strings hold: the common
    # case costs one pass in C.
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return False
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(MAX_DEPTH):
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True


def _json(raw: bytes, what: str) -> Any:
    """Decode strict JSON: anything that would fail later, when stored or forwarded, fails here
    as a 400 rather than a 500 or a dead letter (NaN, numbers beyond range, lone surrogates,
    deep nesting)."""
    deep = f"arrays and objects nest more than {MAX_DEPTH} deep"
    try:
        value = json.loads(raw, parse_constant=_constant, parse_float=_finite)
        too_deep = _too_deep(value, raw)
        if not too_deep and _SURROGATE_ESCAPE.search(raw):
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except json.JSONDecodeError as exc:
        problem = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    except UnicodeDecodeError:
        problem = "it is not UTF-8"
    except UnicodeEncodeError:
        problem = "a string holds an unpaired UTF-16 surrogate escape (\\ud800 to \\udfff)"
    except _NotJsonError as exc:
        problem = str(exc)
    except ValueError:  # the decoder's int() refuses longer numbers than this limit
        problem = f"a number has more than {sys.get_int_max_str_digits()} digits"
    except RecursionError:
        problem = deep
    else:
        if not too_deep:
            return value
        problem = deep
    raise IntakeError(400, "invalid_json", f"{what} is not valid JSON: {problem}")
