"""`sign` and `build_delivery` are the exact inverse of the verifiers, checked against them and
against published vectors (tests/data/signatures, tests/data/github/form)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from mfo_client.config import Config
from mfo_client.webhook import SourceError, signing
from mfo_client.webhook.schemes import (
    KNOWN_SCHEMES,
    HmacSpec,
    SchemeConfigError,
    SignatureError,
    build_verifier,
)
from mfo_client.webhook.signing import Target, build_delivery, guess_event_type, sign

DATA = Path(__file__).parent.parent / "data"
NOW = 1_700_000_000.0
BODY = b'{"action": "opened", "number": 1}\n'
WHSEC = "whsec_" + base64.b64encode(b"standard webhooks key, 32 bytes").decode()
OTHER_WHSEC = "whsec_" + base64.b64encode(b"another key entirely, also fine").decode()

# scheme, the HmacSpec for "hmac", a secret, another secret
CASES: list[tuple[str, HmacSpec | None, str, str]] = [
    ("github", None, "gh-secret", "gh-other"),
    ("standard", None, WHSEC, OTHER_WHSEC),
    ("stripe", None, "whsec_stripe", "whsec_other"),
    ("slack", None, "8f742231b10e8888abcd99yyyzzz85a5", "slack-other"),
    ("shopify", None, "shpss_secret", "shpss_other"),
    ("hmac", HmacSpec(header="X-Signature"), "plain", "other"),
    (
        "hmac",
        HmacSpec(
            header="X-Sig",
            algorithm="sha512",
            encoding="base64",
            prefix="sha512=",
            timestamp_header="X-Sig-Time",
            signed_content="{timestamp}:{{literal}}:{body}",
        ),
        "with-time",
        "other",
    ),
    ("hmac", HmacSpec(header="X-Hub-Signature", algorithm="sha1", prefix="sha1="), "s", "t"),
]
IDS = ["github", "standard", "stripe", "slack", "shopify", "hmac", "hmac-timed", "hmac-sha1"]


def test_every_scheme_is_covered() -> None:
    assert {case[0] for case in CASES} | {"none"} == set(KNOWN_SCHEMES)


@pytest.mark.parametrize(("scheme", "spec", "secret", "other"), CASES, ids=IDS)
@pytest.mark.parametrize(
    "body", [BODY, b"", b"\xff\xfe not UTF-8 \x00"], ids=["json", "empty", "bytes"]
)
def test_signed_body_verifies_with_the_same_secret_only(
    scheme: str, spec: HmacSpec | None, secret: str, other: str, body: bytes
) -> None:
    headers = sign(scheme, secret, body, now=NOW, hmac=spec)

    verified = build_verifier(scheme, [other, secret], hmac=spec).verify(headers, body, NOW + 1)
    assert (verified.scheme, verified.secret_index) == (scheme, 1)
    with pytest.raises(SignatureError) as refused:
        build_verifier(scheme, [other], hmac=spec).verify(headers, body, NOW)
    assert refused.value.reason == "mismatch"
    with pytest.raises(SignatureError):
        build_verifier(scheme, [secret], hmac=spec).verify(headers, body + b" ", NOW)


@pytest.mark.parametrize(("scheme", "spec", "secret", "other"), CASES, ids=IDS)
def test_signed_time_is_now(scheme: str, spec: HmacSpec | None, secret: str, other: str) -> None:
    verifier = build_verifier(scheme, [secret], hmac=spec)
    fresh = verifier.verify(sign(scheme, secret, BODY, hmac=spec), BODY, time.time())
    signed = verifier.verify(sign(scheme, secret, BODY, now=NOW + 0.9, hmac=spec), BODY, NOW)
    if signed.timestamp is None:
        assert fresh.timestamp is None
    else:
        assert signed.timestamp == NOW
        assert fresh.timestamp is not None
        assert abs(fresh.timestamp - time.time()) < 5


def test_scheme_none_signs_nothing() -> None:
    assert sign("none", "", BODY) == {}
    assert sign("none", "ignored", BODY) == {}
    assert build_verifier("none", []).verify({}, BODY, NOW).secret_index == -1


def test_github_documented_vector() -> None:
    documented = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    vectors = json.loads((DATA / "signatures" / "github_docs.json").read_bytes())["vectors"]
    (vector,) = [v for v in vectors if v["id"] == "GD-1"]
    assert vector["headers"] == {"X-Hub-Signature-256": documented}

    headers = sign("github", "It's a Secret to Everybody", b"Hello, World!")

    assert headers == {"X-Hub-Signature-256": documented}


def _standard_vectors() -> list[dict[str, Any]]:
    data = json.loads((DATA / "signatures" / "standard_webhooks.json").read_bytes())
    # The valid ones that carry exactly the one signature a sender with one key writes.
    return [
        v
        for v in data["vectors"]
        if v["expected"].startswith("valid")
        and " " not in v["headers"].get("webhook-signature", " ")
    ]


@pytest.mark.parametrize("vector", _standard_vectors(), ids=lambda v: v["id"])
def test_standard_webhooks_vectors(vector: dict[str, Any]) -> None:
    headers = sign(
        "standard",
        vector["secret"],
        base64.b64decode(vector["payload_base64"]),
        now=vector["timestamp"],
        msg_id=vector["msg_id"],
    )
    assert headers == vector["headers"]


def test_the_published_standard_webhooks_example_is_among_them() -> None:
    assert {"SW-1", "SW-21"} <= {v["id"] for v in _standard_vectors()}


@pytest.mark.parametrize(
    ("scheme", "secret", "kwargs", "message"),
    [
        ("gitlab", "s", {}, "unknown webhook signature scheme 'gitlab'"),
        ("github", "", {}, "scheme 'github' is empty"),
        ("standard", "whsec_", {}, "empty after its 'whsec_' prefix"),
        ("hmac", "s", {}, "needs an HmacSpec"),
        ("github", "s", {"hmac": HmacSpec(header="X-Sig")}, "only scheme 'hmac' takes one"),
        ("github", "s", {"msg_id": "m"}, "msg_id is only signed by scheme 'standard'"),
        ("stripe", "s", {"now": -1.0}, "now must be a unix time"),
        ("stripe", "s", {"now": float("nan")}, "now must be a unix time"),
    ],
)
def test_what_cannot_be_signed_is_refused(
    scheme: str, secret: str, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        sign(scheme, secret, BODY, **kwargs)


def test_scheme_config_errors_are_the_verifiers_own() -> None:
    with pytest.raises(SchemeConfigError):
        sign("standard", "whsec_!!!", BODY)


# build_delivery and Target


def test_github_delivery_carries_event_and_delivery_id() -> None:
    target = Target.for_scheme("http://127.0.0.1:8080/webhook", "github", "gh-secret")

    url, headers, body = build_delivery(target, BODY, event_type="push", delivery_id="d-1", now=NOW)

    assert (url, body) == ("http://127.0.0.1:8080/webhook", BODY)
    assert headers == {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign("github", "gh-secret", BODY)["X-Hub-Signature-256"],
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "d-1",
    }


def test_delivery_id_is_fresh_unless_given() -> None:
    target = Target.for_scheme("http://h/w", "github", "s")
    first = build_delivery(target, BODY).headers["X-GitHub-Delivery"]
    second = build_delivery(target, BODY).headers["X-GitHub-Delivery"]
    assert first != second
    assert "X-GitHub-Event" not in build_delivery(target, BODY).headers


def test_standard_delivery_id_is_the_signed_webhook_id() -> None:
    target = Target.for_scheme("http://h/w", "standard", WHSEC, delivery_header="Webhook-Id")

    _, headers, body = build_delivery(target, BODY, delivery_id="msg_1", now=NOW)

    assert headers["webhook-id"] == "msg_1"
    assert "Webhook-Id" not in headers  # the same header, not sent twice
    assert build_verifier("standard", [WHSEC]).verify(headers, body, NOW).secret_index == 0


def test_form_delivery_is_githubs_form_body_and_is_signed_as_sent() -> None:
    # A real form delivery (gidgethub's capture of GitHub's ping) and the JSON inside it.
    captured = (DATA / "github" / "form" / "ping.body").read_bytes().rstrip(b"\n")
    payload = json.loads(parse_qs(captured.decode())["payload"][0])
    compact = json.dumps(payload, separators=(",", ":")).encode()
    target = Target.for_scheme("http://h/w", "github", "s")

    _, headers, body = build_delivery(target, compact, event_type="ping", content_type="form")

    assert body == captured
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert build_verifier("github", ["s"]).verify(headers, body, NOW).secret_index == 0


def test_for_scheme_uses_the_listeners_header_defaults() -> None:
    shopify = Target.for_scheme("http://h/w", "shopify", "s")
    stripe = Target.for_scheme("http://h/w", "stripe", "s")
    custom = Target.for_scheme("http://h/w", "github", "s", type_header=None)

    assert (shopify.type_header, shopify.delivery_header) == (
        "X-Shopify-Topic",
        "X-Shopify-Webhook-Id",
    )
    assert (stripe.type_header, stripe.delivery_header) == (None, None)
    assert (custom.type_header, custom.delivery_header) == (None, "X-GitHub-Delivery")
    assert "gh-secret" not in repr(Target.for_scheme("http://h/w", "github", "gh-secret"))


def _listener(**listener: Any) -> Config:
    return Config.from_mapping({"webhook_listener": listener}, env={})


def test_from_config_default_source() -> None:
    config = _listener(host="0.0.0.0", port=8080, path="/hook", secret_key="seed-secret")

    target = Target.from_config(config.webhook_listener)

    assert target == Target(
        url="http://127.0.0.1:8080/hook",
        scheme="github",
        secret="seed-secret",
        type_header="X-GitHub-Event",
        delivery_header="X-GitHub-Delivery",
    )


SOURCES = [
    {"name": "gh", "path": "/gh", "secret": "one", "secrets": ["two"]},
    {
        "name": "custom",
        "path": "/custom",
        "scheme": "hmac",
        "secret": "h",
        "hmac": {
            "header": "X-Sig",
            "timestamp_header": "X-T",
            "signed_content": "{timestamp}.{body}",
        },
        "event_type_header": "X-Event",
    },
]


def test_from_config_named_source() -> None:
    listener = _listener(host="::1", port=9000, sources=SOURCES).webhook_listener

    gh = Target.from_config(listener, "gh")
    custom = Target.from_config(listener, "custom", url="https://proxy.example/in")

    assert (gh.url, gh.secret) == ("http://[::1]:9000/gh", "one")
    assert custom.url == "https://proxy.example/in"
    assert custom.hmac == HmacSpec(
        header="X-Sig", timestamp_header="X-T", signed_content="{timestamp}.{body}"
    )
    assert (custom.type_header, custom.delivery_header) == ("X-Event", None)
    _, headers, body = build_delivery(custom, BODY, event_type="e", now=NOW)
    assert headers["X-Event"] == "e"
    assert build_verifier("hmac", ["h"], hmac=custom.hmac).verify(headers, body, NOW)


def test_from_config_refuses_an_unknown_or_ambiguous_source() -> None:
    listener = _listener(port=9000, sources=SOURCES).webhook_listener

    with pytest.raises(SourceError, match=r'named "nope"; configured: "gh" \(/gh\), "custom"'):
        Target.from_config(listener, "nope")
    with pytest.raises(SourceError, match=r'choose one of: "gh" \(/gh\), "custom" \(/custom\)'):
        Target.from_config(listener)
    with pytest.raises(SourceError, match="no webhook source"):
        Target.from_config(_listener(port=9000).webhook_listener)


def test_from_config_prefers_default_among_several() -> None:
    listener = _listener(port=9000, secret_key="k", sources=SOURCES).webhook_listener
    target = Target.from_config(listener)
    assert (target.url, target.secret) == ("http://127.0.0.1:9000/webhook", "k")


def test_from_config_needs_a_url_when_the_port_is_chosen_at_start() -> None:
    listener = _listener(port=0, secret_key="k").webhook_listener
    with pytest.raises(SourceError, match="port is 0"):
        Target.from_config(listener)
    assert Target.from_config(listener, url="http://127.0.0.1:1234/webhook").secret == "k"


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("push.new_branch.json", b"{}", "push"),
        ("/some/dir/pull_request.opened.json", b"{}", "pull_request"),
        ("ping.json", b'{"zen": "z"}', "ping"),
        ("quickstart_event.json", b'{"type": "user_created", "payload": {}}', None),
        ("push.json", b'{"type": "push", "payload": null}', None),
        ("invoice.paid.json", b'{"type": "invoice.paid", "data": {}}', None),
        ("raw.bin", b"\xff\xfe", "raw"),
    ],
)
def test_guess_event_type(name: str, body: bytes, expected: str | None) -> None:
    assert guess_event_type(name, body) == expected


def test_public_names() -> None:
    assert signing.__all__ == sorted(signing.__all__)
    assert all(hasattr(signing, name) for name in signing.__all__)
