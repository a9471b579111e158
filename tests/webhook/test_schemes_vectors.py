"""Every published vector in tests/data/signatures, through the public `build_verifier`.

Each vector's outcome here is either success or the exact `SignatureError` reason and header, and
a test checks that the table covers every vector in the files, so none is silently skipped.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from mfo_client.webhook.schemes import SignatureError, SignatureReason, Verified, build_verifier

DATA = Path(__file__).parent.parent / "data" / "signatures"


def _vectors(name: str) -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads((DATA / name).read_bytes())["vectors"]
    return vectors


GITHUB_VECTORS = _vectors("github_docs.json")
STANDARD_VECTORS = _vectors("standard_webhooks.json")

Outcome = tuple[SignatureReason, str] | None
"""None: verifies; else the reason and header of the `SignatureError`."""

GITHUB_OUTCOMES: dict[str, Outcome] = {
    "GD-1": None,
    # Only the legacy SHA-1 header is sent; it is deliberately not accepted.
    "GD-2": ("missing_header", "X-Hub-Signature-256"),
    "GD-3": ("mismatch", "X-Hub-Signature-256"),
    "GD-4": ("mismatch", "X-Hub-Signature-256"),
    "GD-5": ("malformed_header", "X-Hub-Signature-256"),
}

STANDARD_OUTCOMES: dict[str, Outcome] = {
    "SW-1": None,
    "SW-2": None,
    "SW-3": ("mismatch", "webhook-signature"),
    "SW-4": ("mismatch", "webhook-signature"),
    # A v1 entry that is not base64 of 32 bytes cannot be compared: nothing well-formed is left.
    "SW-5": ("malformed_header", "webhook-signature"),
    "SW-6": ("malformed_header", "webhook-signature"),
    "SW-7": ("malformed_header", "webhook-signature"),
    "SW-8": ("malformed_header", "webhook-signature"),
    "SW-9": None,
    "SW-10": ("missing_header", "webhook-id"),
    "SW-11": ("missing_header", "webhook-timestamp"),
    "SW-12": ("missing_header", "webhook-signature"),
    "SW-13": ("malformed_header", "webhook-timestamp"),
    "SW-14": ("stale_timestamp", "webhook-timestamp"),
    "SW-15": ("future_timestamp", "webhook-timestamp"),
    "SW-16": None,
    # The timestamp check cannot be switched off, so a 3600 s old delivery is stale.
    "SW-17": ("stale_timestamp", "webhook-timestamp"),
    "SW-18": None,
    "SW-19": None,
    "SW-20": None,
    "SW-21": None,
    "SW-22": ("mismatch", "webhook-signature"),
    "SW-23": ("mismatch", "webhook-signature"),
    "SW-24": None,
}

# Vectors whose `expected` is conditional on a receiver option this package does not offer.
CONDITIONAL = {"GD-2", "SW-17"}


def _body(vector: dict[str, Any]) -> bytes:
    body = base64.b64decode(vector["payload_base64"])
    assert body == vector["payload_utf8"].encode("utf-8")
    return body


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [vector["id"] for vector in vectors]


def _id(vector: dict[str, Any]) -> str:
    return str(vector["id"])


def test_every_vector_has_an_outcome() -> None:
    assert _ids(GITHUB_VECTORS) == list(GITHUB_OUTCOMES)
    assert _ids(STANDARD_VECTORS) == list(STANDARD_OUTCOMES)


@pytest.mark.parametrize("vector", GITHUB_VECTORS + STANDARD_VECTORS, ids=_id)
def test_outcome_agrees_with_the_vector_file(vector: dict[str, Any]) -> None:
    outcome = {**GITHUB_OUTCOMES, **STANDARD_OUTCOMES}[vector["id"]]
    expected: str = vector["expected"]
    if vector["id"] in CONDITIONAL:
        assert " if " in expected
        assert outcome is not None
    elif expected.startswith("invalid"):
        assert outcome is not None
    else:
        assert expected.startswith("valid")
        assert outcome is None


@pytest.mark.parametrize("vector", GITHUB_VECTORS, ids=_id)
def test_github_docs_vector(vector: dict[str, Any]) -> None:
    verifier = build_verifier("github", [vector["secret"]])
    outcome = GITHUB_OUTCOMES[vector["id"]]
    if outcome is None:
        assert verifier.verify(vector["headers"], _body(vector), now=0.0) == Verified(
            "github", 0, None
        )
        return
    with pytest.raises(SignatureError) as caught:
        verifier.verify(vector["headers"], _body(vector), now=0.0)
    assert (caught.value.reason, caught.value.header) == outcome


@pytest.mark.parametrize("vector", STANDARD_VECTORS, ids=_id)
def test_standard_webhooks_vector(vector: dict[str, Any]) -> None:
    verifier = build_verifier("standard", [vector["secret"]])
    outcome = STANDARD_OUTCOMES[vector["id"]]
    now = float(vector["now_unix"])
    if outcome is None:
        assert verifier.verify(vector["headers"], _body(vector), now) == Verified(
            "standard", 0, float(vector["timestamp"])
        )
        return
    with pytest.raises(SignatureError) as caught:
        verifier.verify(vector["headers"], _body(vector), now)
    assert (caught.value.reason, caught.value.header) == outcome


def test_unpadded_secret_also_verifies_with_whsec_prefix() -> None:
    (vector,) = [v for v in STANDARD_VECTORS if v["id"] == "SW-19"]
    verifier = build_verifier("standard", ["whsec_" + vector["secret"]])
    assert verifier.verify(vector["headers"], _body(vector), vector["now_unix"]) == Verified(
        "standard", 0, 1614265330.0
    )


def test_github_secret_with_trailing_newline_is_used_as_given() -> None:
    # GD-4: the newline is part of the key; the signature made with it verifies, GitHub's doesn't.
    (vector,) = [v for v in GITHUB_VECTORS if v["id"] == "GD-4"]
    verifier = build_verifier("github", [vector["secret"]])
    headers = {"X-Hub-Signature-256": vector["hmac_with_this_secret"]}
    assert verifier.verify(headers, _body(vector), 0.0) == Verified("github", 0, None)
