"""Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the raw body>`, keyed with the app's
client secret as UTF-8 bytes. Shopify signs no timestamp, so there is no replay window to check."""

from __future__ import annotations

from mfo_client.webhook.schemes._hmac import HmacSpec

__all__ = ["SHOPIFY_PRESET"]

SHOPIFY_PRESET = HmacSpec(header="X-Shopify-Hmac-Sha256", encoding="base64")
