"""What every scheme shares: the result, the protocol, and the checks that must behave the same
everywhere (header lookup, timestamp window, decoding, constant-time matching)."""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from mfo_client.webhook.schemes._errors import SignatureError

__all__ = [
    "Verified",
    "Verifier",
    "check_window",
    "decode_base64",
    "decode_hex",
    "header_bytes",
    "lower_headers",
    "match_secret",
    "parse_timestamp",
    "require",
]


@dataclass(frozen=True)
class Verified:
    """A delivery that passed.

    `secret_index` says which configured secret matched, so an operator rotating secrets can see
    when the old one stops being used (-1 for scheme "none", which checks nothing).
    `timestamp` is the signed unix time for schemes that sign one, else None.
    """

    scheme: str
    secret_index: int
    timestamp: float | None


class Verifier(Protocol):
    """Checks one delivery's raw bytes; pure, so the listener calls it before parsing anything."""

    @property
    def scheme(self) -> str:
        """The scheme name, as given to `build_verifier`."""
        ...

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        """Return what matched, or raise `SignatureError`; `now` is unix seconds."""
        ...


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Index headers by lower-cased name, values without surrounding blanks.

    A repeated header keeps its first value, the one starlette's `Headers[name]` returns.
    """
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        lowered.setdefault(name.lower(), value.strip(" \t"))
    return lowered


def require(headers: Mapping[str, str], name: str) -> str:
    """The value of header `name` from `lower_headers` output; absent or empty is refused."""
    value = headers.get(name.lower())
    if value is None:
        raise SignatureError("missing_header", f"the {name} header is missing", header=name)
    if not value:
        raise SignatureError("malformed_header", f"the {name} header is empty", header=name)
    return value


# Whole seconds in ASCII digits; the length cap keeps the value a float can hold exactly.
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


def parse_timestamp(value: str, header: str) -> int:
    """A signed unix time in whole seconds, as every supported sender writes it."""
    if _TIMESTAMP.fullmatch(value) is None:
        raise SignatureError(
            "malformed_header",
            f"the {header} header is malformed: expected a unix time in whole seconds",
            header=header,
        )
    return int(value)


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def check_window(timestamp: int, now: float, tolerance: float, header: str) -> None:
    """Refuse a signed time more than `tolerance` seconds from `now`, either way (replays)."""
    age = now - timestamp
    if age > tolerance:
        raise SignatureError(
            "stale_timestamp",
            f"the timestamp in {header} is {_seconds(age)} s old, outside the tolerance of "
            f"{_seconds(tolerance)} s",
            header=header,
        )
    if -age > tolerance:
        raise SignatureError(
            "future_timestamp",
            f"the timestamp in {header} is {_seconds(-age)} s in the future, outside the "
            f"tolerance of {_seconds(tolerance)} s",
            header=header,
        )


def header_bytes(value: str) -> bytes:
    """The bytes a header value was sent as, for putting it into signed content.

    ASGI servers decode header bytes as latin-1, so encoding back with latin-1 restores them
    exactly; a value beyond latin-1 cannot have come off the wire that way (a hand-built dict),
    so it is taken as UTF-8, the encoding signers use for text. Lone surrogates are passed
    through rather than raised on: such a value simply cannot match.
    """
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


_HEX = re.compile(r"[0-9a-fA-F]*")


def decode_hex(text: str, size: int) -> bytes | None:
    """`size` bytes from hex digits of either case, or None; never raises on bad input."""
    if len(text) != 2 * size or _HEX.fullmatch(text) is None:
        return None
    return bytes.fromhex(text)


def decode_base64(text: str, size: int) -> bytes | None:
    """`size` bytes from padded standard base64, or None; never raises on bad input."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or characters outside ASCII
        return None
    return raw if len(raw) == size else None


def match_secret(
    keys: Sequence[bytes],
    algorithm: str,
    content: Sequence[bytes],
    candidates: Sequence[bytes],
) -> int | None:
    """Index of the first key whose HMAC of `content` equals a candidate, or None.

    `content` is fed piece by piece so a large body is never copied. Every key is compared with
    every candidate even after a match, so timing does not reveal which secret matched.
    """
    matched: int | None = None
    for index, key in enumerate(keys):
        mac = hmac.new(key, digestmod=algorithm)
        for piece in content:
            mac.update(piece)
        digest = mac.digest()
        for candidate in candidates:
            if hmac.compare_digest(digest, candidate) and matched is None:
                matched = index
    return matched
