"""Stripe: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]` over `<t>.<raw body>`.

The key is the endpoint secret's UTF-8 bytes, `whsec_` prefix included: unlike Standard Webhooks,
Stripe does not base64-decode it. Several `v1` entries appear while Stripe rolls a secret; any
one matching passes. Other schemes in the header (such as `v0`) are ignored, as Stripe advises,
so a weaker scheme cannot be substituted for v1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mfo_client.webhook.schemes._core import (
    Verified,
    check_window,
    decode_hex,
    lower_headers,
    match_secret,
    parse_timestamp,
    require,
)
from mfo_client.webhook.schemes._errors import SignatureError

__all__ = ["StripeVerifier"]

_HEADER = "Stripe-Signature"
_SHA256_SIZE = 32


def _parse(value: str) -> tuple[str, list[bytes]]:
    """The raw `t` value and every well-formed `v1` signature, or a malformed_header error."""
    timestamps: list[str] = []
    signatures: list[bytes] = []
    for item in value.split(","):
        key, _, text = item.strip().partition("=")
        if key == "t":
            timestamps.append(text)
        elif key == "v1" and (signature := decode_hex(text, _SHA256_SIZE)) is not None:
            signatures.append(signature)
    if len(timestamps) != 1 or not signatures:
        raise SignatureError(
            "malformed_header",
            f"the {_HEADER} header is malformed: expected 't=<unix seconds>,v1=<64 hex digits>'"
            " with exactly one t",
            header=_HEADER,
        )
    return timestamps[0], signatures


@dataclass(frozen=True)
class StripeVerifier:
    """Verifies Stripe deliveries with any of `keys` (secrets as UTF-8 bytes)."""

    keys: tuple[bytes, ...] = field(repr=False)
    tolerance: float = 300.0
    scheme: str = "stripe"

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        raw_timestamp, candidates = _parse(require(lower_headers(headers), _HEADER))
        signed_time = parse_timestamp(raw_timestamp, _HEADER)
        content = (raw_timestamp.encode("ascii"), b".", body)
        index = match_secret(self.keys, "sha256", content, candidates)
        if index is None:
            raise SignatureError(
                "mismatch",
                f"no v1 signature in {_HEADER} matches this request body with any configured "
                "secret",
                header=_HEADER,
            )
        # After the signature, so a timestamp error means a genuine but late delivery.
        check_window(signed_time, now, self.tolerance, _HEADER)
        return Verified(self.scheme, index, float(signed_time))
