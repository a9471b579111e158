"""The generic "hmac" scheme: one header holding an HMAC of the body, perhaps with a timestamp.

An `HmacSpec` describes a sender; GitHub, Slack and Shopify are instances of it, so every one of
them is parsed, matched and timed by the same code.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from mfo_client.webhook.schemes._core import (
    Verified,
    check_window,
    decode_base64,
    decode_hex,
    lower_headers,
    match_secret,
    parse_timestamp,
    require,
)
from mfo_client.webhook.schemes._errors import SchemeConfigError, SignatureError

__all__ = ["HmacSpec", "HmacVerifier"]

_DIGEST_SIZES = {"sha1": 20, "sha256": 32, "sha512": 64}
_FIELDS = ("body", "timestamp")

# Literal text as bytes, or the name of a field filled in per request.
_Piece = bytes | str


def _compile(template: str) -> tuple[_Piece, ...]:
    """Split `signed_content` into literal bytes and field names, refusing anything else."""
    allowed = "use {body} and {timestamp}, and {{ or }} for a literal brace"
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        raise SchemeConfigError(
            f"HmacSpec.signed_content {template!r} has an unbalanced brace; {allowed}"
        ) from None
    pieces: list[_Piece] = []
    for literal, name, format_spec, conversion in parsed:
        if literal:
            try:
                pieces.append(literal.encode("utf-8"))
            except UnicodeEncodeError:
                raise SchemeConfigError(
                    f"HmacSpec.signed_content {template!r} is not valid text (lone surrogate)"
                ) from None
        if name is None:
            continue
        if name not in _FIELDS or format_spec or conversion:
            raise SchemeConfigError(
                f"HmacSpec.signed_content {template!r} has an unknown field; {allowed}"
            )
        pieces.append(name)
    return tuple(pieces)


@dataclass(frozen=True)
class HmacSpec:
    """How a sender without a dedicated scheme signs: which header, hash, encoding and content.

    `prefix` (e.g. "sha256=") must be present and is stripped before decoding. When
    `timestamp_header` is set the timestamp is required, must appear in `signed_content` as
    `{timestamp}` (an unsigned one stops no replay) and is checked against the tolerance.
    `signed_content` is a template over `{body}` and `{timestamp}`, built as bytes, so bodies
    that are not UTF-8 still verify. Invalid specs raise `SchemeConfigError` when built.
    """

    header: str
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""
    timestamp_header: str | None = None
    signed_content: str = "{body}"

    def __post_init__(self) -> None:
        if not self.header.strip():
            raise SchemeConfigError("HmacSpec.header must name the header holding the signature")
        if self.algorithm not in _DIGEST_SIZES:
            raise SchemeConfigError(
                f"HmacSpec.algorithm {self.algorithm!r} is not supported; use one of "
                f"{', '.join(_DIGEST_SIZES)}"
            )
        if self.encoding not in ("hex", "base64"):
            raise SchemeConfigError(
                f"HmacSpec.encoding {self.encoding!r} is not supported; use 'hex' or 'base64'"
            )
        if self.timestamp_header is not None and not self.timestamp_header.strip():
            raise SchemeConfigError("HmacSpec.timestamp_header must be None or a header name")
        pieces = _compile(self.signed_content)
        if "body" not in pieces:
            raise SchemeConfigError(
                f"HmacSpec.signed_content {self.signed_content!r} must include {{body}}: a "
                "signature that does not cover the body proves nothing about it"
            )
        signs_timestamp = "timestamp" in pieces
        if signs_timestamp and self.timestamp_header is None:
            raise SchemeConfigError(
                f"HmacSpec.signed_content {self.signed_content!r} uses {{timestamp}}, so "
                "timestamp_header must name the header it comes from"
            )
        if self.timestamp_header is not None and not signs_timestamp:
            raise SchemeConfigError(
                f"HmacSpec.timestamp_header is {self.timestamp_header!r} but signed_content "
                f"{self.signed_content!r} does not include {{timestamp}}; a timestamp that is "
                "not signed can be changed by anyone, so it would not stop replays"
            )

    @property
    def digest_size(self) -> int:
        """Bytes in one digest of `algorithm`; a signature of any other length is malformed."""
        return _DIGEST_SIZES[self.algorithm]

    def expected_format(self) -> str:
        """What a well-formed signature header looks like, for error messages."""
        if self.encoding == "hex":
            shape = f"{2 * self.digest_size} hex digits"
        else:
            shape = f"the base64 of a {self.digest_size}-byte digest"
        shape += f" (HMAC-{self.algorithm.upper()})"
        return f"{self.prefix!r} followed by {shape}" if self.prefix else shape


@dataclass(frozen=True)
class HmacVerifier:
    """Verifies deliveries described by `spec`; `scheme` is the name reported on `Verified`."""

    scheme: str
    spec: HmacSpec
    keys: tuple[bytes, ...] = field(repr=False)
    tolerance: float = 300.0
    _pieces: tuple[_Piece, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pieces", _compile(self.spec.signed_content))

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        spec = self.spec
        lowered = lower_headers(headers)
        raw_signature = require(lowered, spec.header)
        time_header = spec.timestamp_header
        raw_timestamp = "" if time_header is None else require(lowered, time_header)

        signature = self._decode(raw_signature)
        signed_time = None if time_header is None else parse_timestamp(raw_timestamp, time_header)

        values = {"body": body, "timestamp": raw_timestamp.encode("ascii")}
        content = [piece if isinstance(piece, bytes) else values[piece] for piece in self._pieces]
        index = match_secret(self.keys, spec.algorithm, content, (signature,))
        if index is None:
            raise SignatureError(
                "mismatch",
                f"the {spec.header} signature does not match this request body with any "
                "configured secret",
                header=spec.header,
            )
        if time_header is None or signed_time is None:
            return Verified(self.scheme, index, None)
        # Checked after the signature, so a timestamp error means a genuine but late delivery
        # (or skewed clocks) rather than a forgery.
        check_window(signed_time, now, self.tolerance, time_header)
        return Verified(self.scheme, index, float(signed_time))

    def _decode(self, raw: str) -> bytes:
        spec = self.spec
        signature = None
        if raw.startswith(spec.prefix):
            text = raw[len(spec.prefix) :]
            if spec.encoding == "hex":
                signature = decode_hex(text, spec.digest_size)
            else:
                signature = decode_base64(text, spec.digest_size)
        if signature is None:
            raise SignatureError(
                "malformed_header",
                f"the {spec.header} header is malformed: expected {spec.expected_format()}",
                header=spec.header,
            )
        return signature
