"""Scheme "none": no signature is checked. For local development only; the listener warns at
start-up, and `build_verifier` refuses secrets for it so a typo cannot silently disable checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mfo_client.webhook.schemes._core import Verified

__all__ = ["NoneVerifier"]


@dataclass(frozen=True)
class NoneVerifier:
    """Accepts every delivery; `secret_index` is -1 because no secret was used."""

    scheme: str = "none"

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        return Verified(self.scheme, -1, None)
