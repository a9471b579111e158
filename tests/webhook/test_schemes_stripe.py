"""Scheme "stripe": `t=...,v1=...` over `<t>.<body>`, the secret used as text, tolerance both ways.

Stripe publishes the algorithm but no secret-and-body example, so signatures are built here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from mfo_client.webhook.schemes import SignatureError, Verified, build_verifier

SECRET = "whsec_dGhpcyBpcyBhIHN0cmlwZSB0ZXN0IHNlY3JldA"
OLD_SECRET = "whsec_b2xkIHN0cmlwZSBzZWNyZXQgZm9yIHJvdGF0aW9u"
TS = 1700000000
BODY = b'{"id":"evt_1","object":"event","type":"payment_intent.succeeded"}'
HEADER = "Stripe-Signature"


def v1(secret: str | bytes, timestamp: int = TS, body: bytes = BODY) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def error(value: str, now: float = TS, body: bytes = BODY) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        build_verifier("stripe", [SECRET]).verify({HEADER: value}, body, now)
    assert caught.value.header == HEADER
    return caught.value


def test_signed_delivery_verifies_with_its_timestamp() -> None:
    verifier = build_verifier("stripe", [SECRET])
    assert verifier.scheme == "stripe"
    result = verifier.verify({HEADER: f"t={TS},v1={v1(SECRET)}"}, BODY, TS + 5)
    assert result == Verified(scheme="stripe", secret_index=0, timestamp=1700000000.0)


def test_whsec_secret_is_not_base64_decoded() -> None:
    decoded_key = base64.b64decode(SECRET.removeprefix("whsec_") + "==")
    assert error(f"t={TS},v1={v1(decoded_key)}").reason == "mismatch"


def test_any_v1_entry_may_match_and_v0_is_ignored() -> None:
    value = f"t={TS},v1={v1(OLD_SECRET)},v1={v1(SECRET)},v0={v1(SECRET)}"
    verifier = build_verifier("stripe", [SECRET])
    assert verifier.verify({"stripe-signature": value}, BODY, TS) == Verified("stripe", 0, TS)


def test_a_v0_signature_alone_is_not_enough() -> None:
    caught = error(f"t={TS},v0={v1(SECRET)}")
    assert caught.reason == "malformed_header"
    assert caught.message == (
        "the Stripe-Signature header is malformed: expected "
        "'t=<unix seconds>,v1=<64 hex digits>' with exactly one t"
    )


def test_rotation_second_secret_matches() -> None:
    verifier = build_verifier("stripe", [OLD_SECRET, SECRET])
    assert verifier.verify({HEADER: f"t={TS},v1={v1(SECRET)}"}, BODY, TS) == Verified(
        "stripe", 1, float(TS)
    )


@pytest.mark.parametrize(
    ("now", "reason", "message"),
    [
        (TS + 300, None, None),
        (TS - 300, None, None),
        (
            TS + 301,
            "stale_timestamp",
            "the timestamp in Stripe-Signature is 301 s old, outside the tolerance of 300 s",
        ),
        (
            TS - 301,
            "future_timestamp",
            "the timestamp in Stripe-Signature is 301 s in the future, outside the tolerance "
            "of 300 s",
        ),
    ],
)
def test_tolerance_edges(now: float, reason: str | None, message: str | None) -> None:
    value = f"t={TS},v1={v1(SECRET)}"
    if reason is None:
        assert build_verifier("stripe", [SECRET]).verify({HEADER: value}, BODY, now) == Verified(
            "stripe", 0, float(TS)
        )
        return
    caught = error(value, now)
    assert (caught.reason, caught.message) == (reason, message)


def test_timestamp_and_body_are_both_signed() -> None:
    assert error(f"t={TS + 1},v1={v1(SECRET)}").reason == "mismatch"
    caught = error(f"t={TS},v1={v1(SECRET)}", body=BODY + b"\n")
    assert caught.reason == "mismatch"
    assert caught.message == (
        "no v1 signature in Stripe-Signature matches this request body with any configured secret"
    )


@pytest.mark.parametrize(
    "value",
    [
        f"v1={v1(SECRET)}",
        f"t={TS},t={TS},v1={v1(SECRET)}",
        f"t={TS}",
        f"t={TS},v1=",
        f"t={TS},v1={v1(SECRET)[:-2]}",
        f"t={TS},v1={v1(SECRET)}zz",
        f"t={TS};v1={v1(SECRET)}",
    ],
)
def test_malformed_values(value: str) -> None:
    assert error(value).reason == "malformed_header"


def test_non_numeric_t_is_malformed_timestamp() -> None:
    caught = error(f"t=yesterday,v1={v1(SECRET)}")
    assert (caught.reason, caught.message) == (
        "malformed_header",
        "the Stripe-Signature header is malformed: expected a unix time in whole seconds",
    )


def test_missing_header() -> None:
    with pytest.raises(SignatureError) as caught:
        build_verifier("stripe", [SECRET]).verify({}, BODY, TS)
    assert (caught.value.reason, caught.value.header, caught.value.message) == (
        "missing_header",
        "Stripe-Signature",
        "the Stripe-Signature header is missing",
    )
