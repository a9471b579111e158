"""`build_verifier`: what each scheme builds, and every configuration it refuses, with its words."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from mfo_client.webhook.schemes import (
    KNOWN_SCHEMES,
    HmacSpec,
    SchemeConfigError,
    Verified,
    build_verifier,
)

SPEC = HmacSpec(header="X-Signature")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def config_error(scheme: str, secrets: Any, **options: Any) -> str:
    with pytest.raises(SchemeConfigError) as caught:
        build_verifier(scheme, secrets, **options)
    return str(caught.value)


@pytest.mark.parametrize("scheme", [s for s in KNOWN_SCHEMES if s != "none"])
def test_each_scheme_builds_a_verifier_named_after_it(scheme: str) -> None:
    options: dict[str, Any] = {"hmac": SPEC} if scheme == "hmac" else {}
    verifier = build_verifier(scheme, [SECRET], **options)
    assert verifier.scheme == scheme


@pytest.mark.parametrize("scheme", [s for s in KNOWN_SCHEMES if s != "none"])
def test_repr_does_not_show_the_secret(scheme: str) -> None:
    options: dict[str, Any] = {"hmac": SPEC} if scheme == "hmac" else {}
    text = repr(build_verifier(scheme, [SECRET], **options))
    assert "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" not in text
    assert "keys" not in text


def test_none_accepts_anything_and_says_no_secret_was_used() -> None:
    verifier = build_verifier("none", [])
    assert verifier.scheme == "none"
    assert verifier.verify({}, b"\x00anything", 0.0) == Verified("none", -1, None)


def test_verified_is_frozen() -> None:
    result = Verified("github", 0, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.secret_index = 1  # type: ignore[misc]


def test_unknown_scheme_lists_the_known_ones() -> None:
    assert config_error("gitlab", ["x"]) == (
        "unknown webhook signature scheme 'gitlab'; known schemes: github, standard, stripe, "
        "hmac, slack, shopify, none"
    )


def test_scheme_names_are_exact() -> None:
    assert config_error("GitHub", ["x"]).startswith("unknown webhook signature scheme 'GitHub'")


@pytest.mark.parametrize("scheme", [s for s in KNOWN_SCHEMES if s != "none"])
def test_no_secrets_is_refused(scheme: str) -> None:
    options: dict[str, Any] = {"hmac": SPEC} if scheme == "hmac" else {}
    assert config_error(scheme, [], **options) == (
        f"scheme '{scheme}' needs at least one secret (give several to rotate secrets)"
    )


@pytest.mark.parametrize("scheme", [s for s in KNOWN_SCHEMES if s != "none"])
def test_an_empty_secret_is_refused_by_position(scheme: str) -> None:
    options: dict[str, Any] = {"hmac": SPEC} if scheme == "hmac" else {}
    assert config_error(scheme, [SECRET, ""], **options) == (
        f"secret at index 1 for scheme '{scheme}' is empty"
    )


def test_a_single_string_is_not_taken_as_a_list_of_characters() -> None:
    assert config_error("github", "my-secret") == (
        "secrets for scheme 'github' must be a list of strings, not a single string"
    )


def test_secrets_for_none_are_refused() -> None:
    assert config_error("none", ["forgotten-secret"]) == (
        "scheme 'none' checks no signature, so it takes no secrets; remove them or choose the "
        "scheme your sender signs with"
    )


def test_hmac_without_spec_is_refused() -> None:
    assert config_error("hmac", ["k"]) == (
        "scheme 'hmac' needs an HmacSpec naming at least the signature header, "
        "e.g. hmac=HmacSpec(header='X-Signature')"
    )


@pytest.mark.parametrize("scheme", ["github", "slack", "none"])
def test_spec_for_another_scheme_is_refused(scheme: str) -> None:
    assert config_error(scheme, ["k"], hmac=SPEC) == (
        f"an HmacSpec was given for scheme '{scheme}'; only scheme 'hmac' takes one"
    )


@pytest.mark.parametrize("tolerance", [-1.0, float("nan"), float("inf")])
def test_tolerance_must_be_finite_and_not_negative(tolerance: float) -> None:
    assert config_error("stripe", ["k"], tolerance=tolerance) == (
        f"tolerance for scheme 'stripe' must be a finite number of seconds >= 0, not {tolerance!r}"
    )


@pytest.mark.parametrize(
    "secret",
    ["whsec_not base64!", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwA", "whsec_abc\n", "==="],
)
def test_undecodable_standard_secret_is_refused_without_echoing_it(secret: str) -> None:
    message = config_error("standard", ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", secret])
    assert message == (
        "secret at index 1 for scheme 'standard' is not base64 after its optional 'whsec_' "
        "prefix (Standard Webhooks secrets look like 'whsec_' followed by base64); check it "
        "was copied whole"
    )
    assert secret.removeprefix("whsec_") not in message


@pytest.mark.parametrize("scheme", ["github", "stripe", "slack"])
def test_secret_with_undecodable_bytes_is_refused(scheme: str) -> None:
    # os.environ turns bytes that are not UTF-8 into lone surrogates.
    assert config_error(scheme, ["ok", "bad\udcff"]) == (
        f"secret at index 1 for scheme '{scheme}' is not valid text (it holds bytes that are "
        "not UTF-8); check how it was read"
    )


def test_whsec_prefix_alone_is_an_empty_standard_secret() -> None:
    assert config_error("standard", ["whsec_"]) == (
        "secret at index 0 for scheme 'standard' is empty after its 'whsec_' prefix"
    )


def test_zero_tolerance_means_the_exact_second_only() -> None:
    verifier = build_verifier("slack", ["8f742231b10e8888abcd99yyyzzz85a5"], tolerance=0)
    headers = {
        "X-Slack-Request-Timestamp": "1531420618",
        "X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    }
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
        b"G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook"
        b"-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F3977"
        b"00885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d1"
        b"0d2c447fce8b6703c"
    )
    assert verifier.verify(headers, body, 1531420618).timestamp == 1531420618.0
