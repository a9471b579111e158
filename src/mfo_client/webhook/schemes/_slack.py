"""Slack: `X-Slack-Signature: v0=<hex HMAC-SHA256>` over `v0:<timestamp>:<raw body>`, with the
signed time in `X-Slack-Request-Timestamp`; the signing secret is used as UTF-8 bytes."""

from __future__ import annotations

from mfo_client.webhook.schemes._hmac import HmacSpec

__all__ = ["SLACK_PRESET"]

SLACK_PRESET = HmacSpec(
    header="X-Slack-Signature",
    prefix="v0=",
    timestamp_header="X-Slack-Request-Timestamp",
    signed_content="v0:{timestamp}:{body}",
)
