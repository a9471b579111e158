"""The public surface of `mfo_client.webhook.schemes`: exact, sorted, and the presets' values."""

from __future__ import annotations

from dataclasses import asdict

import mfo_client.webhook.schemes as schemes
from mfo_client.webhook.schemes import (
    KNOWN_SCHEMES,
    SHOPIFY_PRESET,
    SLACK_PRESET,
    SchemeConfigError,
    SignatureError,
)


def test_public_names_are_exactly_these_and_sorted() -> None:
    assert schemes.__all__ == [
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
    # Constants first, then code-point order (ruff's RUF022 order), as elsewhere in the package.
    assert schemes.__all__ == sorted(schemes.__all__, key=lambda s: (not s.isupper(), s))
    assert [name for name in schemes.__all__ if not hasattr(schemes, name)] == []


def test_known_schemes_in_documented_order() -> None:
    assert KNOWN_SCHEMES == ("github", "standard", "stripe", "hmac", "slack", "shopify", "none")


def test_slack_preset_is_slacks_published_algorithm() -> None:
    assert asdict(SLACK_PRESET) == {
        "header": "X-Slack-Signature",
        "algorithm": "sha256",
        "encoding": "hex",
        "prefix": "v0=",
        "timestamp_header": "X-Slack-Request-Timestamp",
        "signed_content": "v0:{timestamp}:{body}",
    }


def test_shopify_preset_is_shopifys_published_algorithm() -> None:
    assert asdict(SHOPIFY_PRESET) == {
        "header": "X-Shopify-Hmac-Sha256",
        "algorithm": "sha256",
        "encoding": "base64",
        "prefix": "",
        "timestamp_header": None,
        "signed_content": "{body}",
    }


def test_error_classes() -> None:
    # SchemeConfigError is a ValueError so config loaders that catch ValueError report it.
    assert issubclass(SchemeConfigError, ValueError)
    assert not issubclass(SignatureError, ValueError)
    error = SignatureError("mismatch", "the X header says no", header="X")
    assert (error.reason, error.header, error.message, str(error)) == (
        "mismatch",
        "X",
        "the X header says no",
        "the X header says no",
    )
