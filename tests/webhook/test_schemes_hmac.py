"""Scheme "hmac" and its presets "slack" and "shopify", plus `HmacSpec` validation."""

from __future__ import annotations

import base64
import hmac
from typing import Any

import pytest

from mfo_client.webhook.schemes import (
    HmacSpec,
    SchemeConfigError,
    SignatureError,
    Verified,
    build_verifier,
)

# Slack's documented example ("Verifying requests from Slack", api.slack.com): these inputs give
# v0=a2114d57...9b503. Only the published facts are used; the check is our own code.
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TS = 1531420618
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect"
    b"&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554"
    b"%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_HEADERS = {
    "X-Slack-Request-Timestamp": str(SLACK_TS),
    "X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
}

SHOPIFY_SECRET = "shpss_0123456789abcdef0123456789abcdef"
SHOPIFY_BODY = b'{"id":820982911946154500,"email":"jon@example.com","note":"caf\xc3\xa9"}'


def digest(secret: str, content: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(secret.encode(), content, algorithm).digest()


def failure(
    scheme: str, secret: str, headers: dict[str, str], body: bytes, now: float
) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        build_verifier(scheme, [secret]).verify(headers, body, now)
    return caught.value


class TestSlack:
    def test_documented_example_verifies(self) -> None:
        verifier = build_verifier("slack", [SLACK_SECRET])
        assert verifier.scheme == "slack"
        assert verifier.verify(SLACK_HEADERS, SLACK_BODY, SLACK_TS + 12.5) == Verified(
            scheme="slack", secret_index=0, timestamp=1531420618.0
        )

    def test_timestamp_is_part_of_the_signed_content(self) -> None:
        moved = {**SLACK_HEADERS, "X-Slack-Request-Timestamp": str(SLACK_TS + 1)}
        caught = failure("slack", SLACK_SECRET, moved, SLACK_BODY, SLACK_TS)
        assert (caught.reason, caught.header) == ("mismatch", "X-Slack-Signature")

    def test_replay_after_five_minutes_is_stale(self) -> None:
        caught = failure("slack", SLACK_SECRET, SLACK_HEADERS, SLACK_BODY, SLACK_TS + 301)
        assert (caught.reason, caught.header, caught.message) == (
            "stale_timestamp",
            "X-Slack-Request-Timestamp",
            "the timestamp in X-Slack-Request-Timestamp is 301 s old, outside the tolerance "
            "of 300 s",
        )

    def test_exactly_300_seconds_passes_both_ways(self) -> None:
        verifier = build_verifier("slack", [SLACK_SECRET])
        assert verifier.verify(SLACK_HEADERS, SLACK_BODY, SLACK_TS + 300).secret_index == 0
        assert verifier.verify(SLACK_HEADERS, SLACK_BODY, SLACK_TS - 300).secret_index == 0
        caught = failure("slack", SLACK_SECRET, SLACK_HEADERS, SLACK_BODY, SLACK_TS - 301)
        assert caught.reason == "future_timestamp"

    def test_missing_timestamp_header_is_named(self) -> None:
        headers = {"X-Slack-Signature": SLACK_HEADERS["X-Slack-Signature"]}
        caught = failure("slack", SLACK_SECRET, headers, SLACK_BODY, SLACK_TS)
        assert (caught.reason, caught.header, caught.message) == (
            "missing_header",
            "X-Slack-Request-Timestamp",
            "the X-Slack-Request-Timestamp header is missing",
        )

    def test_signature_without_v0_prefix_is_malformed(self) -> None:
        headers = {**SLACK_HEADERS, "X-Slack-Signature": SLACK_HEADERS["X-Slack-Signature"][3:]}
        caught = failure("slack", SLACK_SECRET, headers, SLACK_BODY, SLACK_TS)
        assert (caught.reason, caught.message) == (
            "malformed_header",
            "the X-Slack-Signature header is malformed: expected 'v0=' followed by 64 hex "
            "digits (HMAC-SHA256)",
        )

    def test_rotation(self) -> None:
        verifier = build_verifier("slack", ["old-signing-secret", SLACK_SECRET])
        assert verifier.verify(SLACK_HEADERS, SLACK_BODY, SLACK_TS) == Verified(
            "slack", 1, float(SLACK_TS)
        )


class TestShopify:
    def headers(self, secret: str = SHOPIFY_SECRET, body: bytes = SHOPIFY_BODY) -> dict[str, str]:
        return {"X-Shopify-Hmac-Sha256": base64.b64encode(digest(secret, body)).decode()}

    def test_base64_signature_of_the_body_verifies(self) -> None:
        verifier = build_verifier("shopify", [SHOPIFY_SECRET])
        assert verifier.verify(self.headers(), SHOPIFY_BODY, 0.0) == Verified("shopify", 0, None)

    def test_no_timestamp_so_any_time_passes(self) -> None:
        verifier = build_verifier("shopify", [SHOPIFY_SECRET])
        assert verifier.verify(self.headers(), SHOPIFY_BODY, 4e9).timestamp is None

    def test_hex_instead_of_base64_is_malformed(self) -> None:
        headers = {"X-Shopify-Hmac-Sha256": digest(SHOPIFY_SECRET, SHOPIFY_BODY).hex()}
        caught = failure("shopify", SHOPIFY_SECRET, headers, SHOPIFY_BODY, 0.0)
        assert (caught.reason, caught.message) == (
            "malformed_header",
            "the X-Shopify-Hmac-Sha256 header is malformed: expected the base64 of a 32-byte "
            "digest (HMAC-SHA256)",
        )

    def test_other_body_is_a_mismatch(self) -> None:
        caught = failure("shopify", SHOPIFY_SECRET, self.headers(), SHOPIFY_BODY[:-1], 0.0)
        assert (caught.reason, caught.header) == ("mismatch", "X-Shopify-Hmac-Sha256")

    def test_rotation(self) -> None:
        verifier = build_verifier("shopify", ["shpss_old", SHOPIFY_SECRET])
        assert verifier.verify(self.headers(), SHOPIFY_BODY, 0.0).secret_index == 1


class TestGenericHmac:
    def test_sha1_hex_with_prefix(self) -> None:
        spec = HmacSpec(header="X-Hub-Signature", algorithm="sha1", prefix="sha1=")
        headers = {"X-Hub-Signature": "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59"}
        verifier = build_verifier("hmac", ["It's a Secret to Everybody"], hmac=spec)
        assert verifier.verify(headers, b"Hello, World!", 0.0) == Verified("hmac", 0, None)

    def test_sha512_base64_with_timestamp_template(self) -> None:
        spec = HmacSpec(
            header="X-Signature",
            algorithm="sha512",
            encoding="base64",
            timestamp_header="X-Timestamp",
            signed_content="{timestamp}.{body}",
        )
        body = b"\x00\xff not utf-8 \xfe"
        signature = base64.b64encode(digest("k", b"1700000000." + body, "sha512")).decode()
        headers = {"x-signature": signature, "x-timestamp": "1700000000"}
        verifier = build_verifier("hmac", ["k"], hmac=spec, tolerance=30)
        assert verifier.verify(headers, body, 1700000030) == Verified("hmac", 0, 1700000000.0)
        with pytest.raises(SignatureError) as caught:
            verifier.verify(headers, body, 1700000031)
        assert caught.value.message == (
            "the timestamp in X-Timestamp is 31 s old, outside the tolerance of 30 s"
        )

    def test_template_literals_and_escaped_braces_are_signed_as_utf8(self) -> None:
        spec = HmacSpec(header="X-Sig", signed_content="{{é}}:{body}")
        signature = digest("k", "{é}:".encode() + b"payload").hex()
        verifier = build_verifier("hmac", ["k"], hmac=spec)
        assert verifier.verify({"X-Sig": signature}, b"payload", 0.0).secret_index == 0

    def test_body_repeated_in_template(self) -> None:
        spec = HmacSpec(header="X-Sig", signed_content="{body}|{body}")
        signature = digest("k", b"ab|ab").hex()
        verifier = build_verifier("hmac", ["k"], hmac=spec)
        assert verifier.verify({"X-Sig": signature}, b"ab", 0.0) == Verified("hmac", 0, None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"header": " "}, "HmacSpec.header must name the header holding the signature"),
        (
            {"header": "X-Sig", "algorithm": "md5"},
            "HmacSpec.algorithm 'md5' is not supported; use one of sha1, sha256, sha512",
        ),
        (
            {"header": "X-Sig", "encoding": "base32"},
            "HmacSpec.encoding 'base32' is not supported; use 'hex' or 'base64'",
        ),
        (
            {"header": "X-Sig", "signed_content": "{timestamp}"},
            "HmacSpec.signed_content '{timestamp}' must include {body}: a signature that does "
            "not cover the body proves nothing about it",
        ),
        (
            {"header": "X-Sig", "signed_content": "{body}.{id}"},
            "HmacSpec.signed_content '{body}.{id}' has an unknown field; use {body} and "
            "{timestamp}, and {{ or }} for a literal brace",
        ),
        (
            {"header": "X-Sig", "signed_content": "{body!r}"},
            "HmacSpec.signed_content '{body!r}' has an unknown field; use {body} and "
            "{timestamp}, and {{ or }} for a literal brace",
        ),
        (
            {"header": "X-Sig", "signed_content": "{body"},
            "HmacSpec.signed_content '{body' has an unbalanced brace; use {body} and "
            "{timestamp}, and {{ or }} for a literal brace",
        ),
        (
            {"header": "X-Sig", "signed_content": "{timestamp}.{body}"},
            "HmacSpec.signed_content '{timestamp}.{body}' uses {timestamp}, so "
            "timestamp_header must name the header it comes from",
        ),
        (
            {"header": "X-Sig", "timestamp_header": "X-Time"},
            "HmacSpec.timestamp_header is 'X-Time' but signed_content '{body}' does not include "
            "{timestamp}; a timestamp that is not signed can be changed by anyone, so it would "
            "not stop replays",
        ),
        (
            {"header": "X-Sig", "signed_content": "\udcff{body}"},
            "HmacSpec.signed_content '\\udcff{body}' is not valid text (lone surrogate)",
        ),
    ],
)
def test_invalid_spec_is_refused_with_help(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SchemeConfigError) as caught:
        HmacSpec(**options)
    assert str(caught.value) == message
