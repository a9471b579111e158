"""Scheme "github": GitHub's documented example, a real payload file, and re-serialisation bugs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest
from starlette.datastructures import Headers

from mfo_client.webhook.schemes import SignatureError, Verified, build_verifier

DOCS_SECRET = "It's a Secret to Everybody"
DOCS_BODY = b"Hello, World!"
DOCS_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
HEADER = "X-Hub-Signature-256"
PUSH = Path(__file__).parent.parent / "data" / "github" / "push.new_branch.json"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def reason_of(secret: str, headers: dict[str, str], body: bytes) -> str:
    with pytest.raises(SignatureError) as caught:
        build_verifier("github", [secret]).verify(headers, body, 0.0)
    assert caught.value.header == HEADER
    return caught.value.reason


def test_documented_example_verifies() -> None:
    verifier = build_verifier("github", [DOCS_SECRET])
    assert verifier.scheme == "github"
    assert verifier.verify({HEADER: DOCS_SIGNATURE}, DOCS_BODY, now=1e9) == Verified(
        scheme="github", secret_index=0, timestamp=None
    )


def test_header_lookup_ignores_case_in_dicts_and_starlette_headers() -> None:
    verifier = build_verifier("github", [DOCS_SECRET])
    expected = Verified("github", 0, None)
    assert verifier.verify({"x-hub-signature-256": DOCS_SIGNATURE}, DOCS_BODY, 0.0) == expected
    assert verifier.verify({"X-HUB-SIGNATURE-256": DOCS_SIGNATURE}, DOCS_BODY, 0.0) == expected
    assert verifier.verify(Headers({HEADER: DOCS_SIGNATURE}), DOCS_BODY, 0.0) == expected


def test_upper_case_hex_digits_are_accepted() -> None:
    upper = "sha256=" + DOCS_SIGNATURE.removeprefix("sha256=").upper()
    verifier = build_verifier("github", [DOCS_SECRET])
    assert verifier.verify({HEADER: upper}, DOCS_BODY, 0.0) == Verified("github", 0, None)


def test_rotation_reports_which_secret_matched() -> None:
    verifier = build_verifier("github", ["the-new-secret", DOCS_SECRET])
    assert verifier.verify({HEADER: DOCS_SIGNATURE}, DOCS_BODY, 0.0) == Verified("github", 1, None)
    new = {HEADER: sign("the-new-secret", DOCS_BODY)}
    assert verifier.verify(new, DOCS_BODY, 0.0) == Verified("github", 0, None)


def test_legacy_sha1_header_alone_is_refused_as_missing() -> None:
    headers = {"X-Hub-Signature": "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59"}
    with pytest.raises(SignatureError) as caught:
        build_verifier("github", [DOCS_SECRET]).verify(headers, DOCS_BODY, 0.0)
    assert caught.value.reason == "missing_header"
    assert caught.value.header == HEADER
    assert caught.value.message == "the X-Hub-Signature-256 header is missing"


def test_a_wrong_legacy_header_next_to_a_good_sha256_one_is_ignored() -> None:
    headers = {"X-Hub-Signature": "sha1=" + "0" * 40, HEADER: DOCS_SIGNATURE}
    verifier = build_verifier("github", [DOCS_SECRET])
    assert verifier.verify(headers, DOCS_BODY, 0.0) == Verified("github", 0, None)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sha256=",
        "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59",
        "SHA256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17ab",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1g",
        "sha256=75 71 07 ea 0e b2 50 9f c2 11 22 1c ce 98 4b 8a 37 57 0b 6d 75 86",
        "sha256=" + "é" * 64,
        "sha256=dXNlIGhleCwgbm90IGJhc2U2NA==",
    ],
)
def test_malformed_header_is_reported_as_such(value: str) -> None:
    with pytest.raises(SignatureError) as caught:
        build_verifier("github", [DOCS_SECRET]).verify({HEADER: value}, DOCS_BODY, 0.0)
    assert caught.value.reason == ("malformed_header")
    expected = (
        "the X-Hub-Signature-256 header is empty"
        if value == ""
        else "the X-Hub-Signature-256 header is malformed: expected 'sha256=' followed by "
        "64 hex digits (HMAC-SHA256)"
    )
    assert caught.value.message == expected


def test_mismatch_message() -> None:
    with pytest.raises(SignatureError) as caught:
        build_verifier("github", [DOCS_SECRET]).verify({HEADER: DOCS_SIGNATURE}, b"Hello!", 0.0)
    assert caught.value.reason == "mismatch"
    assert caught.value.message == (
        "the X-Hub-Signature-256 signature does not match this request body with any "
        "configured secret"
    )


def test_a_body_that_is_not_utf8_verifies_over_its_bytes() -> None:
    body = b"\xff\xfe\x00caf\xe9"
    verifier = build_verifier("github", [DOCS_SECRET])
    assert verifier.verify({HEADER: sign(DOCS_SECRET, body)}, body, 0.0) == Verified(
        "github", 0, None
    )


def test_repeated_header_uses_the_first_value_like_starlette() -> None:
    good, bad = DOCS_SIGNATURE.encode(), sign("other", DOCS_BODY).encode()
    verifier = build_verifier("github", [DOCS_SECRET])
    first_good = Headers(raw=[(b"x-hub-signature-256", good), (b"x-hub-signature-256", bad)])
    assert verifier.verify(first_good, DOCS_BODY, 0.0) == Verified("github", 0, None)
    first_bad = Headers(raw=[(b"x-hub-signature-256", bad), (b"x-hub-signature-256", good)])
    with pytest.raises(SignatureError) as caught:
        verifier.verify(first_bad, DOCS_BODY, 0.0)
    assert caught.value.reason == "mismatch"


class TestRealPayloadFile:
    """octokit's push example, pretty-printed as stored: the signature covers these exact bytes."""

    SECRET = "push-hook-secret"

    def test_the_file_is_the_pretty_printed_original(self) -> None:
        body = PUSH.read_bytes()
        assert len(body) == 8827
        assert hashlib.sha256(body).hexdigest() == (
            "c1cab5f4e9bc7d5c85665397a008a2a0410e9db8fb566d347c30f85fe5526292"
        )
        assert body.startswith(b'{\n  "ref": "refs/heads/master",\n')
        assert body.endswith(b"}\n")

    def test_signature_over_the_exact_bytes_verifies(self) -> None:
        body = PUSH.read_bytes()
        headers = {HEADER: sign(self.SECRET, body), "X-GitHub-Event": "push"}
        verifier = build_verifier("github", [self.SECRET])
        assert verifier.verify(headers, body, 0.0) == Verified("github", 0, None)

    @pytest.mark.parametrize(
        "reserialise",
        [
            lambda data: json.dumps(data),
            lambda data: json.dumps(data, separators=(",", ":")),
            lambda data: json.dumps(data, indent=2),
        ],
        ids=["json.dumps", "compact", "indent=2"],
    )
    def test_reserialised_json_no_longer_verifies(self, reserialise: object) -> None:
        body = PUSH.read_bytes()
        assert callable(reserialise)
        reserialised = reserialise(json.loads(body)).encode()
        # Same data, different bytes: this is exactly why verification must precede parsing.
        assert json.loads(reserialised) == json.loads(body)
        assert reserialised != body
        headers = {HEADER: sign(self.SECRET, body)}
        assert reason_of(self.SECRET, headers, reserialised) == "mismatch"


