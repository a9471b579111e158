"""Scheme "standard" (Standard Webhooks): tolerance edges, rotation, signature lists, bytes."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from starlette.datastructures import Headers

from mfo_client.webhook.schemes import SignatureError, Verified, build_verifier

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_" + base64.b64encode(b"another key, 24 bytes!!!").decode()
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TS = 1614265330
BODY = b'{"test": 2432232314}'


def sign(secret: str, msg_id: bytes, timestamp: int, body: bytes) -> str:
    """The spec's algorithm, written out independently of the package."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = msg_id + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def headers(signature: str, timestamp: int = TS, msg_id: str = MSG_ID) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def error(verify_headers: dict[str, str], now: float, body: bytes = BODY) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        build_verifier("standard", [SECRET]).verify(verify_headers, body, now)
    return caught.value


def test_signing_helper_reproduces_the_published_signature() -> None:
    assert (
        sign(SECRET, MSG_ID.encode(), TS, BODY) == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


@pytest.mark.parametrize("offset", [-300.0, -299.5, 0.0, 299.999, 300.0])
def test_within_tolerance_either_way_verifies(offset: float) -> None:
    verifier = build_verifier("standard", [SECRET])
    result = verifier.verify(headers(sign(SECRET, MSG_ID.encode(), TS, BODY)), BODY, TS + offset)
    assert result == Verified("standard", 0, 1614265330.0)


def test_301_seconds_old_is_stale() -> None:
    caught = error(headers(sign(SECRET, MSG_ID.encode(), TS, BODY)), TS + 301)
    assert (caught.reason, caught.header) == ("stale_timestamp", "webhook-timestamp")
    assert caught.message == (
        "the timestamp in webhook-timestamp is 301 s old, outside the tolerance of 300 s"
    )


def test_a_fraction_past_the_tolerance_is_stale() -> None:
    caught = error(headers(sign(SECRET, MSG_ID.encode(), TS, BODY)), TS + 300.5)
    assert caught.reason == "stale_timestamp"
    assert caught.message == (
        "the timestamp in webhook-timestamp is 300.5 s old, outside the tolerance of 300 s"
    )


def test_301_seconds_ahead_is_future() -> None:
    caught = error(headers(sign(SECRET, MSG_ID.encode(), TS, BODY)), TS - 301)
    assert (caught.reason, caught.header) == ("future_timestamp", "webhook-timestamp")
    assert caught.message == (
        "the timestamp in webhook-timestamp is 301 s in the future, outside the tolerance of 300 s"
    )


def test_custom_tolerance_is_used_and_stated() -> None:
    verifier = build_verifier("standard", [SECRET], tolerance=60)
    signed = headers(sign(SECRET, MSG_ID.encode(), TS, BODY))
    assert verifier.verify(signed, BODY, TS + 60) == Verified("standard", 0, float(TS))
    with pytest.raises(SignatureError) as caught:
        verifier.verify(signed, BODY, TS + 61)
    assert caught.value.message == (
        "the timestamp in webhook-timestamp is 61 s old, outside the tolerance of 60 s"
    )


def test_a_forged_signature_with_an_old_timestamp_is_a_mismatch_not_stale() -> None:
    # The signature is checked first: a timestamp error is only reported for genuine deliveries.
    forged = headers(sign(OTHER_SECRET, MSG_ID.encode(), TS, BODY))
    assert error(forged, TS + 10_000).reason == "mismatch"


def test_rotation_second_secret_matches() -> None:
    verifier = build_verifier("standard", [OTHER_SECRET, SECRET])
    signed = headers(sign(SECRET, MSG_ID.encode(), TS, BODY))
    assert verifier.verify(signed, BODY, TS) == Verified("standard", 1, float(TS))


def test_sender_signing_with_two_keys_matches_either_configured_one() -> None:
    both = " ".join(
        [sign(OTHER_SECRET, MSG_ID.encode(), TS, BODY), sign(SECRET, MSG_ID.encode(), TS, BODY)]
    )
    assert build_verifier("standard", [SECRET]).verify(headers(both), BODY, TS) == Verified(
        "standard", 0, float(TS)
    )
    only_other = build_verifier("standard", [OTHER_SECRET])
    assert only_other.verify(headers(both), BODY, TS) == Verified("standard", 0, float(TS))


def test_other_versions_are_ignored() -> None:
    good = sign(SECRET, MSG_ID.encode(), TS, BODY)
    asymmetric = "v1a," + base64.b64encode(bytes(64)).decode()
    verifier = build_verifier("standard", [SECRET])
    assert verifier.verify(headers(f"{asymmetric} {good}"), BODY, TS).secret_index == 0
    caught = error(headers(asymmetric), TS)
    assert (caught.reason, caught.header) == ("malformed_header", "webhook-signature")
    assert caught.message == (
        "the webhook-signature header is malformed: expected space-separated "
        "'v1,<base64 HMAC-SHA256>' entries"
    )


def test_each_header_is_covered_by_the_signature() -> None:
    signed = headers(sign(SECRET, MSG_ID.encode(), TS, BODY))
    assert error({**signed, "webhook-id": "msg_other"}, TS).reason == "mismatch"
    assert error({**signed, "webhook-timestamp": str(TS + 1)}, TS).reason == "mismatch"
    assert error(signed, TS, body=BODY + b" ").reason == "mismatch"


@pytest.mark.parametrize(
    "missing", ["webhook-id", "webhook-timestamp", "webhook-signature"], ids=str
)
def test_missing_header_is_named(missing: str) -> None:
    signed = headers(sign(SECRET, MSG_ID.encode(), TS, BODY))
    del signed[missing]
    caught = error(signed, TS)
    assert (caught.reason, caught.header) == ("missing_header", missing)
    assert caught.message == f"the {missing} header is missing"


@pytest.mark.parametrize("value", ["hello", "1614265330.5", "-1614265330", "1e9", "١٦١٤", "9" * 16])
def test_timestamp_that_is_not_whole_unix_seconds_is_malformed(value: str) -> None:
    signed = headers(sign(SECRET, MSG_ID.encode(), TS, BODY))
    caught = error({**signed, "webhook-timestamp": value}, TS)
    assert (caught.reason, caught.header) == ("malformed_header", "webhook-timestamp")
    assert caught.message == (
        "the webhook-timestamp header is malformed: expected a unix time in whole seconds"
    )


def test_body_that_is_not_utf8_verifies() -> None:
    body = b"\x80\x81\xfe\xff"
    signed = headers(sign(SECRET, MSG_ID.encode(), TS, body))
    assert build_verifier("standard", [SECRET]).verify(signed, body, TS).timestamp == float(TS)


def test_non_ascii_message_id_is_signed_as_the_bytes_on_the_wire() -> None:
    # ASGI servers hand header values over as latin-1 text; the wire bytes here are UTF-8.
    wire_id = "msg_café".encode()
    signature = sign(SECRET, wire_id, TS, BODY).encode()
    raw = [
        (b"webhook-id", wire_id),
        (b"webhook-timestamp", str(TS).encode()),
        (b"webhook-signature", signature),
    ]
    verifier = build_verifier("standard", [SECRET])
    assert verifier.verify(Headers(raw=raw), BODY, TS) == Verified("standard", 0, float(TS))
