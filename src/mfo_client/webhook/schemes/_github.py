"""GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`, keyed with the
secret's UTF-8 bytes.

The legacy `X-Hub-Signature` (HMAC-SHA1) header is not accepted. GitHub sends both headers
whenever a secret is set, so nothing is lost, and a receiver that accepts either one is only as
strong as SHA-1. A sender that only ever signs with SHA-1 can still be configured explicitly as
scheme "hmac" with `HmacSpec(header="X-Hub-Signature", algorithm="sha1", prefix="sha1=")`.
"""

from __future__ import annotations

from mfo_client.webhook.schemes._hmac import HmacSpec

__all__ = ["GITHUB_SPEC"]

GITHUB_SPEC = HmacSpec(header="X-Hub-Signature-256", prefix="sha256=")