class TestReportedReserialisationBugs:
    """The failure modes in nodejs/help#535 and octokit/webhooks.js#71, with their inputs."""

    def test_ping_body_verifies_raw_but_not_after_python_json_dumps(self) -> None:
        # nodejs/help#535: HMAC over the re-serialised object instead of the received bytes.
        secret = DOCS_SECRET
        raw = (
            b'{"zen":"Design for failure.","hook_id":123456789,'
            b'"hook":{"type":"Repository","events":["*"],"active":true}}'
        )
        signature = "sha256=ad886e4b0419351768977e0e1f536006cdf8f3b5a725729f6c1f117bacf835a4"
        verifier = build_verifier("github", [secret])
        assert verifier.verify({HEADER: signature}, raw, 0.0) == Verified("github", 0, None)
        reserialised = json.dumps(json.loads(raw)).encode()
        assert reserialised == (
            b'{"zen": "Design for failure.", "hook_id": 123456789, '
            b'"hook": {"type": "Repository", "events": ["*"], "active": true}}'
        )
        assert reason_of(secret, {HEADER: signature}, reserialised) == "mismatch"

    def test_escape_case_change_breaks_the_signature(self) -> None:
        # octokit/webhooks.js#71 (vector from octokit/webhooks-methods.js): GitHub writes
        # \u001B, a re-encoder writes \u001b; same JSON, different bytes.
        raw = base64.b64decode(
            "eyJmb28iOiJGb29cblx1MDAxQlszNG1iYXI6IOKZpeKZpeKZpeKZpeKZpeKZpeKZpeKZpVxudGhpcy1p"
            "cy1sb3N0XHUwMDFCWzBtXHUwMDFCWzJLIn0="
        )
        signature = "sha256=afecc3caa27548bb90d51a50384cb2868b9a3327b4ad6a01c9bd4ed0f8b0b12c"
        verifier = build_verifier("github", ["development"])
        assert verifier.verify({HEADER: signature}, raw, 0.0) == Verified("github", 0, None)
        lowered = raw.replace(b"\\u001B", b"\\u001b")
        assert lowered != raw
        assert json.loads(lowered) == json.loads(raw)
        assert reason_of("development", {HEADER: signature}, lowered) == "mismatch"
