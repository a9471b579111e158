"""`build_verifier`: turn a configured scheme name and secrets into a verifier, or refuse.

Everything that can be wrong with the configuration is found here, at start-up, so a listener
never runs with a verifier that would accept a forgery (only scheme "none" accepts everything,
and only when asked for by name).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mfo_client.webhook.schemes._core import Verifier
from mfo_client.webhook.schemes._errors import SchemeConfigError
from mfo_client.webhook.schemes._github import GITHUB_SPEC
from mfo_client.webhook.schemes._hmac import HmacSpec, HmacVerifier
from mfo_client.webhook.schemes._none import NoneVerifier
from mfo_client.webhook.schemes._shopify import SHOPIFY_PRESET
from mfo_client.webhook.schemes._slack import SLACK_PRESET
from mfo_client.webhook.schemes._standard import StandardWebhooksVerifier, decode_secret
from mfo_client.webhook.schemes._stripe import StripeVerifier

__all__ = ["KNOWN_SCHEMES", "PRESETS", "build_verifier"]

KNOWN_SCHEMES: tuple[str, ...] = (
    "github",
    "standard",
    "stripe",
    "hmac",
    "slack",
    "shopify",
    "none",
)
"""Every name `build_verifier` accepts."""

PRESETS = {"github": GITHUB_SPEC, "slack": SLACK_PRESET, "shopify": SHOPIFY_PRESET}


def build_verifier(
    scheme: str,
    secrets: Sequence[str],
    *,
    tolerance: float = 300.0,
    hmac: HmacSpec | None = None,
) -> Verifier:
    """The verifier for `scheme`, trying every one of `secrets` (several allow rotation).

    `tolerance` is how far, in seconds and either way, a signed timestamp may be from now.
    `hmac` describes the sender for scheme "hmac" and is refused for any other scheme.
    Raises `SchemeConfigError` saying what is wrong and what is allowed; the message never
    contains a secret.
    """
    if scheme not in KNOWN_SCHEMES:
        raise SchemeConfigError(
            f"unknown webhook signature scheme {scheme!r}; known schemes: "
            f"{', '.join(KNOWN_SCHEMES)}"
        )
    if isinstance(secrets, str):
        raise SchemeConfigError(
            f"secrets for scheme {scheme!r} must be a list of strings, not a single string"
        )
    secrets = tuple(secrets)
    if hmac is not None and scheme != "hmac":
        raise SchemeConfigError(
            f"an HmacSpec was given for scheme {scheme!r}; only scheme 'hmac' takes one"
        )
    if scheme == "none":
        if secrets:
            raise SchemeConfigError(
                "scheme 'none' checks no signature, so it takes no secrets; remove them or "
                "choose the scheme your sender signs with"
            )
        return NoneVerifier()
    if not math.isfinite(tolerance) or tolerance < 0:
        raise SchemeConfigError(
            f"tolerance for scheme {scheme!r} must be a finite number of seconds >= 0, "
            f"not {tolerance!r}"
        )
    if not secrets:
        raise SchemeConfigError(
            f"scheme {scheme!r} needs at least one secret (give several to rotate secrets)"
        )
    for index, secret in enumerate(secrets):
        if not secret:
            raise SchemeConfigError(f"secret at index {index} for scheme {scheme!r} is empty")

    if scheme == "standard":
        keys = tuple(decode_secret(secret, index) for index, secret in enumerate(secrets))
        return StandardWebhooksVerifier(keys, tolerance)
    keys = tuple(_utf8(secret, index, scheme) for index, secret in enumerate(secrets))
    if scheme == "stripe":
        return StripeVerifier(keys, tolerance)
    if scheme == "hmac":
        if hmac is None:
            raise SchemeConfigError(
                "scheme 'hmac' needs an HmacSpec naming at least the signature header, "
                "e.g. hmac=HmacSpec(header='X-Signature')"
            )
        return HmacVerifier(scheme, hmac, keys, tolerance)
    return HmacVerifier(scheme, PRESETS[scheme], keys, tolerance)


def _utf8(secret: str, index: int, scheme: str) -> bytes:
    """The key bytes senders use: the secret's UTF-8 encoding."""
    try:
        return secret.encode("utf-8")
    except UnicodeEncodeError:
        # Only lone surrogates get here, e.g. undecodable bytes in an environment variable.
        raise SchemeConfigError(
            f"secret at index {index} for scheme {scheme!r} is not valid text (it holds bytes "
            "that are not UTF-8); check how it was read"
        ) from None
