"""Hostile input: any header value yields a `SignatureError` (nothing else), and no error ever
carries a secret or the signature that would have matched."""

from __future__ import annotations

import base64
import hmac
import random
from typing import get_args

import pytest

from mfo_client.webhook.schemes import (
    HmacSpec,
    SignatureError,
    SignatureReason,
    Verifier,
    build_verifier,
)

NOW = 1700000000
BODY = b'{"event":"ping"}'
TEXT_SECRET = "sekrit-Value-9f2c41"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"standard-key-bytes-0123456789").decode()

# Each scheme, how to build it, and the headers a well-formed delivery carries.
SCHEMES: dict[str, tuple[Verifier, list[str]]] = {
    "github": (build_verifier("github", [TEXT_SECRET]), ["X-Hub-Signature-256"]),
    "standard": (
        build_verifier("standard", [STANDARD_SECRET]),
        ["webhook-id", "webhook-timestamp", "webhook-signature"],
    ),
    "stripe": (build_verifier("stripe", [TEXT_SECRET]), ["Stripe-Signature"]),
    "slack": (
        build_verifier("slack", [TEXT_SECRET]),
        ["X-Slack-Signature", "X-Slack-Request-Timestamp"],
    ),
    "shopify": (build_verifier("shopify", [TEXT_SECRET]), ["X-Shopify-Hmac-Sha256"]),
    "hmac": (
        build_verifier(
            "hmac",
            [TEXT_SECRET],
            hmac=HmacSpec(
                header="X-Sig",
                algorithm="sha512",
                encoding="base64",
                prefix="v9:",
                timestamp_header="X-Time",
                signed_content="{timestamp}{body}",
            ),
        ),
        ["X-Sig", "X-Time"],
    ),
}

NASTY = [
    "",
    " ",
    ",",
    "=",
    "\x00",
    "\t\r\n",
    "t=",
    "t=,v1=",
    "t=1,v1=zz",
    "v1,",
    "v1,====",
    "v1," + "A" * 10_000,
    "sha256=",
    "sha256=" + "0" * 63,
    "sha256=" + "é" * 64,
    "v0=" + "f" * 64,
    "9" * 400,
    "-0",
    "1e308",
    "NaN",
    "\udcff",
    "ÿ" * 44,
    "v1a,xyz v2,abc",
    "t=1700000000,t=1700000000",
]


def _hex(key: bytes, content: bytes, algorithm: str = "sha256") -> str:
    return hmac.new(key, content, algorithm).hexdigest()


def _b64(key: bytes, content: bytes, algorithm: str = "sha256") -> str:
    return base64.b64encode(hmac.new(key, content, algorithm).digest()).decode()


TEXT_KEY = TEXT_SECRET.encode()
STANDARD_KEY = base64.b64decode(STANDARD_SECRET.removeprefix("whsec_"))
TS = str(NOW).encode()

# The signature each scheme expects for BODY at NOW (message id "msg_1" for standard).
EXPECTED = {
    "github": _hex(TEXT_KEY, BODY),
    "standard": _b64(STANDARD_KEY, b"msg_1." + TS + b"." + BODY),
    "stripe": _hex(TEXT_KEY, TS + b"." + BODY),
    "slack": _hex(TEXT_KEY, b"v0:" + TS + b":" + BODY),
    "shopify": _b64(TEXT_KEY, BODY),
    "hmac": _b64(TEXT_KEY, TS + BODY, "sha512"),
}

GENUINE = {
    "github": {"X-Hub-Signature-256": "sha256=" + EXPECTED["github"]},
    "standard": {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(NOW),
        "webhook-signature": "v1," + EXPECTED["standard"],
    },
    "stripe": {"Stripe-Signature": f"t={NOW},v1={EXPECTED['stripe']}"},
    "slack": {
        "X-Slack-Signature": "v0=" + EXPECTED["slack"],
        "X-Slack-Request-Timestamp": str(NOW),
    },
    "shopify": {"X-Shopify-Hmac-Sha256": EXPECTED["shopify"]},
    "hmac": {"X-Sig": "v9:" + EXPECTED["hmac"], "X-Time": str(NOW)},
}


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_the_genuine_delivery_verifies(scheme: str) -> None:
    # Guards the tests below: every other header is genuine, and EXPECTED is what matches.
    verifier, _ = SCHEMES[scheme]
    assert verifier.verify(GENUINE[scheme], BODY, NOW).secret_index == 0


def random_values(count: int) -> list[str]:
    alphabet = "tv01=,. +/-_abcdefABCDEF9é\x00\t"
    rng = random.Random(20240601)
    return ["".join(rng.choices(alphabet, k=rng.randint(0, 90))) for _ in range(count)]


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_any_header_value_fails_with_a_signature_error_only(scheme: str) -> None:
    verifier, names = SCHEMES[scheme]
    reasons = set(get_args(SignatureReason))
    for value in NASTY + random_values(300):
        for target in names:
            headers = GENUINE[scheme] | {target: value}
            if headers == GENUINE[scheme]:
                continue
            try:
                verifier.verify(headers, BODY, NOW)
            except SignatureError as error:
                assert error.reason in reasons
                assert error.header in names
            else:
                # Only a change the signature does not cover can pass: a message id that
                # differs only in surrounding blanks, which HTTP servers strip anyway.
                assert value.strip(" \t") == GENUINE[scheme][target]


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_no_headers_at_all_is_missing_the_first_one(scheme: str) -> None:
    verifier, names = SCHEMES[scheme]
    with pytest.raises(SignatureError) as caught:
        verifier.verify({}, BODY, NOW)
    assert (caught.value.reason, caught.value.header) == ("missing_header", names[0])


def test_errors_never_carry_a_secret_or_the_expected_signature() -> None:
    """Each scheme is sent a wrong signature, then a stale and a malformed one; the messages
    are searched for every secret form and for the signature that would have matched."""
    ts = str(NOW)
    wrong = {
        "github": {"X-Hub-Signature-256": "sha256=" + "ab" * 32},
        "standard": {
            "webhook-id": "msg_1",
            "webhook-timestamp": ts,
            "webhook-signature": "v1," + base64.b64encode(bytes(32)).decode(),
        },
        "stripe": {"Stripe-Signature": f"t={ts},v1={'cd' * 32}"},
        "slack": {"X-Slack-Signature": "v0=" + "ef" * 32, "X-Slack-Request-Timestamp": ts},
        "shopify": {"X-Shopify-Hmac-Sha256": base64.b64encode(bytes(32)).decode()},
        "hmac": {"X-Sig": "v9:" + base64.b64encode(bytes(64)).decode(), "X-Time": ts},
    }
    forbidden = [
        TEXT_SECRET,
        STANDARD_SECRET,
        STANDARD_SECRET.removeprefix("whsec_"),
        STANDARD_KEY.hex(),
        repr(STANDARD_KEY),
        repr(TEXT_KEY),
    ]
    for scheme, (verifier, names) in SCHEMES.items():
        messages = []
        for headers, body, now in [
            (wrong[scheme], BODY, NOW),
            (wrong[scheme], BODY + b"!", NOW + 10_000),
            ({name: "garbage" for name in names}, BODY, NOW),
        ]:
            with pytest.raises(SignatureError) as caught:
                verifier.verify(headers, body, now)
            error = caught.value
            messages += [error.message, str(error), repr(error), repr(error.args)]
        assert [m for m in messages if EXPECTED[scheme] in m] == []
        assert [m for m in messages if EXPECTED[scheme].lower() in m.lower()] == []
        assert [m for m in messages for secret in forbidden if secret in m] == []
