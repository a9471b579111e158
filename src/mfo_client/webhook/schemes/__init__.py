"""Webhook signature schemes: pure checks over the raw request bytes, done before any parsing.

`build_verifier(scheme, secrets)` returns a `Verifier` whose `verify(headers, body, now)` either
returns `Verified` (which secret matched, and the signed time) or raises `SignatureError`, which
the listener answers with 401. Signatures are always checked over the exact bytes received:
JSON that was parsed and re-serialised no longer matches, even when it means the same.

Schemes: "github", "standard" (Standard Webhooks), "stripe", "hmac" (described by an
`HmacSpec`), "slack" and "shopify" (presets of "hmac"), and "none" (no check; development only).
"""

from __future__ import annotations

from mfo_client.webhook.schemes._build import KNOWN_SCHEMES, build_verifier
from mfo_client.webhook.schemes._core import Verified, Verifier
from mfo_client.webhook.schemes._errors import SchemeConfigError, SignatureError, SignatureReason
from mfo_client.webhook.schemes._hmac import HmacSpec
from mfo_client.webhook.schemes._shopify import SHOPIFY_PRESET
from mfo_client.webhook.schemes._slack import SLACK_PRESET

__all__ = [
    "KNOWN_SCHEMES",
    "SHOPIFY_PRESET",
    "SLACK_PRESET",
    "HmacSpec",
    "SchemeConfigError",
    "SignatureError",
    "SignatureReason",
    "Verified",
    "Verifier",
    "build_verifier",
]
