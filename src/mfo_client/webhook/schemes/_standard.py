"""Standard Webhooks (standardwebhooks.com), symmetric signatures.

Headers `webhook-id`, `webhook-timestamp` and `webhook-signature`; the signed content is
`<id>.<timestamp>.<raw body>` and the key is the base64-decoded secret (an optional `whsec_`
prefix removed, padding optional). `webhook-signature` is a space-separated list of
`<version>,<base64>` entries so a sender can sign with several keys at once: any `v1` entry that
matches passes, other versions (such as the asymmetric `v1a`) are ignored.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field

from mfo_client.webhook.schemes._core import (
    Verified,
    check_window,
    decode_base64,
    header_bytes,
    lower_headers,
    match_secret,
    parse_timestamp,
    require,
)
from mfo_client.webhook.schemes._errors import SchemeConfigError, SignatureError

__all__ = ["StandardWebhooksVerifier", "decode_secret"]

_ID = "webhook-id"
_TIMESTAMP = "webhook-timestamp"
_SIGNATURE = "webhook-signature"
_SHA256_SIZE = 32


def decode_secret(secret: str, index: int) -> bytes:
    """The HMAC key for a `whsec_...` secret; `index` only places the secret in the error."""
    text = secret.removeprefix("whsec_")
    where = f"secret at index {index} for scheme 'standard'"
    if not text:
        raise SchemeConfigError(f"{where} is empty after its 'whsec_' prefix")
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise SchemeConfigError(
            f"{where} is not base64 after its optional 'whsec_' prefix (Standard Webhooks "
            "secrets look like 'whsec_' followed by base64); check it was copied whole"
        )
    return key


def _v1_signatures(value: str) -> list[bytes]:
    """Every well-formed v1 signature in the header; malformed entries cannot match anyway."""
    found = []
    for entry in value.split():
        version, _, encoded = entry.partition(",")
        if version == "v1" and (signature := decode_base64(encoded, _SHA256_SIZE)) is not None:
            found.append(signature)
    return found


@dataclass(frozen=True)
class StandardWebhooksVerifier:
    """Verifies Standard Webhooks deliveries with any of `keys` (already decoded)."""

    keys: tuple[bytes, ...] = field(repr=False)
    tolerance: float = 300.0
    scheme: str = "standard"

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        lowered = lower_headers(headers)
        message_id = require(lowered, _ID)
        raw_timestamp = require(lowered, _TIMESTAMP)
        raw_signature = require(lowered, _SIGNATURE)

        signed_time = parse_timestamp(raw_timestamp, _TIMESTAMP)
        candidates = _v1_signatures(raw_signature)
        if not candidates:
            raise SignatureError(
                "malformed_header",
                f"the {_SIGNATURE} header is malformed: expected space-separated "
                "'v1,<base64 HMAC-SHA256>' entries",
                header=_SIGNATURE,
            )
        content = (header_bytes(message_id), b".", raw_timestamp.encode("ascii"), b".", body)
        index = match_secret(self.keys, "sha256", content, candidates)
        if index is None:
            raise SignatureError(
                "mismatch",
                f"no signature in {_SIGNATURE} matches this request body with any configured "
                "secret",
                header=_SIGNATURE,
            )
        # After the signature, so a timestamp error means a genuine but late delivery.
        check_window(signed_time, now, self.tolerance, _TIMESTAMP)
        return Verified(self.scheme, index, float(signed_time))
