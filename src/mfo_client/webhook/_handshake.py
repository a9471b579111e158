"""Subscription handshakes: a provider checks that a URL is ours before it sends events.

Two shapes exist. Meta (WhatsApp Cloud API, Messenger, Instagram) sends an unsigned
`GET ?hub.mode=subscribe&hub.verify_token=...&hub.challenge=...`, answered with the challenge
when the token is the one configured. Slack sends a signed POST of
`{"type": "url_verification", "challenge": ...}`, answered only after the signature verified,
so it is checked after verification and decoding, like any event. Neither is stored.
"""

from __future__ import annotations

import hmac
from typing import Any

from starlette.datastructures import QueryParams
from starlette.responses import JSONResponse, PlainTextResponse, Response

from mfo_client.webhook._errors import IntakeError

__all__ = ["meta_challenge", "slack_challenge"]

# The challenge is the caller's text echoed back: never let a browser guess it is HTML.
_NO_SNIFF = {"X-Content-Type-Options": "nosniff"}


def meta_challenge(query_string: bytes, verify_token: bytes) -> Response:
    """Meta's verification request: 200 with `hub.challenge` as text, else 403 (or 400)."""
    query = QueryParams(query_string)
    given = query.get("hub.verify_token", "").encode("utf-8", "surrogatepass")
    # compare_digest first and unconditionally, so timing says nothing about the token.
    token_ok = hmac.compare_digest(given, verify_token)
    if query.get("hub.mode") != "subscribe" or not token_ok:
        raise IntakeError(
            403,
            "verification_failed",
            "a subscription check needs hub.mode=subscribe and the hub.verify_token set in "
            "this source's verify_token",
        )
    challenge = query.get("hub.challenge")
    if not challenge:
        raise IntakeError(400, "bad_request", "the subscription check has no hub.challenge")
    return PlainTextResponse(challenge, headers=_NO_SNIFF)


def slack_challenge(body: Any) -> Response | None:
    """The answer to Slack's `url_verification` (already verified), or None for an event."""
    if not isinstance(body, dict) or body.get("type") != "url_verification":
        return None
    challenge = body.get("challenge")
    if not isinstance(challenge, str) or not challenge:
        raise IntakeError(
            400, "bad_request", 'a url_verification request needs a "challenge" string'
        )
    return JSONResponse({"challenge": challenge}, headers=_NO_SNIFF)
